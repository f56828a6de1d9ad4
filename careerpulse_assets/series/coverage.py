"""Which days of the demand series anybody saw (`observed`), and saw whole (`complete`).

The Muse lists only postings that are still open, so what gold counts for a day depends on when
someone looked at the listing, not only on how many postings the day had. The rule, per source
(a value of `bronze.bronze_postings.source`) and then per day and category:

1. **Complete.** A walk of an API listing that covered it (`bronze.bronze_crawls.complete`: it
   reached the listing's end, its cap, or pages already stored, with no unreadable page) saw
   every posting still open when it started, back to where it stopped. Two consecutive covering
   walks at most MAX_WALK_GAP_DAYS apart therefore saw every posting published between them,
   provided postings stay listed that long (the assumption this rule rests on; a daily re-walk
   may fail twice) and the second walk reached back to the first one's start: a walk stopped by
   the API's page cap, or parted because of it (`status` capped or split), reached only back to
   its oldest posting (`oldest_publication_date`), which at the live API's volume can be hours
   old; its parts filtered by level, place or company never complete days (rule 4). Every day
   from the first walk's UTC day to the day before the second one's is complete: its count is
   the day's demand. The day of the newest walk is not: it was not over.
2. **Observed, not complete (backfilled).** Days before a listing's first covering walk, days in a
   longer gap between covering walks, and days of a listing whose walks never covered it were
   seen only through the postings still open when a walk came: an undercount growing with age.
   An archive (`archive:<file>`) is a snapshot of postings open when it was saved: the same.
3. **Not observed.** Outside every source's span (its oldest posting to its newest posting or
   newest walk), and any stretch of NO_POSTING_DAYS (28) days or more with no posting at all in a
   source's scope, unless rule 1 made the days complete: a job board publishes every week, so
   four silent weeks mean nobody looked (the shared postings have 2017-02 to 2021-07 empty).
4. **Scope.** A listing filtered by category (`api:...?category=Sales`) sees that category only;
   an archive whose postings (at least MIN_POSTINGS_FOR_CATEGORY_LISTING) are all counted in one
   category was saved from such a listing (The Muse lists ~25 categories: hundreds of postings
   in one alone are not a sample of all). Other sources see every category. A listing filtered
   by anything else (level, location, company) sees only part of each category: it observes
   days but never makes them complete.

5. **Not yet.** A day after today (by the API's clock when this machine's disagrees:
   ingestion/clock.py) was seen by nobody, whatever a posting dated ahead or a walk stamped by a
   clock that ran ahead says: it is never observed nor complete, and such a walk is no evidence.

A day and category is observed (complete) when any source whose scope holds the category
observed (completed) the day; complete days are observed. Sources are told apart only by these
columns, so a new kind of walk (issue 19's capped and partitioned listings) changes
`source_scope` and `complete_days`, not the gold table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

NO_POSTING_DAYS = 28
MAX_WALK_GAP_DAYS = 3
MIN_POSTINGS_FOR_CATEGORY_LISTING = 100
COVERAGE_COLUMNS = ["day", "category", "observed", "complete"]

# Filter values may hold '&' ("Marketing & PR"): a value runs up to the next known filter.
_FILTER = re.compile(r"(category|level|location|company)=(.*?)(?=&(?:category|level|location|company)=|$)")


@dataclass(frozen=True)
class SourceCoverage:
    """What one source saw: `categories` None means every category."""

    source: str
    categories: frozenset[str] | None
    observed: frozenset[date]
    complete: frozenset[date]


def listing_filters(source: str) -> list[tuple[str, str]]:
    """The (name, value) filters of an API listing's source name (`api:<url>?category=Sales`)."""
    _, _, query = source.partition("?")
    return _FILTER.findall(query)


def source_scope(source: str, listed_categories: pd.Series) -> tuple[frozenset[str] | None, bool]:
    """(categories the source sees, None for all; whether its walks may make days complete).

    `listed_categories`: the category each posting the source stored was listed under (None
    when it was imputed or has none: an archive with such postings was not a category's
    listing)."""
    if source.startswith("api:"):
        filters = listing_filters(source)
        categories = frozenset(value for name, value in filters if name == "category")
        partial = any(name != "category" for name, _ in filters)
        return categories or None, not partial
    counts = listed_categories.value_counts(dropna=False)
    if (len(counts) == 1 and pd.notna(counts.index[0])
            and counts.iloc[0] >= MIN_POSTINGS_FOR_CATEGORY_LISTING):
        return frozenset(counts.index), False
    return None, False


def _utc(moment) -> pd.Timestamp:
    """A timestamp in UTC; one without a zone is taken to be UTC already."""
    moment = pd.Timestamp(moment)
    return moment.tz_convert("UTC") if moment.tzinfo else moment


