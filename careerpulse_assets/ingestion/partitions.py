"""Reaching a listing past the API's page cap by walking narrower listings. Pure: no I/O.

The live API shows at most `capacity` postings of any listing (its page cap × 20, about 2,000).
A listing that holds more is parted by a filter kind (category, level, location, company): one
narrower listing per group of that kind's values, each group planned to hold about half of what
the cap lets through (the API lists a posting that has any of a group's values, so small values
share one listing instead of costing a request each). A part still over the cap is parted again:
a group of several values into two halves, a single value by the next kind.

Which kind: a kind with an override (CAREERPULSE_CRAWL_CATEGORIES / _LEVELS) first; else the first
in the order category, level, location, company whose parts would leave at most
ACCEPTABLE_UNREACHABLE of the listing's postings out, else the kind that leaves out fewest. A
posting is left out when it has no value of the kind (170 of 244 postings of 2025-26 have no
category) or a value nobody has seen yet. Both are estimated from the postings already stored:
the share of the listing's stored postings without a value, plus the Good-Turing estimate of the
share whose value was never seen (values seen on exactly one stored posting / stored postings;
Good, 1953, "The population frequencies of species"). The values are every value seen on any
stored posting (a company seen elsewhere may post here too) and the lists known beforehand (the
taxonomy's categories, the API's levels), or only an override's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .listings import KINDS, Listing

# A kind that leaves at most this share of a listing's postings out is taken in KINDS order.
ACCEPTABLE_UNREACHABLE = 0.01
# A kind whose largest value holds more than this share of the listing parts nothing off.
MAX_LARGEST_SHARE = 0.95
# A group is planned to hold at most this share of what the cap lets through: the estimate
# comes from the newest postings, and a group over the cap costs a request to find out.
GROUP_FILL = 0.5
# Values in one group, and their characters: request URLs stay under 4 kB, well within the 8 kB
# common servers accept.
MAX_GROUP_VALUES = 150
MAX_GROUP_CHARS = 3_500


@dataclass(frozen=True)
class Sample:
    """The stored postings of one listing, counted per filter value.

    `postings`: how many; `counts[kind][value]`: how many have that value; `without[kind]`: how
    many have no value of that kind.
    """

    postings: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    without: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Split:
    """How to part a listing: by `kind`, one listing per group of values."""

    kind: str
    groups: tuple[tuple[str, ...], ...]
    unreachable_share: float  # estimated share of the listing's postings no group lists
    reason: str


def unreachable_share(sample: Sample, stored: Sample, kind: str, values: set[str],
                      known: set[str], fixed: bool) -> float:
    """Estimated share of a listing's postings that no listing of `values` shows: the share of
    its stored postings (`sample`) without a value of `kind` or (with a fixed list) whose values
    are all outside `values`; and, for values discovered from postings, the Good-Turing mass of
    values never seen on any stored posting (`stored`: all of them)."""
    outside = 0.0
    if sample.postings:
        counts = sample.counts.get(kind, {})
        outside = (sample.without.get(kind, 0)
                   + sum(n for v, n in counts.items() if v not in values)) / sample.postings
    unseen = 0.0
    if not fixed and stored.postings:
        singletons = sum(1 for v, n in stored.counts.get(kind, {}).items()
                         if n == 1 and v not in known)
        unseen = singletons / stored.postings
    return min(1.0, outside + unseen)


def pack(values: list[str], sizes: dict[str, float], target: float) -> tuple[tuple[str, ...], ...]:
    """Values in groups whose estimated sizes add up to at most `target` (a value larger than
    that alone), at most MAX_GROUP_VALUES values and MAX_GROUP_CHARS characters a group:
    first-fit decreasing. Groups come out largest first, values sorted within each."""
    groups: list[tuple[list[str], float, int]] = []
    for value in sorted(values, key=lambda v: (-sizes.get(v, 0.0), v)):
        size, chars = sizes.get(value, 0.0), len(value) + 10
        for index, (members, filled, used) in enumerate(groups):
            if (filled + size <= target and len(members) < MAX_GROUP_VALUES
                    and used + chars <= MAX_GROUP_CHARS):
                members.append(value)
                groups[index] = (members, filled + size, used + chars)
                break
        else:
            groups.append(([value], size, chars))
    return tuple(tuple(sorted(members)) for members, _, _ in groups)


def estimated_sizes(sample: Sample, stored: Sample, kind: str, values,
                    total: int) -> dict[str, float]:
    """Postings per value in a listing of `total`: its share among the listing's stored
    postings; for a value none of them has, its share among all stored postings, at most what
    the listing's sample could have missed (one posting of it)."""
    counts, everywhere = sample.counts.get(kind, {}), stored.counts.get(kind, {})
    resolution = total / sample.postings if sample.postings else total
    sizes = {}
    for value in values:
        if counts.get(value):
            sizes[value] = total * counts[value] / sample.postings
        elif stored.postings:
            sizes[value] = min(resolution, total * everywhere.get(value, 0) / stored.postings)
        else:
            sizes[value] = 0.0
    return sizes


