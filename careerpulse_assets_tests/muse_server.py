"""A loopback stand-in for The Muse jobs API, serving given items newest first, 20 a page.

It answers like the real API (page, page_count, total, results, rate-limit headers) and records
every request it saw, so tests can count requests and look for leaked keys. `faults` maps a
page number to a list of statuses to answer before the real page (e.g. [500, 500]).
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PAGE_SIZE = 20


class MuseStub:
    def __init__(self, items: list[dict]):
        self.items = list(items)
        self.requests: list[str] = []
        self.faults: dict[int, list[int]] = {}
        self.lock = threading.Lock()

    def listing(self) -> list[dict]:
        return sorted(self.items, key=lambda item: str(item.get("publication_date")), reverse=True)

    def answer(self, path: str) -> tuple[int, dict]:
        url = urlparse(path)
        with self.lock:
            self.requests.append(path)
        if url.path != "/api/public/jobs":
            return 404, {"code": 404, "error": "Not found"}
        query = parse_qs(url.query)
        try:
            page = int(query["page"][0])
        except (KeyError, ValueError):
            return 400, {"code": 400, "error": "page is required"}
        with self.lock:
            pending = self.faults.get(page)
            if pending:
                return pending.pop(0), {"code": 500, "error": "injected fault"}
        listing = self.listing()
        page_count = (len(listing) + PAGE_SIZE - 1) // PAGE_SIZE
        return 200, {
            "page": page, "page_count": page_count, "items_per_page": PAGE_SIZE, "took": 3,
            "timed_out": False, "total": len(listing),
            "results": listing[page * PAGE_SIZE : (page + 1) * PAGE_SIZE],
        }


@contextmanager
def serve_muse(items: list[dict]):
    """Yield (stub, base_url) with a server on 127.0.0.1 and a free port."""
    stub = MuseStub(items)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            status, body = stub.answer(self.path)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-RateLimit-Limit", "500")
            self.send_header("X-RateLimit-Remaining", "499")
            self.send_header("X-RateLimit-Reset", "3600")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub, f"http://127.0.0.1:{server.server_address[1]}/api/public"
    finally:
        server.shutdown()
        server.server_close()
