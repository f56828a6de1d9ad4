"""A loopback stand-in for The Muse jobs API, serving given items newest first, 20 a page.

It answers like the real API (page, page_count, total, results, rate-limit headers) and records
every request it saw, so tests can count requests and look for leaked keys. `faults` maps a
page number to the faults to answer, one per request, before the real page:

- a status code (500, 503, 404, ...) with an error body;
- "rate_limited": 403 with X-RateLimit-Remaining 0 and X-RateLimit-Reset `reset_seconds`;
- "truncated": 200 with the page's JSON cut in half;
- "slow": the real page, after sleeping `slow_seconds`;
- "drop": no answer at all, the connection closed (a dropped connection);
- "last_request": the real page, saying it used the last request of the window.

Servers misbehave in other ways too: `page_count_lie` reports that many pages whatever the
listing holds, `ignores_page` answers page 0 to every request, `echo_url` puts the request's
path and query (key included) into error bodies, and the key into every item, and
`bodies` maps a page number to exact bytes to answer with status 200 (one per request while
the list lasts) and `content_type` is what they are sent as.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PAGE_SIZE = 20


class MuseStub:
    def __init__(self, items: list[dict]):
        self._items = list(items)
        self._items_version = 0
        self.requests: list[str] = []
        self.faults: dict[int, list] = {}
        self.lock = threading.Lock()
        self.reset_seconds = 1
        self.listing_cap: int | None = None
        self.delay_seconds = 0.0  # every answer waits this long (a slow API, for kill tests)
        self.slow_seconds = 2.0
        self.page_count_lie: int | None = None
        self.ignores_page = False
        self.echo_url = False
        self.bodies: dict[int, list[bytes]] = {}
        self.content_type = "application/json"
        # Sorting 100,000 items for each of 5,000 page requests would time the stub, not the
        # pipeline: a listing is kept until `items` is assigned or changes length.
        self._listings: dict[tuple, list[dict]] = {}

    @property
    def items(self) -> list[dict]:
        return self._items

    @items.setter
    def items(self, items: list[dict]) -> None:
        self._items = items
        self._items_version += 1

    def listing(self, category: str | None = None, level: str | None = None) -> list[dict]:
        """Newest first, filtered like the API, cut at `listing_cap` like the live listing."""
        key = (self._items_version, len(self.items), category, level, self.listing_cap)
        if key not in self._listings:
            self._listings = {key: self._listing(category, level)}
        return self._listings[key]

    def _listing(self, category: str | None, level: str | None) -> list[dict]:
        def names(item, field):
            return {entry.get("name") for entry in item.get(field) or [] if isinstance(entry, dict)}

        items = [
            item for item in self.items
            if (category is None or category in names(item, "categories"))
            and (level is None or level in names(item, "levels"))
        ]
        listed = sorted(items, key=lambda item: str(item.get("publication_date")), reverse=True)
        return listed[: self.listing_cap] if self.listing_cap else listed

    def answer(self, path: str) -> tuple[int, str | bytes, str]:
        """(status, body, X-RateLimit-Remaining) for one request."""
        url = urlparse(path)
        with self.lock:
            self.requests.append(path)
        echo = f" ({path})" if self.echo_url else ""
        if url.path != "/api/public/jobs":
            return 404, json.dumps({"code": 404, "error": f"Not found{echo}"}), "499"
        query = parse_qs(url.query)
        try:
            page = 0 if self.ignores_page else int(query["page"][0])
        except (KeyError, ValueError):
            return 400, json.dumps({"code": 400, "error": f"page is required{echo}"}), "499"
        with self.lock:
            pending = self.faults.get(page)
            fault = pending.pop(0) if pending else None
            exact = self.bodies.get(page)
            body_bytes = exact.pop(0) if exact else None
        if body_bytes is not None:
            return 200, body_bytes, "499"
        if isinstance(fault, int):
            return fault, json.dumps({"code": fault, "error": f"injected fault{echo}"}), "499"
        if fault == "rate_limited":
            return 403, json.dumps({"code": 403, "error": "Rate limit exceeded"}), "0"
        if fault == "drop":
            return 0, "", ""
        if fault == "slow":
            time.sleep(self.slow_seconds)
        time.sleep(self.delay_seconds)
        listing = self.listing(query.get("category", [None])[0], query.get("level", [None])[0])
        page_count = (len(listing) + PAGE_SIZE - 1) // PAGE_SIZE
        results = listing[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        if self.echo_url:
            # The key only, in every item: text that changed with the page would be an edit.
            key = query.get("api_key", [""])[0]
            results = [dict(item, apply_url=f"https://muse.example/apply?api_key={key}")
                       if isinstance(item, dict) else item for item in results]
        body = json.dumps({
            "page": page, "page_count": self.page_count_lie or page_count,
            "items_per_page": PAGE_SIZE, "took": 3, "timed_out": False, "total": len(listing),
            "results": results,
        })
        if fault == "truncated":
            body = body[: len(body) // 2] + echo
        return 200, body, "0" if fault == "last_request" else "499"


@contextmanager
def serve_muse(items: list[dict]):
    """Yield (stub, base_url) with a server on 127.0.0.1 and a free port."""
    stub = MuseStub(items)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            status, body, remaining = stub.answer(self.path)
            if status == 0:  # drop the connection without a word
                self.close_connection = True
                return
            payload = body if isinstance(body, bytes) else body.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", stub.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("X-RateLimit-Limit", "500")
                self.send_header("X-RateLimit-Remaining", remaining)
                self.send_header("X-RateLimit-Reset", str(stub.reset_seconds))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test)

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
