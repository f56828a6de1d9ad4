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
the list lasts) and `content_type` is what they are sent as. `oldest_first` serves every listing
oldest first, whatever `descending` asks. `clock_offset` (a timedelta) moves the `Date` header
of every answer away from the real time: the API's clock against a machine whose clock is wrong.

As the live API does in 2026:

- `page_cap`: any page from this one on answers 400 `{"code": 400, "error": "Value `page` is too
  high"}`, whatever `page_count` says (live: about 100);
- filters `category`, `level`, `location` and `company`, each repeatable: a posting is listed
  when it has one of the values of every kind asked for (values of one kind widen the listing,
  kinds narrow it);
- the listing moves while it is walked: `on_request(number, query)` is called before each
  request to `/jobs` is answered (number counts from 0), so a test can expire postings, publish
  new ones or re-date one between two requests (assign `items`, or use `expire`/`publish`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PAGE_SIZE = 20
# The live API's filters, and the item field each one reads.
FILTER_FIELDS = {"category": "categories", "level": "levels", "location": "locations",
                 "company": "company"}
TOO_HIGH = {"code": 400, "error": "Value `page` is too high"}


def _names(item: dict, field: str) -> frozenset:
    """The names a filter matches on an item; a poisoned item's odd shapes match nothing."""
    value = item.get(field)
    if field == "company":
        value = [value]
    if not isinstance(value, list):
        return frozenset()
    return frozenset(e["name"] for e in value
                     if isinstance(e, dict) and isinstance(e.get("name"), str))


class MuseStub:
    def __init__(self, items: Sequence[dict], in_listing_order: bool = False):
        # `in_listing_order`: `items` is already newest first and answers slices, as a benchmark's
        # replay does (benchmarks/replay.py builds each page on request): the unfiltered
        # listing is served from it without sorting or holding every item.
        self.in_listing_order = in_listing_order
        self._items = items if in_listing_order else list(items)
        self._items_version = 0
        self.requests: list[str] = []
        self.faults: dict[int, list] = {}
        self.lock = threading.Lock()
        self.reset_seconds = 1
        self.page_cap: int | None = None
        self.on_request = None  # on_request(number, query) before each /jobs answer
        self._jobs_requests = 0
        self.delay_seconds = 0.0  # every answer waits this long (a slow API, for kill tests)
        self.slow_seconds = 2.0
        self.page_count_lie: int | None = None
        self.ignores_page = False
        self.oldest_first = False
        self.clock_offset = timedelta(0)
        self.echo_url = False
        self.bodies: dict[int, list[bytes]] = {}
        self.content_type = "application/json"
        # Sorting 100,000 items for each of 5,000 page requests would time the stub, not the
        # pipeline: the sorted items and a few listings are kept until `items` is assigned or
        # changes length.
        self._listings: dict[tuple, list[dict]] = {}
        self._sorted: tuple[tuple, list[tuple[dict, dict]]] | None = None

    @property
    def items(self) -> list[dict]:
        return self._items

    @items.setter
    def items(self, items: list[dict]) -> None:
        self._items = items
        self._items_version += 1

    def expire(self, ids) -> None:
        """The postings with these ids leave the listing."""
        gone = set(ids)
        self.items = [item for item in self.items if item.get("id") not in gone]

    def publish(self, items: list[dict]) -> None:
        self.items = self.items + list(items)

    def listing(self, category: str | None = None, level: str | None = None,
                **filters) -> list[dict]:
        """Newest first, filtered like the API. Filters are a value or a list of values per
        kind."""
        if category is not None:
            filters["category"] = category
        if level is not None:
            filters["level"] = level
        wanted = tuple(sorted(
            (kind, frozenset([values] if isinstance(values, str) else values))
            for kind, values in filters.items() if values
        ))
        if self.in_listing_order and not wanted:
            return self.items
        version = (self._items_version, len(self.items))
        key = (version, wanted)
        if key not in self._listings:
            if len(self._listings) > 16 or any(k[0] != version for k in self._listings):
                self._listings = {}
            self._listings[key] = self._listing(version, wanted)
        return self._listings[key]

    def _listing(self, version: tuple, wanted: tuple) -> list[dict]:
        if self._sorted is None or self._sorted[0] != version:
            # Newest first; postings of one second in a fixed order (the higher id first).
            ordered = sorted(self.items, key=lambda item: (
                (str(item.get("publication_date")), str(item.get("id")))
                if isinstance(item, dict) else ("", "")), reverse=True)
            self._sorted = (version, [
                (item, {kind: _names(item, field) for kind, field in FILTER_FIELDS.items()})
                if isinstance(item, dict) else (item, {}) for item in ordered
            ])
        return [item for item, names in self._sorted[1]
                if all(names.get(kind, frozenset()) & values for kind, values in wanted)]

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
            number, self._jobs_requests = self._jobs_requests, self._jobs_requests + 1
            if self.on_request is not None:
                self.on_request(number, query)
        if self.page_cap is not None and page >= self.page_cap:
            return 400, json.dumps(TOO_HIGH), "499"
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
        with self.lock:
            listing = self.listing(**{kind: query.get(kind) for kind in FILTER_FIELDS})
        if self.oldest_first:
            listing = listing[::-1]
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
def serve_muse(items: Sequence[dict], in_listing_order: bool = False):
    """Yield (stub, base_url) with a server on 127.0.0.1 and a free port (`in_listing_order`:
    see MuseStub)."""
    stub = MuseStub(items, in_listing_order)

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

        def date_time_string(self, timestamp=None):  # the Date header
            moment = time.time() if timestamp is None else timestamp
            return super().date_time_string(moment + stub.clock_offset.total_seconds())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub, f"http://127.0.0.1:{server.server_address[1]}/api/public"
    finally:
        server.shutdown()
        server.server_close()
