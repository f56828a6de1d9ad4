"""What every Muse source yields: pages of raw items, or a page that could not be read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

PAGE_SIZE = 20  # The Muse API's fixed page size; archive lists are cut into pages of this size.


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RawPage:
    """One page from a source.

    `items` are the raw `results` entries exactly as received. When the page itself could not
    be read (a body that is not JSON, a file of the wrong shape), `error` says why, `raw` keeps
    what arrived, and `items` is empty: the page is quarantined, the crawl goes on.
    """

    source: str
    page: int
    items: list[Any]
    fetched_at: datetime = field(default_factory=utc_now)
    page_count: int | None = None
    total: int | None = None
    error: str | None = None
    raw: str | None = None
    # Seconds until the API's rate-limit window resets, set when this answer used the last request.
    rate_limit_reset: float | None = None
