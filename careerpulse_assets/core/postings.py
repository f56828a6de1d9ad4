"""Turning raw Muse job items into validated, flat posting rows.

Plain functions over dicts: no Dagster, no I/O. Bronze uses `check_item` and `payload_hash`;
silver uses `silver_row`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

import lxml.html
from lxml import etree

# The Muse labels some postings with the literal category "Unknown": that is no label at all.
NO_CATEGORY_NAMES = frozenset({"unknown"})


class InvalidPosting(ValueError):
    """A raw item that cannot be a posting; the message is the quarantine reason."""


def posting_id(item: dict[str, Any]) -> int:
    """The posting's id as an integer, whether it arrived as 123 or "123"."""
    raw = item.get("id")
    if isinstance(raw, bool) or raw is None:
        raise InvalidPosting("missing id")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw.strip())
    raise InvalidPosting(f"id is not an integer: {raw!r}")


def parse_publication_date(value: Any) -> datetime:
    """An ISO-8601 timestamp as an aware UTC datetime; a naive one is taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidPosting(f"publication_date missing or not a string: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidPosting(f"publication_date is not ISO-8601: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _names(value: Any, field: str) -> list[str]:
    """Names from a Muse list of {"name": ...} objects (categories, levels, locations)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidPosting(f"{field} is not a list: {type(value).__name__}")
    names = []
    for entry in value:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            raise InvalidPosting(f"{field} entry has no name: {entry!r}")
        if name.strip():
            names.append(name.strip())
    return names


def check_item(item: Any) -> int:
    """Validate a raw item as a posting and return its id; raise InvalidPosting otherwise.

    Bronze keeps the payload exactly as received, so everything silver will need from it is
    checked here: an item that passes can always be flattened by `silver_row`.
    """
    if not isinstance(item, dict):
        raise InvalidPosting(f"item is not an object: {type(item).__name__}")
    pid = posting_id(item)
    contents = item.get("contents")
    if contents is not None and not isinstance(contents, str):
        raise InvalidPosting(f"contents is not a string: {type(contents).__name__}")
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidPosting(f"name is not a string: {type(name).__name__}")
    for field in ("categories", "levels", "locations"):
        _names(item.get(field), field)
    company = item.get("company")
    if company is not None and not isinstance(company, dict):
        raise InvalidPosting(f"company is not an object: {type(company).__name__}")
    parse_publication_date(item.get("publication_date"))
    return pid


def payload_json(item: dict[str, Any]) -> str:
    """The payload as stored in bronze: every field, in the order received."""
    return json.dumps(item, ensure_ascii=False)


def payload_hash(item: dict[str, Any]) -> str:
    """A hash that ignores key order and formatting, so only a real change gives a new one."""
    canonical = json.dumps(item, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# Not visible text: their contents are dropped, the text after them kept.
_INVISIBLE = (etree.Comment, etree.ProcessingInstruction, "script", "style", "template")


def html_to_text(html: str | None) -> str:
    """Visible text of an HTML fragment: entities decoded, whitespace collapsed to single spaces.

    Text nodes are joined with a space, so "<p>a</p><p>b</p>" reads "a b". lxml's C parser, not
    BeautifulSoup: 7.7x faster on the shared postings with the same text for all 1,598 of them.
    """
    if not html or not html.strip():
        return ""
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return ""  # nothing lxml can read as HTML (it recovers from broken markup)
    for node in list(root.iter(*_INVISIBLE)):
        node.tail = " " + (node.tail or "")
        node.drop_tree()
    # str.split() also splits on the non-breaking spaces that &nbsp; decodes to.
    return " ".join(" ".join(root.itertext()).split())


def first_category(categories: list[str]) -> str | None:
    """The first listed category that is a real label; None when there is none."""
    for name in categories:
        if name.lower() not in NO_CATEGORY_NAMES:
            return name
    return None


def silver_row(item: dict[str, Any]) -> dict[str, Any]:
    """One flat silver row from a raw item that passed `check_item`."""
    categories = _names(item.get("categories"), "categories")
    levels = _names(item.get("levels"), "levels")
    company = item.get("company") or {}
    description_html = item.get("contents") or ""
    return {
        "posting_id": posting_id(item),
        "title": " ".join((item.get("name") or "").split()),
        "description_html": description_html,
        "description_text": html_to_text(description_html),
        "category": first_category(categories),
        "categories": categories,
        "level": levels[0] if levels else None,
        "locations": _names(item.get("locations"), "locations"),
        "company": company.get("name"),
        "publication_date": parse_publication_date(item.get("publication_date")),
    }
