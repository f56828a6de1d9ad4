"""Postings at any scale, replayed from the shared real ones with new ids and dates.

Copy c of a real posting gets a fresh id, a publication date spread evenly over the days before
2026-07-01 (`per_day` postings a day, newest first in id order), and a title varied by a
seniority prefix and a suffix (64 combinations: up to 64 copies of every posting are distinct
texts, so repost removal keeps them; ~102,000 postings from the 1,598 shared ones). Bodies,
categories, levels, locations and companies stay real, so the share of postings without a
category (10.6 %) and the category imbalance are those of the shared data.

Copies share their bodies, so a classifier scores near 1.0 on them: use them to time the
pipeline, never to judge its quality.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

END = datetime(2026, 7, 1, tzinfo=timezone.utc)
PREFIXES = ["", "Senior ", "Junior ", "Lead ", "Staff ", "Associate ", "Principal ", "Interim "]
SUFFIXES = ["", " I", " II", " III", " (Remote)", " (Hybrid)", " - Contract", " - Night Shift"]


def shared_items(folder: str | Path) -> list[dict]:
    items = []
    for path in sorted(Path(folder).glob("*.json")):
        items += json.loads(path.read_text())
    return items


def title_variant(title: str, copy_number: int) -> str:
    prefix = PREFIXES[copy_number % len(PREFIXES)]
    suffix = SUFFIXES[(copy_number // len(PREFIXES)) % len(SUFFIXES)]
    return f"{prefix}{title}{suffix}"


def replay(
    items: list[dict], n: int, first_id: int = 50_000_000, per_day: int = 40, first_copy: int = 0
) -> list[dict]:
    """`n` postings; `first_copy` > 0 gives titles no earlier replay of that size used."""
    out = []
    for i in range(n):
        item = copy.deepcopy(items[i % len(items)])
        item["id"] = first_id + i
        item["name"] = title_variant(item.get("name") or "", first_copy + i // len(items))
        published = END - timedelta(days=i // per_day, minutes=i % per_day)
        item["publication_date"] = published.strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(item)
    return out
