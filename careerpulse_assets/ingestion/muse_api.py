"""The Muse public jobs API over HTTP: `GET {base_url}/jobs?page=N&descending=true`.

A listing is walked newest first by `ListingWalk`, which knows how the live API behaves (2026):
pages past a cap (about 100) answer 400 "Value `page` is too high", which ends the walk as
*capped*, not failed; the listing moves while it is walked (postings expire, new ones arrive on
page 0), which the walk notices from the `total` of consecutive answers; and a run may spend only
so many requests (`RequestBudget`).

Transient faults (5xx, dropped connections, timeouts) are retried by urllib3's Retry with
exponential backoff and jitter. The rate limit is respected from the API's own headers: a 403
with `X-RateLimit-Remaining: 0` is retried after `X-RateLimit-Reset` seconds, and a walk that has
used up its allowance pauses until the reset instead of running into the 403.

Every answer says the API's time (its `Date` header): where this machine's clock disagrees with
it, a page's `fetched_at` is the API's time and `clock_offset` says by how much (ingestion/clock.py).

The API key never leaves this module: errors name the request by its URL without the key, and
every text the server sent back (error bodies, unreadable bodies, the items themselves) has the
key redacted before anyone can log, raise or store it, because servers that echo the request
URL are common.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import quote, quote_plus

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .clock import clock_offset, header_time, local_now
from .listings import PLAIN, Listing
from .pages import PAGE_SIZE, RawPage, parse_body

# 403 is The Muse's answer to "over the rate limit"; MuseRetry waits for the reset then.
RETRY_STATUSES = (403, 500, 502, 503, 504)
MAX_UNREADABLE_PAGES_IN_A_ROW = 3
# A 200 whose body is cut short or not a page is asked for again this many times.
BODY_RETRIES = 2
# The live API's answer past its page cap: {"code": 400, "error": "Value `page` is too high"}.
PAST_CAP_ERROR = re.compile(r"\bpage\b.*\btoo high\b", re.IGNORECASE)


UNREACHABLE_HINT = ("the API cannot be reached from here; to work offline, point "
                    "CAREERPULSE_MUSE_ARCHIVE at a folder of saved pages (README)")


class MuseApiError(RuntimeError):
    """A request the API did not answer usefully; the message never contains the API key."""


def rate_limit_reset(headers) -> float | None:
    """Seconds until the rate-limit window resets, when the answer says the allowance is used."""
    if headers.get("X-RateLimit-Remaining") != "0":
        return None
    try:
        return max(float(headers.get("X-RateLimit-Reset", "")), 0.0)
    except ValueError:
        return None


class MuseRetry(Retry):
    """urllib3's Retry that also waits out The Muse's rate limit: a 403 with
    `X-RateLimit-Remaining: 0` is retried after `X-RateLimit-Reset` seconds, read and capped
    (`retry_after_max`) as urllib3 reads and caps Retry-After."""

    def get_retry_after(self, response) -> float | None:
        reset = response.headers.get("X-RateLimit-Reset")
        if response.status == 403 and response.headers.get("X-RateLimit-Remaining") == "0" and reset:
            try:
                return self.parse_retry_after(reset)
            except Exception:  # not whole seconds: the walk's own pause handles it
                return None
        return super().get_retry_after(response)


def make_session(
    retries: int = 4, backoff_factor: float = 0.5, max_rate_limit_wait: float = 3600.0
) -> requests.Session:
    retry = MuseRetry(
        total=retries,
        backoff_factor=backoff_factor,
        backoff_jitter=backoff_factor / 2,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,  # the last answer comes back and is reported below
        retry_after_max=int(max_rate_limit_wait),
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def listing_source(base_url: str, listing: Listing = PLAIN) -> str:
    """Names a listing in bronze's `source`: `api:<base url>`, plus its filter if any
    (`api:https://www.themuse.com/api/public?category=Sales&level=Senior Level`)."""
    return f"api:{base_url.rstrip('/')}" + (f"?{listing.label}" if listing.filters else "")


def page_url(base_url: str, page: int, listing: Listing = PLAIN) -> str:
    """The request as shown in messages (never with the key)."""
    extra = f"&{listing.label}" if listing.filters else ""
    return f"{base_url.rstrip('/')}/jobs?page={page}&descending=true{extra}"


REDACTED = "[REDACTED]"


def redact(text: str, secret: str | None) -> str:
    """`text` without `secret`, also where it appears URL-encoded."""
    if not secret:
        return text
    for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
        text = text.replace(form, REDACTED)
    return text


def body_text(response: requests.Response) -> tuple[str, tuple[str, ...]]:
    """The body as text, and a note when it was not the UTF-8 that JSON must be.

    Not requests' `.text`/`.json()`: for a body that is not UTF-8 they guess an encoding from
    the bytes and may store mojibake without a word. A charset the server declares is used;
    without one, bytes that are not UTF-8 are read as Latin-1 (every byte is a character there)
    and the page says so.
    """
    content = response.content
    try:
        return content.decode("utf-8-sig"), ()
    except UnicodeDecodeError as exc:
        where = f"byte 0x{content[exc.start]:02x} at {exc.start}"
    declared = re.search(r"charset=\"?([\w.:-]+)", response.headers.get("Content-Type", ""), re.I)
    if declared and declared.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
        try:
            return content.decode(declared.group(1)), (
                f"body is {declared.group(1)} as its Content-Type says, not UTF-8",
            )
        except (LookupError, UnicodeDecodeError):
            pass
    return content.decode("latin-1"), (
        f"body is not UTF-8 ({where}) and declares no usable charset: read as Latin-1",
    )


def _error_text(text: str) -> str:
    try:
        body = parse_body(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])[:200]
    return text[:200]


def fetch_page(
    session: requests.Session,
    base_url: str,
    page: int,
    api_key: str | None = None,
    timeout: float = 30.0,
    listing: Listing = PLAIN,
) -> RawPage:
    """One page of a listing, newest first. Raises MuseApiError when the API refuses, except
    for a page past the API's cap (400 "Value `page` is too high"): that is a page with
    `past_cap` set and no items, the listing's end as far as the API lets anyone see.

    `fetched_at` is the API's time (its `Date` header) when this machine's clock disagrees with
    it, and `clock_offset` says by how much (ingestion/clock.py).
    """
    params: list[tuple[str, Any]] = [("page", page), ("descending", "true"), *listing.params()]
    if api_key:
        params.append(("api_key", api_key))
    shown = page_url(base_url, page, listing)
    source = listing_source(base_url, listing)
    for attempt in range(BODY_RETRIES + 1):
        try:
            response = session.get(f"{base_url.rstrip('/')}/jobs", params=params, timeout=timeout)
        except requests.RequestException as exc:
            # The exception's own text holds the full URL, key included: report only its kind.
            # The offline way is said here, so that every way a run fails shows it (the UI's
            # run page as much as `make run`'s summary).
            raise MuseApiError(
                f"GET {shown} failed after retries: {type(exc).__name__}: {UNREACHABLE_HINT}"
            ) from None
        local, api = local_now(), header_time(response.headers.get("Date"))
        offset = clock_offset(local, api) if api is not None else None
        clock = {"fetched_at": local + (offset or timedelta(0)), "clock_offset": offset}
        text, notes = body_text(response)
        text = redact(text, api_key)
        if response.status_code == 400 and PAST_CAP_ERROR.search(_error_text(text)):
            return RawPage(source, page, [], past_cap=True, notes=notes, **clock)
        if response.status_code != 200:
            raise MuseApiError(f"GET {shown} answered {response.status_code}: {_error_text(text)}")
        reset = rate_limit_reset(response.headers)
        try:
            body = parse_body(text)
        except ValueError:
            error = "body is not valid JSON"
        else:
            if isinstance(body, dict) and isinstance(body.get("results"), list):
                return RawPage(
                    source,
                    page,
                    body["results"],
                    page_count=_int_or_none(body.get("page_count")),
                    total=_int_or_none(body.get("total")),
                    rate_limit_reset=reset,
                    notes=notes,
                    is_last=len(body["results"]) < PAGE_SIZE,
                    **clock,
                )
            error = "body has no `results` list"
        if attempt < BODY_RETRIES:
            time.sleep(0.5 * 2**attempt)
    return RawPage(
        source, page, [], error=f"{error} ({BODY_RETRIES + 1} tries)", raw=text,
        rate_limit_reset=reset, notes=notes, **clock,
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _page_signature(page: RawPage) -> tuple:
    return tuple(item.get("id") if isinstance(item, dict) else repr(item)[:50] for item in page.items)


class RequestBudget:
    """The requests a run may still make: `limit` None is no limit. Every page asked for counts
    (a re-read too); urllib3's retries of one request do not."""

    def __init__(self, limit: int | None = None):
        self.limit, self.spent = limit, 0

    def take(self) -> bool:
        """Count one request; False (and nothing counted) when the budget is spent."""
        if self.limit is not None and self.spent >= self.limit:
            return False
        self.spent += 1
        return True

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.spent >= self.limit


