"""The Muse public jobs API over HTTP: `GET {base_url}/jobs?page=N&descending=true`.

Transient faults (5xx, dropped connections, timeouts) are retried by urllib3's Retry with
exponential backoff and jitter. The rate limit is respected from the API's own headers: a 403
with `X-RateLimit-Remaining: 0` is retried after `X-RateLimit-Reset` seconds, and a walk that has
used up its allowance pauses until the reset instead of running into the 403. Nothing here ever
puts the API key into a message: errors name the request by its URL without the key.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .pages import RawPage

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
    """urllib3's Retry that also waits out The Muse's rate limit (403 + X-RateLimit-Reset)."""

    max_rate_limit_wait: float = 3600.0

    def get_retry_after(self, response) -> float | None:
        reset = rate_limit_reset(response.headers) if response.status == 403 else None
        if reset is not None:
            return min(reset, self.max_rate_limit_wait)
        return super().get_retry_after(response)

    def new(self, **kwargs):
        renewed = super().new(**kwargs)
        renewed.max_rate_limit_wait = self.max_rate_limit_wait
        return renewed


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
    )
    retry.max_rate_limit_wait = max_rate_limit_wait
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


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return response.text[:200]


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
        if response.status_code != 200:
            raise MuseApiError(
                f"GET {shown} answered {response.status_code}: {_error_text(response)}"
            )
        reset = rate_limit_reset(response.headers)
        try:
            body = response.json()
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
                )
            error = "body has no `results` list"
        if attempt < BODY_RETRIES:
            time.sleep(0.5 * 2**attempt)
    return RawPage(
        source, page, [], error=f"{error} ({BODY_RETRIES + 1} tries)", raw=response.text,
        rate_limit_reset=reset,
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def iter_api_pages(
    base_url: str,
    api_key: str | None = None,
    max_pages: int | None = None,
    timeout: float = 30.0,
    session: requests.Session | None = None,
    max_rate_limit_wait: float = 3600.0,
    listing_filter: dict[str, str] | None = None,
) -> Iterator[RawPage]:
    """Pages 0, 1, ... of one listing until `page_count`, an empty page, or `max_pages`.

    A page whose body is unreadable is yielded (to be quarantined) and the walk goes on, using
    the page count of the last good page; several unreadable pages in a row end it with an error.
    """
    session = session or make_session()
    page, page_count, unreadable_in_a_row = 0, None, 0
    while max_pages is None or page < max_pages:
        raw_page = fetch_page(session, base_url, page, api_key, timeout, listing_filter)
        yield raw_page
        if raw_page.rate_limit_reset is not None:
            # The allowance is used up: wait for the window instead of running into a 403.
            time.sleep(min(raw_page.rate_limit_reset, max_rate_limit_wait))
        if raw_page.error is None:
            unreadable_in_a_row = 0
            if not raw_page.items:
                return
            page_count = raw_page.page_count if raw_page.page_count is not None else page_count
        else:
            unreadable_in_a_row += 1
            if unreadable_in_a_row >= MAX_UNREADABLE_PAGES_IN_A_ROW:
                raise MuseApiError(
                    f"{unreadable_in_a_row} unreadable pages in a row, last "
                    f"{page_url(base_url, page, listing_filter)}: {raw_page.error}"
                )
        if page_count is not None and page + 1 >= page_count:
            return
        page += 1
