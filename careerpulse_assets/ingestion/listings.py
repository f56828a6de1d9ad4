"""Listings of The Muse jobs API: the postings one filter shows, newest first.

The API filters `GET /jobs` by `category`, `level`, `location` and `company`. Its documentation
allows each several times; a listing holds the postings that have one of a kind's values (several
values of one kind widen it) for every kind given (several kinds narrow it). Every listing is
capped: pages past about 99 answer 400 "Value `page` is too high", so one listing shows at most
about 2,000 postings, and a crawl reaches the rest by walking narrower listings
(ingestion/partitions.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# The API's filters, in the order a listing is parted by them when it is over the cap.
KINDS = ("category", "level", "location", "company")

def _names(entries: Any) -> tuple[str, ...]:
    if not isinstance(entries, list):
        return ()
    return tuple(sorted({e["name"] for e in entries
                         if isinstance(e, dict) and isinstance(e.get("name"), str) and e["name"]}))


def posting_values(item: dict) -> dict[str, tuple[str, ...]]:
    """The values a posting is listed under, per filter kind: names of its `categories`,
    `levels` and `locations`, and its `company`'s name (sorted, empty when it has none)."""
    company = item.get("company")
    name = company.get("name") if isinstance(company, dict) else None
    return {
        "category": _names(item.get("categories")),
        "level": _names(item.get("levels")),
        "location": _names(item.get("locations")),
        "company": (name,) if isinstance(name, str) and name else (),
    }


@dataclass(frozen=True, order=True)
class Listing:
    """One listing: `filters` is ((kind, (value, ...)), ...) in KINDS order, values sorted.
    The plain listing (every posting) has no filters."""

    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def of(cls, filters: dict[str, Any] | None = None) -> Listing:
        """From {kind: value or values}; raises ValueError for a kind the API does not filter by
        or a kind without values."""
        normalised = []
        for kind, values in (filters or {}).items():
            if kind not in KINDS:
                raise ValueError(f"the Muse API does not filter by {kind!r}; it filters by {KINDS}")
            values = (values,) if isinstance(values, str) else tuple(values)
            if not values:
                raise ValueError(f"filter {kind!r} has no values")
            normalised.append((kind, tuple(sorted(set(values)))))
        return cls(tuple(sorted(normalised, key=lambda kv: KINDS.index(kv[0]))))

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(kind for kind, _ in self.filters)

    def narrowed(self, kind: str, values: tuple[str, ...]) -> Listing:
        """This listing with `kind` limited to `values` (replacing values of `kind` it had)."""
        return Listing.of({**dict(self.filters), kind: values})

    def params(self) -> list[tuple[str, str]]:
        """The filter as query parameters, one pair per value."""
        return [(kind, value) for kind, values in self.filters for value in values]

    @property
    def label(self) -> str:
        """`category=Sales&level=Senior Level`, values as they are (`category=Marketing & PR`: a
        value runs up to the next `&kind=`, as gold's coverage reads it); empty for the plain
        listing. The exact filters are in `to_json`."""
        return "&".join(f"{kind}={value}" for kind, value in self.params())

    def to_json(self) -> str:
        return json.dumps([[kind, list(values)] for kind, values in self.filters])

    @classmethod
    def from_json(cls, text: str) -> Listing:
        return cls.of({kind: values for kind, values in json.loads(text)})

    def lists(self, values: dict[str, tuple[str, ...]]) -> bool:
        """Whether a posting with these `posting_values` is in this listing."""
        return all(set(values.get(kind, ())) & set(wanted) for kind, wanted in self.filters)


PLAIN = Listing()