# Why a walk ended.
END = "end"  # a page with fewer than 20 postings: the listing's last
CAP = "cap"  # the API refused the next page as too high (or the cap learned before)
BUDGET = "budget"  # the run's request budget is spent; the walk goes on in the next run
MAX_PAGES = "max pages"  # CAREERPULSE_MAX_PAGES
BROKEN = "broken"  # the server ignores `page`


class ListingWalk:
    """Pages `start_page`, `start_page + 1`, ... of one listing, newest first; after the walk
    (or while it goes) its attributes say why it ended and how the listing moved.

    `fetch(page)` reads one page (`fetch_page` bound to a listing). The walk ends at a page with
    fewer than 20 results (`page_count` is not trusted: a server whose count is too small would
    hide pages; past the real end the API answers an empty page); at the cap (the API's 400
    "too high", or `page_cap` learned earlier: not asked again); when `budget` is spent; at
    `max_pages`. A page whose body is unreadable is yielded (to be quarantined) and the walk goes
    on; several in a row raise MuseApiError.

    The listing moves while it is walked, and the `total` of each answer says how:

    - `total` dropped by d since the previous answer (`previous_total` for the first page of a
      resumed walk): postings expired, and postings not read yet may have slid up by as many as
      d places, onto the ceil(d / 20) pages before this one. The walk goes back that many pages
      (however many: to page 0 at most) and reads on from there; the page that showed the drop
      is not asked for again unless the listing shrank again meanwhile. Every live posting is
      then read before the walk ends, as long as the `total` shows every expiry (one offset by
      a new posting in the same interval does not show). `next_page` is where the walk goes on
      (a later run resumes there), `shrank` the sum of the drops seen.
    - a page repeats page j exactly: when `total` grew by at least 20 per page between them, new
      postings pushed the listing down (a shift, noted on the page); otherwise the server
      ignores `page`, and the walk ends with that page as unreadable instead of going for ever.
    - `growth`: how far `total` rose above the first answer's, so the caller can read the
      listing's head again for the new postings that arrived on page 0 meanwhile.

    `read_ahead(page)` says whether the caller, handed `page` (a full one), will surely want the
    next: then the next page is asked for in a thread of its own while the caller stores this
    one (the walk's own state moves on only when the caller asks for the next page). Storing a
    page and fetching the next then overlap instead of adding up (issue 29: 6.6 ms of a page's
    24 at 20,000 postings was waiting for the next page). A request asked ahead and not used (the
    listing shrank and the walk went back) is counted like any other.
    """

    def __init__(
        self,
        fetch: Callable[[int], RawPage],
        start_page: int = 0,
        *,
        page_cap: int | None = None,
        max_pages: int | None = None,
        budget: RequestBudget | None = None,
        previous_total: int | None = None,
        max_rate_limit_wait: float = 3600.0,
        describe: Callable[[int], str] = lambda page: f"page {page}",
        pause: Callable[[float], None] = time.sleep,
        read_ahead: Callable[[RawPage], bool] | None = None,
    ):
        self._fetch, self.start_page = fetch, start_page
        self._read_ahead = read_ahead
        self._ahead: tuple[int, Future] | None = None  # the page asked for ahead, its answer
        self._executor: ThreadPoolExecutor | None = None
        self.page_cap, self.max_pages = page_cap, max_pages
        self.budget = budget or RequestBudget()
        self.previous_total = previous_total
        self._max_wait, self._describe, self._pause = max_rate_limit_wait, describe, pause
        self.ended_by: str | None = None
        self.cap_page: int | None = None  # the first page the API refused as too high
        self.first_total: int | None = None
        self.last_total: int | None = None
        self.growth = 0
        self.shifts = 0
        self.rereads = 0  # requests for pages this walk had read before
        self.shrank = 0
        self.next_page = start_page
        self.requests = 0

    def _read(self, page: int) -> RawPage | None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == page:
            raw = ahead[1].result()
        else:
            if not self.budget.take():
                self.ended_by = BUDGET
                return None
            self.requests += 1
            raw = self._fetch(page)
        if raw.rate_limit_reset is not None:
            # The allowance is used up: wait for the window instead of running into a 403.
            self._pause(min(raw.rate_limit_reset, self._max_wait))
        return raw

    def _ask_ahead(self, raw: RawPage) -> None:
        """Ask for the page after `raw` now, when the walk will read it next and the caller
        wants it (`read_ahead`)."""
        following = raw.page + 1
        if (self._read_ahead is None or raw.error is not None or raw.is_last
                or (self.page_cap is not None and following >= self.page_cap)
                or (self.max_pages is not None and following >= self.max_pages)
                or not self._read_ahead(raw) or not self.budget.take()):
            return
        self.requests += 1
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="careerpulse-read-ahead")
        self._ahead = (following, self._executor.submit(self._fetch, following))

    def _shifted(self, total: int | None, earlier_total: int | None, pages: int) -> bool:
        return total is not None and earlier_total is not None and (
            total - earlier_total >= PAGE_SIZE * pages
        )

    def __iter__(self) -> Iterator[RawPage]:
        try:
            yield from self._pages()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)

    def _pages(self) -> Iterator[RawPage]:
        page, unreadable_in_a_row, seen = self.start_page, 0, {}
        previous_total = self.previous_total
        furthest = page - 1  # the furthest page this walk has read
        # The page that showed the latest drop, already handed on: still right when the walk
        # back reaches it again without the listing having shrunk meanwhile.
        held: RawPage | None = None
        while True:
            if self.max_pages is not None and page >= self.max_pages:
                self.ended_by = MAX_PAGES
                return
            if self.page_cap is not None and page >= self.page_cap:
                self.ended_by = CAP
                return
            if held is not None and held.page == page:
                raw, held = held, None
            else:
                raw = self._read(page)
                if raw is None:
                    return
                if raw.past_cap:
                    self.ended_by, self.cap_page = CAP, page
                    return
                if page > furthest and raw.error is None and raw.items:
                    signature = _page_signature(raw)
                    if signature in seen:
                        earlier, earlier_total = seen[signature]
                        if not self._shifted(raw.total, earlier_total, page - earlier):
                            yield RawPage(
                                raw.source, page, [],
                                error=f"page {page} repeats page {earlier}: the server ignores "
                                "`page`; walk stopped",
                                raw=", ".join(map(str, signature)), notes=raw.notes,
                                fetched_at=raw.fetched_at, clock_offset=raw.clock_offset,
                            )
                            self.ended_by = BROKEN
                            return
                        self.shifts += 1
                        raw = replace(raw, notes=raw.notes + (
                            f"page {page} repeats page {earlier}: {raw.total - earlier_total} "
                            f"new postings moved the listing down by {page - earlier} page(s)",
                        ))
                    seen[signature] = (page, raw.total)
                dropped = 0
                if raw.total is not None:  # counted before the page is handed on
                    if previous_total is not None:
                        dropped = previous_total - raw.total
                    if self.first_total is None:
                        self.first_total = raw.total
                    self.last_total, previous_total = raw.total, raw.total
                    self.growth = max(self.growth, raw.total - self.first_total)
                self.rereads += page <= furthest
                furthest = max(furthest, page)
                if dropped > 0 and page > 0:
                    # Postings not read yet may now sit up to `dropped` places higher.
                    back = max(0, page - math.ceil(dropped / PAGE_SIZE))
                    self.shrank += dropped
                    held = raw = replace(raw, notes=raw.notes + (
                        f"the listing's total fell by {dropped} (postings expired) before "
                        f"{self._describe(page)}: pages {back} to {page - 1} read again",
                    ))
                    self.next_page = back  # where a later run resumes, should this one stop
                    yield raw
                    page = back
                    continue
                self.next_page = page + 1
                self._ask_ahead(raw)
                yield raw
            if raw.error is None:
                unreadable_in_a_row = 0
                if raw.is_last:
                    self.ended_by = END
                    return
            else:
                unreadable_in_a_row += 1
                if unreadable_in_a_row >= MAX_UNREADABLE_PAGES_IN_A_ROW:
                    raise MuseApiError(
                        f"{unreadable_in_a_row} unreadable pages in a row, last "
                        f"{self._describe(page)}: {raw.error}"
                    )
            page += 1
            self.next_page = page


def iter_api_pages(
    base_url: str,
    api_key: str | None = None,
    max_pages: int | None = None,
    timeout: float = 30.0,
    session: requests.Session | None = None,
    max_rate_limit_wait: float = 3600.0,
    listing: Listing = PLAIN,
    **walk_options,
) -> ListingWalk:
    """A `ListingWalk` of one listing over HTTP (iterate it for the pages)."""
    session = session or make_session()
    return ListingWalk(
        lambda page: fetch_page(session, base_url, page, api_key, timeout, listing),
        max_pages=max_pages, max_rate_limit_wait=max_rate_limit_wait,
        describe=lambda page: page_url(base_url, page, listing), **walk_options,
    )
