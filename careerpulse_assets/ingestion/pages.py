"""What every Muse source yields: pages of raw items, or a page that could not be read."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

PAGE_SIZE = 20  # The Muse API's fixed page size; archive lists are cut into pages of this size.


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class UnreadableItem:
    """An item of a page whose JSON cannot be read on its own (nested 100,000 deep, a number of
    5,000 digits): it is quarantined with `reason` and its `raw` text, the rest of the page kept."""

    reason: str
    raw: str


@dataclass(frozen=True)
class RawPage:
    """One page from a source.

    `items` are the raw `results` entries exactly as received. When the page itself could not
    be read (a body that is not JSON, a file of the wrong shape), `error` says why, `raw` keeps
    what arrived, and `items` is empty: the page is quarantined, the crawl goes on. `notes` are
    things worth a warning that did not stop the page (a body that was not UTF-8).
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
    notes: tuple[str, ...] = ()
    # The listing ends with this page (fewer than PAGE_SIZE results): a walk that reached it
    # read the whole listing.
    is_last: bool = False
    # The API refused this page as past its cap (400 "Value `page` is too high"): no items, and
    # no later page of this listing can be read.
    past_cap: bool = False
    # The API's time (its Date header) minus this machine's, zero when they agree
    # (ingestion/clock.py); None when the answer said no time (an archive). `fetched_at` is this
    # machine's time corrected by it.
    clock_offset: timedelta | None = None


# Strings (with their escapes) and the characters that give JSON its structure.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]', re.DOTALL)


def _array_spans(text: str, open_at: int) -> tuple[list[tuple[int, int]], int]:
    """(start, end) of each element of the JSON array opening at `text[open_at]`, and the index
    after its closing bracket. Iterative: any depth of nesting costs no stack."""
    depth, start, spans = 0, open_at + 1, []
    for token in _TOKENS.finditer(text, open_at):
        mark = token.group()
        if mark[0] == '"' or mark == ":":
            continue
        if mark in "[{":
            depth += 1
        elif mark in "]}":
            depth -= 1
            if depth == 0:
                if text[start : token.start()].strip():
                    spans.append((start, token.start()))
                return spans, token.end()
        elif depth == 1:  # a comma between two elements of this array
            spans.append((start, token.start()))
            start = token.end()
    raise ValueError("the array is not closed")


def _top_level_array(text: str, key: str) -> int:
    """Index of the `[` that opens the array under `key` of the top-level JSON object."""
    depth, last_string, after_colon = 0, None, False
    for token in _TOKENS.finditer(text):
        mark = token.group()
        if depth == 1 and after_colon and last_string == key:
            if mark != "[":
                raise ValueError(f"`{key}` is not a list")
            return token.start()
        if mark[0] == '"':
            last_string, after_colon = (json.loads(mark) if depth == 1 else last_string), False
        elif mark == ":":
            after_colon = True
        else:
            depth += 1 if mark in "[{" else -1 if mark in "]}" else 0
            after_colon = False
    raise ValueError(f"no `{key}` list")


def _item_or_unreadable(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        reason = "item nested too deep to read as JSON"
    except ValueError as exc:
        reason = f"item is not readable JSON: {exc}"
    return UnreadableItem(reason, text[:10_000])


def parse_body(text: str, key: str = "results") -> Any:
    """The JSON value of a page body or an archive file.

    When the whole cannot be read because of one item (nested 100,000 deep: RecursionError; a
    number of 5,000 digits: ValueError), the list (at the top, or under `key` of the top-level
    object) is read item by item and such an item becomes an UnreadableItem. Raises ValueError
    when even that fails (a body cut short, not JSON at all).
    """
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as whole_error:
        error = whole_error
    try:
        stripped = text.lstrip()
        offset = len(text) - len(stripped)
        if stripped.startswith("["):
            spans, end = _array_spans(text, offset)
            if text[end:].strip():
                raise ValueError("text after the list")
            return [_item_or_unreadable(text[a:b]) for a, b in spans]
        open_at = _top_level_array(text, key)
        spans, end = _array_spans(text, open_at)
        rest = json.loads(text[:open_at] + "[]" + text[end:])
        rest[key] = [_item_or_unreadable(text[a:b]) for a, b in spans]
        return rest
    except (ValueError, RecursionError):
        raise ValueError(str(error) if isinstance(error, ValueError) else "nested too deep") from None