def plan_split(
    listing: Listing,
    total: int,
    capacity: int,
    sample: Sample,
    stored: Sample,
    known: dict[str, tuple[str, ...]] | None = None,
    fixed: dict[str, tuple[str, ...]] | None = None,
) -> Split | None:
    """How to part `listing` (`total` postings, of which the cap shows `capacity`), or None when
    no kind it is not already filtered by would part anything off (the postings past the cap
    then stay out of reach, and the caller counts them).

    `sample`: the listing's stored postings; `stored`: all stored postings; `known[kind]`: values
    known beforehand (taxonomy, levels); `fixed[kind]`: the only values to use for that kind (an
    override). Raises ValueError for a capacity below 1.
    """
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1 posting, got {capacity}")
    known, fixed = known or {}, fixed or {}
    candidates = []
    for order, kind in enumerate(KINDS):
        if kind in listing.kinds:
            continue
        counts = sample.counts.get(kind, {})
        values = (set(fixed[kind]) if fixed.get(kind)
                  else set(stored.counts.get(kind, {})) | set(counts) | set(known.get(kind, ())))
        if not values or (len(values) == 1 and not fixed.get(kind)):
            continue
        largest = max((counts.get(v, 0) for v in values), default=0)
        if sample.postings and largest > MAX_LARGEST_SHARE * sample.postings:
            continue
        share = unreachable_share(sample, stored, kind, values, set(known.get(kind, ())),
                                  bool(fixed.get(kind)))
        candidates.append((share, order, kind, values))
    if not candidates:
        return None
    overridden = [c for c in candidates if fixed.get(c[2])]
    acceptable = overridden or [c for c in candidates if c[0] <= ACCEPTABLE_UNREACHABLE]
    share, _, kind, values = (min(acceptable, key=lambda c: c[1]) if acceptable
                              else min(candidates, key=lambda c: c[:2]))
    sizes = estimated_sizes(sample, stored, kind, values, total)
    groups = pack(sorted(values), sizes, capacity * GROUP_FILL)
    return Split(
        kind, groups, share,
        f"{total:,} postings, the cap shows {capacity:,}: parted by {kind} ({len(values)} "
        f"values in {len(groups)} listings; about {share:.1%} of the postings have no value "
        f"of it the stored postings show)",
    )


def halves(group: tuple[str, ...], sizes: dict[str, float]) -> tuple[tuple[str, ...], ...]:
    """A group of values that turned out over the cap, as two groups of about equal estimated
    size (largest first into the lighter half)."""
    if len(group) < 2:
        raise ValueError("a single value cannot be halved; part it by another kind")
    parts: tuple[list[str], list[str]] = ([], [])
    weights = [0.0, 0.0]
    for value in sorted(group, key=lambda v: (-sizes.get(v, 0.0), v)):
        lighter = 0 if (weights[0], len(parts[0])) <= (weights[1], len(parts[1])) else 1
        parts[lighter].append(value)
        weights[lighter] += sizes.get(value, 0.0)
    return tuple(tuple(sorted(part)) for part in parts)
