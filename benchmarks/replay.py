"""Postings at any scale, replayed from the shared real ones.

`ReplayedPostings` (what `make bench` serves): posting i is a pure function of (seed, i), so the
loopback API builds any page on request and nothing holds all of them (400,000 postings with
their texts would take ~16 GB). Each one's category is drawn with the shared labelled postings'
mix; its title is a title of that category (of any category with p = FOREIGN_TITLE_SHARE) with
one of 64 seniority variants; its body as many sentences as its source, each from the sentences
of the category's shared postings or (p = FOREIGN_SENTENCE_SHARE) of any shared posting. The
noise makes an exact KNN score as on the real postings (out-of-fold accuracy 0.92-0.93 at
20k-400k, real 0.87-0.93; without it 0.97: issue 29's research, section 1). Dates
PER_DAY a day back from END; each posting loses its category with p = `unlabelled_share`
(0.70, at random); the true category stays beside it (`true_categories`), never served.

`replay` (the older copies, still used by the ingestion and logging benchmarks): copy c of a
real posting with a fresh id, a date and a title variant (64 a posting: ~102,000 distinct texts
from the 1,598 shared postings, bodies shared, 10.6 % without a category). Use those to time
ingestion, never to judge a classifier.
"""

from __future__ import annotations

import collections
import copy
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from careerpulse_assets.ingestion.postings import silver_row
from careerpulse_assets.review.taxonomy import category_names, load_taxonomy

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


# The live API in 2026: ~407,000 postings over about a year (DESIGN.md), ~70 % of them without a
# category (issue 29).
PER_DAY = 1_100
UNLABELLED_SHARE = 0.70
# Set so an exact KNN scores on the replay as on the real postings (issue 29's research,
# section 1).
FOREIGN_SENTENCE_SHARE = 0.5
FOREIGN_TITLE_SHARE = 0.15
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class ReplaySources:
    """The shared postings that have a category, as a replay draws from them."""

    items: list[dict]
    categories: np.ndarray  # each one's category under its current name
    listed_names: list[str]  # each one's category as the API listed it
    titles: list[str]
    sentence_counts: np.ndarray
    by_category: dict[str, np.ndarray]  # category -> positions in `items`
    sentences: dict[str, np.ndarray]  # category -> every sentence of its postings
    every_sentence: np.ndarray  # every sentence of every shared posting


def replay_sources(items: list[dict]) -> ReplaySources:
    """What a replay draws from `items` (raw Muse items; those without a category lend their
    sentences to the noise only). Raises ValueError when none has a category."""
    rows = [silver_row(item) for item in items]
    names = category_names(load_taxonomy(),
                           collections.Counter(n for row in rows for n in row["categories"]))
    kept, categories, listed, titles, counts = [], [], [], [], []
    pools: dict[str, list[str]] = collections.defaultdict(list)
    every: list[str] = []
    for item, row in zip(items, rows, strict=True):
        sentences = [s for s in _SENTENCE_END.split(row["description_text"] or "") if s]
        every += sentences
        current = names.counted_as(row["category"]) if row["category"] else None
        if current is None:
            continue
        kept.append(item)
        categories.append(current)
        listed.append(row["category"])
        titles.append(row["title"] or "")
        counts.append(max(1, len(sentences)))
        pools[current] += sentences or [row["title"] or ""]
    if not kept:
        raise ValueError("no posting with a category to replay")
    categories = np.array(categories, dtype=object)
    return ReplaySources(
        kept, categories, listed, titles, np.array(counts),
        {c: np.flatnonzero(categories == c) for c in np.unique(categories)},
        {c: np.array(p, dtype=object) for c, p in pools.items()},
        np.array(every or [""], dtype=object))


class ReplayedPostings(Sequence):
    """`n` replayed postings (and `newer` ones published after them), newest first: a sequence
    of raw Muse items built on request, as the loopback API's listing.

    Posting i (ids `first_id + i`; i < 0 for the newer ones) is a pure function of (seed, i):
    the same item whenever it is built. Published END - i / PER_DAY days. Every text is
    distinct at any size: the body ends with the posting's own reference (one word no other
    posting has; TF-IDF keeps 10,000 words a block, the most frequent, so past a few thousand
    postings it never counts), where drawing until distinct would hold every text.
    """

    def __init__(self, sources: ReplaySources, n: int, seed: int = 0,
                 unlabelled_share: float = UNLABELLED_SHARE, per_day: int = PER_DAY,
                 end: datetime = END, first_id: int = 50_000_000, newer: int = 0):
        self.sources, self.n, self.seed = sources, n, seed
        self.unlabelled_share, self.per_day, self.end = unlabelled_share, per_day, end
        self.first_id, self.newer = first_id, newer

    def with_newer(self, newer: int) -> "ReplayedPostings":
        """The same postings and `newer` ones published after the newest (a new page)."""
        return ReplayedPostings(self.sources, self.n, self.seed, self.unlabelled_share,
                                self.per_day, self.end, self.first_id, newer)

    def __len__(self) -> int:
        return self.n + self.newer

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.posting(i - self.newer) for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.posting(index % len(self) - self.newer)

    def _draws(self, i: int) -> tuple[np.random.Generator, int]:
        rng = np.random.default_rng([self.seed, self.first_id + i])
        return rng, int(rng.integers(0, len(self.sources.items)))

    def true_category(self, i: int) -> str:
        return str(self.sources.categories[self._draws(i)[1]])

    def true_categories(self) -> pd.DataFrame:
        """posting_id, true_category of every posting (those served without one included)."""
        positions = range(-self.newer, self.n)
        return pd.DataFrame({"posting_id": [self.first_id + i for i in positions],
                             "true_category": [self.true_category(i) for i in positions]})

    def posting(self, i: int) -> dict:
        """Posting i as the API would list it."""
        src = self.sources
        rng, source = self._draws(i)
        category = src.categories[source]
        dropped = rng.random() < self.unlabelled_share
        title_source = (int(rng.integers(0, len(src.items)))
                        if rng.random() < FOREIGN_TITLE_SHARE
                        else int(rng.choice(src.by_category[category])))
        title = title_variant(src.titles[title_source], int(rng.integers(0, 64)))
        count = int(src.sentence_counts[source])
        foreign = rng.random(count) < FOREIGN_SENTENCE_SHARE
        own = src.sentences[category][rng.integers(0, len(src.sentences[category]), count)]
        other = src.every_sentence[rng.integers(0, len(src.every_sentence), count)]
        posting_id = self.first_id + i
        body = " ".join([*np.where(foreign, other, own), f"Reference R{posting_id}."])
        published = self.end - timedelta(days=i / self.per_day)
        return dict(
            src.items[source], id=posting_id, name=title,
            contents="<p>" + html.escape(body, quote=False) + "</p>",
            publication_date=published.strftime("%Y-%m-%dT%H:%M:%SZ"),
            categories=[] if dropped else [{"name": src.listed_names[source]}],
            short_name=f"replayed-{posting_id}",
            refs={"landing_page": f"https://www.themuse.com/jobs/replayed/{posting_id}"},
        )
