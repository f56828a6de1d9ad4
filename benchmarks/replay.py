"""Postings at any scale, replayed from the shared real ones with new ids and dates.

Each copy of a real posting gets a fresh id, a publication date spread evenly over the days
before 2026-07-01 (newest first in id order), and one word of variation in the title, so that
texts are not exact reposts. Categories and bodies stay real.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

END = datetime(2026, 7, 1, tzinfo=timezone.utc)
VARIANTS = ["", " I", " II", " III", " (Remote)", " (Hybrid)", " - Contract", " - Lead"]


def shared_items(folder: str | Path) -> list[dict]:
    items = []
    for path in sorted(Path(folder).glob("*.json")):
        items += json.loads(path.read_text())
    return items


def replay(items: list[dict], n: int, first_id: int = 50_000_000, per_day: int = 40) -> list[dict]:
    out = []
    for i in range(n):
        item = copy.deepcopy(items[i % len(items)])
        item["id"] = first_id + i
        item["name"] = f"{item.get('name') or ''}{VARIANTS[(i // len(items)) % len(VARIANTS)]}"
        published = END - timedelta(days=i // per_day, minutes=i % per_day)
        item["publication_date"] = published.strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(item)
    return out