def complete_days(
    walk_starts: Iterable[pd.Timestamp], reached_back_to: Iterable[pd.Timestamp | None] | None = None
) -> set[date]:
    """UTC days made complete by covering walks of one listing (rule 1): from each walk's day to
    the day before the next walk's, when the next one started within MAX_WALK_GAP_DAYS and read
    back to the first one's start. `reached_back_to`: per walk, the publication time of the
    oldest posting it read when the page cap stopped it (None/NaT: it read to the listing's end
    or to pages already stored); omitted, every walk read that far."""
    starts = [_utc(t) for t in walk_starts]
    reaches = ([None] * len(starts) if reached_back_to is None
               else [None if r is None or pd.isna(r) else _utc(r) for r in reached_back_to])
    walks = sorted(zip(starts, reaches), key=lambda walk: walk[0])
    days: set[date] = set()
    for (first, _), (second, reach) in zip(walks, walks[1:]):
        if reach is not None and reach > first:
            continue  # the cap stopped the second walk before it reached the first one's start
        if second - first <= pd.Timedelta(days=MAX_WALK_GAP_DAYS):
            day = first.date()
            while day < second.date():
                days.add(day)
                day += timedelta(days=1)
    return days


def seen_days(first: date, last: date, posting_days: Iterable[date]) -> set[date]:
    """Days from `first` to `last` outside every stretch of NO_POSTING_DAYS or more days without a
    posting (rule 3). `posting_days`: the days with a posting in the source's scope."""
    posted = sorted({d for d in posting_days if first <= d <= last})
    seen = set()
    # The span's ends count as postings: a silence is measured between them too.
    edges = [first - timedelta(days=1)] + posted + [last + timedelta(days=1)]
    for before, after in zip(edges, edges[1:]):
        silence = (after - before).days - 1
        if silence >= NO_POSTING_DAYS:
            continue
        day = before + timedelta(days=1)
        while day < after:
            seen.add(day)
            day += timedelta(days=1)
    return seen | set(posted)


def source_coverage(
    source: str, postings: pd.DataFrame, all_postings: pd.DataFrame, walks: pd.DataFrame
) -> SourceCoverage:
    """Rules 1-4 for one source. `postings`: its (day, category, listed_category) rows;
    `all_postings`: every source's, for the silences in its scope; `walks`: its (started_at,
    complete) rows."""
    categories, may_complete = source_scope(source, postings["listed_category"])
    covering = walks[walks["complete"].astype(bool)] if len(walks) else walks
    reaches = covering["reached_back_to"] if "reached_back_to" in covering else None
    complete = (complete_days(covering["started_at"] if len(covering) else [], reaches)
                if may_complete else set())
    last_walk = [_utc(walks["started_at"].max()).date()] if len(walks) else []
    first = min(postings["day"])
    last = max([max(postings["day"]), *last_walk])
    in_scope = all_postings if categories is None else all_postings[
        all_postings["category"].isin(categories)]
    observed = seen_days(first, last, in_scope["day"]) | complete
    return SourceCoverage(source, categories, frozenset(observed), frozenset(complete))


def day_coverage(postings: pd.DataFrame, walks: pd.DataFrame,
                 today: date | None = None, categories: Iterable[str] = ()
                 ) -> pd.DataFrame:
    """The gold grid with its flags: one row per day from the first posting (or walk) to the last
    and per category, columns day (date), category, observed, complete (bool).

    `postings`: one row per posting and source that stored it, columns source, day (UTC
    publication day, date), category (as gold counts it), listed_category (the category the
    source listed it under; None when imputed or missing). `walks`: `bronze.bronze_crawls` rows,
    columns source, started_at (UTC timestamps), complete and optionally reached_back_to (the
    oldest posting's publication time of a walk the page cap stopped, else NaT). `today`: no
    day after it is observed or complete, and walks stamped after it are left out (rule 5);
    None: no day is in the future. `categories`: more categories to give rows (those postings
    without a category may be in). No postings: an empty grid."""
    if postings.empty:
        return pd.DataFrame(columns=COVERAGE_COLUMNS)
    postings = postings.assign(day=pd.to_datetime(postings["day"]).dt.date)
    if today is not None and len(walks):
        walks = walks[[_utc(t).date() <= today for t in walks["started_at"]]]
    sources = [
        source_coverage(source, group, postings, walks[walks["source"] == source])
        for source, group in postings.groupby("source", sort=True)
    ]
    if today is not None:
        sources = [SourceCoverage(s.source, s.categories,
                                  frozenset(d for d in s.observed if d <= today),
                                  frozenset(d for d in s.complete if d <= today))
                   for s in sources]
    first = min(postings["day"])
    last = max(max(s.observed, default=first) for s in sources)
    last = max(last, max(postings["day"]))
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    categories = sorted(set(postings["category"].unique()) | set(categories))
    observed = np.zeros((len(days), len(categories)), dtype=bool)
    complete = np.zeros_like(observed)
    day_index = {day: n for n, day in enumerate(days)}
    for source in sources:
        columns = [n for n, c in enumerate(categories)
                   if source.categories is None or c in source.categories]
        for flags, seen in ((observed, source.observed), (complete, source.complete)):
            rows = [day_index[d] for d in seen if d in day_index]
            flags[np.ix_(rows, columns)] = True
    return pd.DataFrame({
        "day": np.repeat(days, len(categories)),
        "category": np.tile(categories, len(days)),
        "observed": observed.ravel(),
        "complete": complete.ravel(),
    })
