"""The Muse public jobs API over HTTP: `GET {base_url}/jobs?page=N&descending=true`.

Transient faults (5xx, dropped connections, timeouts) are retried by urllib3's Retry with
exponential backoff. Nothing here ever puts the API key into a message: errors name the request
by its URL without the key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .pages import RawPage

RETRY_STATUSES = (500, 502, 503, 504)
MAX_UNREADABLE_PAGES_IN_A_ROW = 3


class MuseApiError(RuntimeError):
    """A request the API did not answer usefully; the message never contains the API key."""


def make_session(retries: int = 4, backoff_factor: float = 0.5) -> requests.Session:
    retry = Retry(
        total=retries,
        backoff_factor=backoff_factor,
        backoff_jitter=backoff_factor / 2,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,  # the last answer comes back and is reported below
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def page_url(base_url: str, page: int) -> str:
    """The request as shown in messages and stored in bronze (never with the key)."""
    return f"{base_url.rstrip('/')}/jobs?page={page}&descending=true"


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
) -> RawPage:
    """One page of the listing, newest first. Raises MuseApiError when the API refuses."""
    params: dict[str, Any] = {"page": page, "descending": "true"}
    if api_key:
        params["api_key"] = api_key
    shown = page_url(base_url, page)
    source = f"api:{base_url.rstrip('/')}"
    try:
        response = session.get(f"{base_url.rstrip('/')}/jobs", params=params, timeout=timeout)
    except requests.RequestException as exc:
        # The exception's own text holds the full URL, key included: report only its kind.
        raise MuseApiError(f"GET {shown} failed after retries: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise MuseApiError(
            f"GET {shown} answered {response.status_code}: {_error_text(response)}"
        )
    try:
        body = response.json()
    except ValueError:
        return RawPage(source, page, [], error="body is not valid JSON", raw=response.text)
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        return RawPage(source, page, [], error="body has no `results` list", raw=response.text)
    return RawPage(
        source,
        page,
        body["results"],
        page_count=body.get("page_count") if isinstance(body.get("page_count"), int) else None,
        total=body.get("total") if isinstance(body.get("total"), int) else None,
    )


def iter_api_pages(
    base_url: str,
    api_key: str | None = None,
    max_pages: int | None = None,
    timeout: float = 30.0,
    session: requests.Session | None = None,
) -> Iterator[RawPage]:
    """Pages 0, 1, ... until `page_count`, an empty page, or `max_pages`.

    A page whose body is unreadable is yielded (to be quarantined) and the walk goes on, using
    the page count of the last good page; several unreadable pages in a row end it with an error.
    """
    session = session or make_session()
    page, page_count, unreadable_in_a_row = 0, None, 0
    while max_pages is None or page < max_pages:
        raw_page = fetch_page(session, base_url, page, api_key, timeout)
        yield raw_page
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
                    f"{page_url(base_url, page)}: {raw_page.error}"
                )
        if page_count is not None and page + 1 >= page_count:
            return
        page += 1
