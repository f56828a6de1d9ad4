"""The Muse public jobs API over HTTP: `GET {base_url}/jobs?page=N&descending=true`.

Transient faults (5xx, dropped connections, timeouts) are retried by urllib3's Retry with
exponential backoff and jitter. The rate limit is respected from the API's own headers: a 403
with `X-RateLimit-Remaining: 0` is retried after `X-RateLimit-Reset` seconds, and a walk that has
used up its allowance pauses until the reset instead of running into the 403.

The API key never leaves this module: errors name the request by its URL without the key, and
every text the server sent back (error bodies, unreadable bodies, the items themselves) has the
key redacted before anyone can log, raise or store it, because servers that echo the request
URL are common.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .pages import PAGE_SIZE, RawPage, parse_body

# 403 is The Muse's answer to "over the rate limit"; MuseRetry waits for the reset then.
RETRY_STATUSES = (403, 500, 502, 503, 504)
MAX_UNREADABLE_PAGES_IN_A_ROW = 3
# A 200 whose body is cut short or not a page is asked for again this many times.
BODY_RETRIES = 2


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


def listing_source(base_url: str, listing_filter: dict[str, str] | None = None) -> str:
    """Names a listing in bronze's `source`: `api:<base url>`, plus its filter if any."""
    query = "&".join(f"{k}={v}" for k, v in (listing_filter or {}).items())
    return f"api:{base_url.rstrip('/')}" + (f"?{query}" if query else "")


def page_url(base_url: str, page: int, listing_filter: dict[str, str] | None = None) -> str:
    """The request as shown in messages (never with the key)."""
    extra = "".join(f"&{k}={v}" for k, v in (listing_filter or {}).items())
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
    listing_filter: dict[str, str] | None = None,
) -> RawPage:
    """One page of a listing, newest first. Raises MuseApiError when the API refuses.

    `listing_filter` narrows the listing (`{"category": "Sales"}`, `{"level": "Senior Level"}`).
    """
    params: dict[str, Any] = {"page": page, "descending": "true", **(listing_filter or {})}
    if api_key:
        params["api_key"] = api_key
    shown = page_url(base_url, page, listing_filter)
    source = listing_source(base_url, listing_filter)
    for attempt in range(BODY_RETRIES + 1):
        try:
            response = session.get(f"{base_url.rstrip('/')}/jobs", params=params, timeout=timeout)
        except requests.RequestException as exc:
            # The exception's own text holds the full URL, key included: report only its kind.
            raise MuseApiError(f"GET {shown} failed after retries: {type(exc).__name__}") from None
        text, notes = body_text(response)
        text = redact(text, api_key)
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
                )
            error = "body has no `results` list"
        if attempt < BODY_RETRIES:
            time.sleep(0.5 * 2**attempt)
    return RawPage(
        source, page, [], error=f"{error} ({BODY_RETRIES + 1} tries)", raw=text,
        rate_limit_reset=reset, notes=notes,
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _page_signature(page: RawPage) -> tuple:
    return tuple(item.get("id") if isinstance(item, dict) else repr(item)[:50] for item in page.items)


def iter_api_pages(
    base_url: str,
    api_key: str | None = None,
    max_pages: int | None = None,
    timeout: float = 30.0,
    session: requests.Session | None = None,
    max_rate_limit_wait: float = 3600.0,
    listing_filter: dict[str, str] | None = None,
) -> Iterator[RawPage]:
    """Pages 0, 1, ... of one listing until a page with fewer than 20 results, or `max_pages`.

    `page_count` is not trusted to end the walk: a server whose count is too small would hide
    the pages after it, so a full page is always followed by the next (past the real end, the
    API answers an empty page). A page whose body is unreadable is yielded (to be quarantined)
    and the walk goes on; several unreadable pages in a row end it with an error. A page that
    repeats an earlier one (a server that ignores `page`) ends the walk as an unreadable page,
    instead of walking for ever.
    """
    session = session or make_session()
    page, unreadable_in_a_row, seen = 0, 0, {}
    while max_pages is None or page < max_pages:
        raw_page = fetch_page(session, base_url, page, api_key, timeout, listing_filter)
        if raw_page.error is None and raw_page.items:
            signature = _page_signature(raw_page)
            if signature in seen:
                yield RawPage(
                    raw_page.source, page, [],
                    error=f"page {page} repeats page {seen[signature]}: the server ignores "
                    "`page`; walk stopped",
                    raw=", ".join(map(str, signature)), notes=raw_page.notes,
                )
                return
            seen[signature] = page
        yield raw_page
        if raw_page.rate_limit_reset is not None:
            # The allowance is used up: wait for the window instead of running into a 403.
            time.sleep(min(raw_page.rate_limit_reset, max_rate_limit_wait))
        if raw_page.error is None:
            unreadable_in_a_row = 0
            if raw_page.is_last:
                return
        else:
            unreadable_in_a_row += 1
            if unreadable_in_a_row >= MAX_UNREADABLE_PAGES_IN_A_ROW:
                raise MuseApiError(
                    f"{unreadable_in_a_row} unreadable pages in a row, last "
                    f"{page_url(base_url, page, listing_filter)}: {raw_page.error}"
                )
        page += 1
