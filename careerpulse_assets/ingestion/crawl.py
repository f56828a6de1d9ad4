"""Crawling the Muse API into bronze: which listings to walk, how far, and what stays out of reach.

Two crawls keep bronze up to date. Each is a frontier of listings ("parts") in
`bronze.bronze_crawl_frontier`, walked in order and resumed where it stopped, so one crawl may
span many runs (a run spends at most its request budget; a kill loses at most the pages not
yet committed, because pages and the frontier's progress over them are committed together in
batches of up to 20: ingestion/bronze_store.py).

- The *full* crawl reads every posting the API shows. It starts with the plain listing; a listing
  the API caps (400 "Value `page` is too high" past about page 99) is parted by a filter
  (ingestion/partitions.py) and its parts are walked in turn; once the cap is known, a listing whose
  first page says it holds more than the cap shows is parted at once. It runs the first time,
  whenever the plain listing is not covered (its last walk met an unreadable page or was cut
  short), and when asked (`full_crawl`: the weekly schedule).
- The *incremental* crawl runs on every run once the plain listing is covered: it walks the plain
  listing newest first and stops at the first page whose postings are all stored, provided it
  found as many postings new since the crawl began as the listing's `total` grew since its last
  walk (a posting re-dated or published into a page already read raises the total without
  showing on page 0).
  When more postings arrived than the cap shows, it parts the listing and walks each part the
  same way. Parts of earlier crawls that met an unreadable page are walked again in it. A
  listing the API serves oldest first although `descending=true` was asked (its page 0 rises in
  date and is older than the newest posting stored from it) has its new postings on its last
  pages: it is walked whole instead, with a warning (`served_oldest_first`).

A listing covered by an earlier crawl (its last walk reached its end, the cap, pages already
stored, or it was parted) may stop at stored pages; one never covered is walked whole.

Postings out of reach are counted, not lost silently: each crawl records the postings its walks
read (`bronze.bronze_crawl_postings`), and a finished full crawl reports the plain listing's
`total` less those: a lower bound when the listings shrank while they were walked (postings read
may have left since), no figure when more were read than the API lists now. When a full crawl
has walked every part, a listing of which it reached fewer postings than its `total` gets parts
for the values discovered since it was parted (a city first seen on a posting of another level);
what no value reaches (no level, a company never seen on any posting read) stays out and is
counted. A capped listing no kind parts notes `total - cap`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb

from .muse_api import BUDGET, CAP, END, ListingWalk, RequestBudget
from .listings import PLAIN, Listing
from .pages import PAGE_SIZE, RawPage
from .bronze_store import BronzeWriter, PageOutcome, last_crawl_complete, listing_sample
from .clock import CLOCK_TOLERANCE, Clock
from .partitions import GROUP_FILL, Split, estimated_sizes, halves, pack, plan_split
from .postings import InvalidPosting, parse_publication_date
from ..ops.duckdb_file import transaction_with

FULL, INCREMENTAL = "full", "incremental"
# States of a part in the frontier.
TO_DO, WALKING, DONE = "to do", "walking", "done"
# How a walk ended (bronze_crawls.status) and what became of a part (frontier outcome).
COMPLETE = "complete"  # reached the listing's end, or pages already stored
CAPPED = "capped"  # reached the API's page cap
SPLIT = "split"  # over the cap: parted into narrower listings
PAUSED = "paused"  # the run's request budget was spent; a later run goes on
INCOMPLETE = "incomplete"  # an unreadable page, CAREERPULSE_MAX_PAGES, a server ignoring `page`
INTERRUPTED = "interrupted"  # the run died during the walk; a later run went on from its page
COVERING = (COMPLETE, CAPPED, SPLIT)
# Stored postings a listing's values are estimated from; with fewer, a wider listing's are used.
# In 200 postings a share of 2 % without a value shows with 98 % probability (1 - 0.98^200).
MIN_SAMPLE = 200


@dataclass(frozen=True)
class Part:
    crawl_id: str
    kind: str
    source: str
    listing: Listing
    parent_source: str | None
    parted_by: str | None
    may_stop: bool
    next_page: int
    total: int | None
    shrank_by: int  # by the walks of earlier runs


@dataclass
class WalkRecord:
    """What one walk of a part saw."""

    pages: int = 0
    requests: int = 0
    reached: int = 0
    new: int = 0
    arrived: int = 0  # postings on its pages first stored since the crawl started
    unreadable: int = 0
    first_total: int | None = None
    last_page: int | None = None
    oldest: datetime | None = None
    newest: datetime | None = None
    stopped_at_stored: bool = False
    split_now: bool = False
    oldest_first: bool = False

    def add(self, page: RawPage, outcome: PageOutcome) -> None:
        self.pages += 1
        self.reached += outcome.valid
        self.new += outcome.inserted
        self.unreadable += page.error is not None
        if self.first_total is None and page.total is not None:
            self.first_total = page.total
        self.last_page = max(page.page, self.last_page if self.last_page is not None else -1)
        if outcome.oldest is not None:
            self.oldest = min(outcome.oldest, self.oldest or outcome.oldest)
            self.newest = max(outcome.newest, self.newest or outcome.newest)


@dataclass
class CrawlProgress:
    """Where one crawl stands after a run."""

    crawl_id: str
    kind: str
    started_at: datetime
    parts_done: int
    parts_to_do: int
    parts_split: int
    parts_capped: int
    listing_total: int | None  # the plain listing's `total` in its latest answer
    reached: int  # distinct postings the crawl's walks have read
    unusable: int  # items read that are no postings (quarantined), or repeated on their page
    shrank_by: int = 0  # how far its listings' totals fell while they were walked, in all

    @property
    def finished(self) -> bool:
        return self.parts_to_do == 0

    @property
    def out_of_reach(self) -> int | None:
        """Postings the API lists that no walk of the finished crawl read: its `total` less the
        postings and quarantined items read. None before the crawl finished, and when more were
        read than the API lists now (postings read have left the listing since, so how many of
        those it lists were read is not known). A lower bound when the listing shrank while it
        was walked (`exact` False): postings read may have left it."""
        if not self.finished or self.listing_total is None:
            return None
        missing = self.listing_total - self.reached - self.unusable
        return missing if missing >= 0 else None

    @property
    def exact(self) -> bool:
        return self.out_of_reach is not None and self.shrank_by == 0

    def reach(self) -> str:
        """The postings reached, of the API's `total`, and out of reach, as a phrase."""
        total = f"{self.listing_total:,}" if self.listing_total is not None else "?"
        read = self.reached + self.unusable
        quarantined = (f" ({self.unusable:,} more items quarantined)" if self.unusable else "")
        shrank = (f"the listings shrank by {self.shrank_by:,} while they were walked"
                  if self.shrank_by else "")
        if self.listing_total is not None and read > self.listing_total:
            return (f"{self.reached:,} postings reached{quarantined}, more than the {total} the "
                    f"API lists now: at least {read - self.listing_total:,} of them have left "
                    f"the listing since" + (f" ({shrank})" if shrank else "")
                    + ("; how many it lists are out of reach is not known"
                       if self.finished else ""))
        text = f"{self.reached:,} postings reached of the {total} the API lists{quarantined}"
        if self.exact:
            return text + f", {self.out_of_reach:,} out of reach of every filter"
        if self.out_of_reach is not None:
            return (text + f", at least {self.out_of_reach:,} out of reach of every filter "
                    f"({shrank}: postings read may have left it since)")
        return text


def served_oldest_first(page: RawPage, newest_stored: datetime | None) -> bool:
    """Whether page 0 of a listing shows it served oldest first, although every request asks
    `descending=true`: its postings' dates rise down the page and even its newest is older than
    the newest posting stored from this listing. Either sign alone is not enough: a newest-first
    page 0 is older than the newest stored posting once that posting expired, and a server may
    order the items of a page otherwise (by id)."""
    dates = []
    for item in page.items:
        try:
            dates.append(parse_publication_date(item.get("publication_date")))
        except (InvalidPosting, AttributeError):
            continue  # not a posting: quarantined, no date to order by
    return (newest_stored is not None and len(dates) >= 2 and dates[0] < dates[-1]
            and max(dates) < newest_stored)


@dataclass
class CrawlRun:
    """What a run's crawling did and where the crawls stand."""

    requests: int
    budget: int | None
    page_cap: int | None
    walks: int
    stopped_at_stored: int  # walks that stopped at a page of stored postings
    crawls: list[CrawlProgress] = field(default_factory=list)
    # Listings (bronze `source`) the API served oldest first: walked whole this run.
    oldest_first: list[str] = field(default_factory=list)

    @property
    def unfinished(self) -> list[CrawlProgress]:
        return [crawl for crawl in self.crawls if not crawl.finished]

    @property
    def budget_spent(self) -> bool:
        return self.budget is not None and self.requests >= self.budget

    def lines(self) -> list[str]:
        budget = f" of a budget of {self.budget:,}" if self.budget is not None else ""
        cap = f"; the API caps listings at page {self.page_cap}" if self.page_cap else ""
        lines = [f"{self.requests:,} requests{budget} over {self.walks} listing walks{cap}"]
        for crawl in self.crawls:
            state = ("finished" if crawl.finished
                     else f"{crawl.parts_to_do} listings to do, continues next run")
            line = (f"{crawl.kind} crawl {crawl.crawl_id} ({crawl.started_at:%Y-%m-%d %H:%M} UTC): "
                    f"{crawl.parts_done} listings walked, {state}")
            if crawl.kind == FULL:
                # A listing that met the cap is parted when a filter can part it; "capped" are
                # the ones no filter could, whose postings past the cap stay out of reach.
                line += (f"; {crawl.reach()}; {crawl.parts_split} listings over the cap parted, "
                         f"{crawl.parts_capped} left capped (no filter parts them)")
            lines.append(line)
        return lines


class Crawler:
    """Runs the crawls of one API into bronze through `writer`.

    `walk_listing(listing, start_page=, page_cap=, previous_total=, budget=, read_ahead=)` gives a
    ListingWalk over HTTP; `source_of(listing)` names a listing in bronze's `source`; `known` and
    `fixed` are the partition values known beforehand and the overrides (ingestion/partitions.py);
    `log` gets a line per listing walked.
    """

    def __init__(
        self,
        writer: BronzeWriter,
        walk_listing: Callable[..., ListingWalk],
        source_of: Callable[[Listing], str],
        budget: RequestBudget,
        known: dict[str, tuple[str, ...]] | None = None,
        fixed: dict[str, tuple[str, ...]] | None = None,
        log: Callable[[str], None] = lambda _: None,
        warn: Callable[[str], None] | None = None,
        clock: Clock | None = None,
    ):
        self.writer, self.walk_listing, self.source_of = writer, walk_listing, source_of
        self.budget, self.known, self.fixed, self.log = budget, known or {}, fixed or {}, log
        self.warn = warn or log
        # Every stamp the crawls write is this clock's: the API's time when this machine's
        # disagrees (ingestion/clock.py), corrected by each answer.
        self.clock = clock or Clock()
        self.walks = self.stopped_at_stored = 0
        self.oldest_first: list[str] = []
        # A plan made at a listing's first page, used when its walk is finished.
        self._plans: dict[str, Split] = {}

    @property
    def _db(self) -> duckdb.DuckDBPyConnection:
        return self.writer.connection()

    def run(self, full_crawl: bool = False, full_crawl_every: timedelta | None = None
            ) -> CrawlRun:
        """Go on with (or start) the incremental crawl, then the full crawl, until the budget
        is spent. A full crawl starts (unless one is unfinished) when `full_crawl` asks, when
        the plain listing is not covered, or when the last full crawl started more than
        `full_crawl_every` ago."""
        root = self.source_of(PLAIN)
        crawls = []
        incremental = self._unfinished(INCREMENTAL)
        if incremental is None and self._covered(root):
            incremental = self._start(INCREMENTAL)
        if incremental is not None:
            crawls.append(incremental)
            self._walk_crawl(incremental)
        full = self._unfinished(FULL)
        if full is None and (full_crawl or not self._covered(root)
                             or self._full_crawl_due(full_crawl_every)):
            full = self._start(FULL)
        if full is not None:
            crawls.append(full)
            self._walk_crawl(full)
        self.forget_old_crawls()
        return CrawlRun(self.budget.spent, self.budget.limit, self._known_cap(), self.walks,
                        self.stopped_at_stored, [self.progress(crawl_id) for crawl_id in crawls],
                        self.oldest_first)

    # --- the frontier ------------------------------------------------------------------------

    def _unfinished(self, kind: str) -> str | None:
        row = self._db.execute(
            "SELECT crawl_id FROM bronze.bronze_crawl_frontier WHERE kind = ? "
            "AND state IN (?, ?) ORDER BY position LIMIT 1", [kind, TO_DO, WALKING],
        ).fetchall()
        return row[0][0] if row else None

    def _full_crawl_due(self, every: timedelta | None) -> bool:
        """Whether the last full crawl started more than `every` ago (in a store from before
        crawls had frontiers, the last complete walk counts as one)."""
        if every is None:
            return False
        started = self._db.execute(
            "SELECT coalesce((SELECT max(started) FROM (SELECT min(created_at) AS started FROM "
            "bronze.bronze_crawl_frontier WHERE kind = ? GROUP BY crawl_id)), (SELECT "
            "max(started_at) FROM bronze.bronze_crawls WHERE complete AND crawl_id IS NULL))",
            [FULL],
        ).fetchall()[0][0]
        now = self.clock.now()
        if started is not None and started > now + CLOCK_TOLERANCE:
            # Stamped by a clock that ran ahead: when it really started is not known.
            self.warn(f"the last full crawl is stamped {started:%Y-%m-%d %H:%M} UTC, after now "
                      f"({now:%Y-%m-%d %H:%M} UTC): a clock was ahead when it was stamped; a "
                      "full crawl starts now")
            return True
        return started is None or now - started > every

    def _covered(self, source: str) -> bool:
        """Whether an earlier crawl covered this listing (so a walk may stop at stored pages)."""
        rows = self._db.execute(
            "SELECT state, outcome FROM bronze.bronze_crawl_frontier WHERE source = ? "
            "ORDER BY state = ? DESC, updated_at DESC, position DESC LIMIT 1", [source, DONE],
        ).fetchall()
        if not rows:  # a store from before crawls had frontiers
            return last_crawl_complete(self._db, source)
        state, outcome = rows[0]
        return state == DONE and outcome in COVERING

    def _start(self, kind: str) -> str:
        crawl_id = f"{kind}-{uuid.uuid4().hex[:8]}"
        self._add_part(crawl_id, kind, PLAIN, None, None, may_stop=kind == INCREMENTAL)
        if kind == INCREMENTAL:
            # Parts whose last walk met an unreadable page are walked again, whole.
            for (listing,) in self._db.execute(
                "SELECT listing FROM bronze.bronze_crawl_frontier f WHERE state = ? "
                "AND parent_source IS NOT NULL AND outcome = ? AND updated_at = "
                "(SELECT max(updated_at) FROM bronze.bronze_crawl_frontier g "
                "WHERE g.source = f.source AND g.state = ?)",
                [DONE, INCOMPLETE, DONE],
            ).fetchall():
                self._add_part(crawl_id, kind, Listing.from_json(listing), None, None,
                               may_stop=False)
        return crawl_id

    def _add_part(self, crawl_id: str, kind: str, listing: Listing, parent: str | None,
                  parted_by: str | None, may_stop: bool) -> None:
        source = self.source_of(listing)
        now = self.clock.now()
        self._db.execute(
            "INSERT INTO bronze.bronze_crawl_frontier (crawl_id, kind, source, listing, "
            "parent_source, parted_by, may_stop, state, created_at, updated_at, rows_before) "
            "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT coalesce(max(bronze_row_id), 0) "
            "FROM bronze.bronze_postings) WHERE NOT EXISTS (SELECT 1 FROM "
            "bronze.bronze_crawl_frontier WHERE crawl_id = ? AND source = ?)",
            [crawl_id, kind, source, listing.to_json(), parent, parted_by, may_stop, TO_DO,
             now, now, crawl_id, source],
        )

    def _next_part(self, crawl_id: str) -> Part | None:
        row = self._db.execute(
            "SELECT crawl_id, kind, source, listing, parent_source, parted_by, may_stop, "
            "next_page, total, coalesce(shrank_by, 0) FROM bronze.bronze_crawl_frontier "
            "WHERE crawl_id = ? "
            "AND state IN (?, ?) ORDER BY position LIMIT 1", [crawl_id, TO_DO, WALKING],
        ).fetchall()
        if not row:
            return None
        crawl, kind, source, listing, parent, parted_by, may_stop, next_page, total, shrank = \
            row[0]
        return Part(crawl, kind, source, Listing.from_json(listing), parent, parted_by,
                    may_stop, next_page, total, shrank)

    def _walk_crawl(self, crawl_id: str) -> None:
        while True:
            part = self._next_part(crawl_id)
            if part is None:
                if self._top_up(crawl_id):  # no request: parts the next run may walk
                    continue
                return
            if self.budget.exhausted:
                return
            self._walk_part(part)

    def _top_up(self, crawl_id: str) -> bool:
        """When a crawl has walked every part: add parts for the values discovered since a
        listing was parted (a city first seen on a posting of another level), for each listing
        of which the crawl reached fewer postings than its `total`. True when parts were added.

        Listings walked to stored pages (incremental) and groups halved (their values are fixed)
        are left as they are."""
        added = False
        stored = listing_sample(self._db, PLAIN)
        for source, listing_json, total, kind in self._db.execute(
            "SELECT source, listing, total, split_by FROM bronze.bronze_crawl_frontier "
            "WHERE crawl_id = ? AND outcome = ? AND NOT may_stop "
            "AND split_by IS DISTINCT FROM parted_by ORDER BY position",
            [crawl_id, SPLIT],
        ).fetchall():
            listing = Listing.from_json(listing_json)
            reached = listing_sample(self._db, listing, crawl_id)
            if total is None or reached.postings >= total:
                continue
            covered = {value for (child,) in self._db.execute(
                "SELECT listing FROM bronze.bronze_crawl_frontier WHERE crawl_id = ? "
                "AND parent_source = ?", [crawl_id, source]).fetchall()
                for value in dict(Listing.from_json(child).filters).get(kind, ())}
            values = (set(self.fixed[kind]) if self.fixed.get(kind) else
                      set(stored.counts.get(kind, {})) | set(self.known.get(kind, ()))) - covered
            if not values:
                continue
            sizes = estimated_sizes(reached, stored, kind, values, total)
            capacity = (self._known_cap(crawl_id) or 1) * PAGE_SIZE
            groups = pack(sorted(values), sizes, capacity * GROUP_FILL)
            with transaction_with(self._db):
                for group in groups:
                    self._add_part(crawl_id, FULL, listing.narrowed(kind, group), source, kind,
                                   may_stop=False)
            self.log(f"{source}: {total - reached.postings:,} of its {total:,} postings not "
                     f"reached yet; {len(values)} {kind} values seen since it was parted, in "
                     f"{len(groups)} more listings")
            added = True
        return added

    # --- what is known of the API --------------------------------------------------------------

    def _known_cap(self, crawl_id: str | None = None) -> int | None:
        """The first page the API refused as too high: in this crawl, or (crawl_id None) ever."""
        where = "crawl_id = ? AND " if crawl_id else ""
        row = self._db.execute(
            f"SELECT page_cap FROM bronze.bronze_crawls WHERE {where}page_cap IS NOT NULL "
            "ORDER BY started_at DESC LIMIT 1", [crawl_id] if crawl_id else [],
        ).fetchall()
        return row[0][0] if row else None

    def _page_cap(self, part: Part) -> int | None:
        """The cap a walk of `part` assumes: the one learned last (in this crawl, or before).
        Should the API lower it, the next walk meets the lower one and it is learned; should
        it raise it, walks still end at the old one and parts reach the rest."""
        return self._known_cap(part.crawl_id) or self._known_cap()

    def _newest_stored(self, source: str) -> datetime | None:
        """The newest publication date the walks of this listing have stored."""
        return self._db.execute(
            "SELECT max(newest_publication_date) FROM bronze.bronze_crawls WHERE source = ?",
            [source],
        ).fetchall()[0][0]

    def _last_total(self, source: str) -> int | None:
        row = self._db.execute(
            "SELECT total FROM bronze.bronze_crawls WHERE source = ? AND total IS NOT NULL "
            "AND status IS DISTINCT FROM 'walking' ORDER BY started_at DESC LIMIT 1", [source],
        ).fetchall()
        return row[0][0] if row else None

    # --- one part ----------------------------------------------------------------------------

    def _walk_part(self, part: Part) -> None:
        page_cap = self._page_cap(part)
        capacity = page_cap * PAGE_SIZE if page_cap else None
        last_total = self._last_total(part.source) if part.may_stop else None
        newest_stored = self._newest_stored(part.source) if part.may_stop else None
        record = WalkRecord()
        db = self._db
        now = self.clock.now()
        with transaction_with(db):
            db.execute(
                "UPDATE bronze.bronze_crawls SET status = ?, finished_at = ? "
                "WHERE crawl_id = ? AND source = ? AND status = 'walking'",
                [INTERRUPTED, now, part.crawl_id, part.source],
            )
            db.execute(
                "INSERT INTO bronze.bronze_crawls (source, run_id, started_at, crawl_id, "
                "status, first_page) VALUES (?, ?, ?, ?, 'walking', ?)",
                [part.source, self.writer.run_id, now, part.crawl_id, part.next_page],
            )
            db.execute(
                "UPDATE bronze.bronze_crawl_frontier SET state = ?, updated_at = ? "
                "WHERE crawl_id = ? AND source = ?", [WALKING, now, part.crawl_id, part.source],
            )
        walk = self.walk_listing(
            part.listing, start_page=part.next_page, page_cap=page_cap, budget=self.budget,
            previous_total=part.total if part.next_page > 0 else None,
            # A part that may not stop at stored pages is walked to its end once past page 0
            # (where it may be parted): its next page is asked for while a page is stored.
            read_ahead=None if part.may_stop else (lambda page: page.page > 0),
        )
        self.walks += 1

        def then(connection, page: RawPage, outcome: PageOutcome) -> None:
            record.add(page, outcome)
            self.clock.observe(page.clock_offset)
            if record.pages == 1:
                # The walk started when its first page was answered, by the API's clock: the
                # stamp written before it asked used the offset the last run measured.
                connection.execute(
                    "UPDATE bronze.bronze_crawls SET started_at = ? WHERE crawl_id = ? "
                    "AND source = ? AND status = 'walking'",
                    [page.fetched_at, part.crawl_id, part.source])
            read.extend(outcome.posting_ids)
            if part.may_stop:
                # New to bronze since the crawl began: stored by this walk or by another
                # listing of the crawl that holds them too (by row id: clocks may jump).
                record.arrived += connection.execute(
                    "SELECT count(*) FROM (SELECT posting_id FROM bronze.bronze_postings "
                    "WHERE posting_id IN (SELECT posting_id FROM page_rows) GROUP BY posting_id "
                    "HAVING min(bronze_row_id) > (SELECT min(rows_before) FROM "
                    "bronze.bronze_crawl_frontier WHERE crawl_id = ?))", [part.crawl_id],
                ).fetchall()[0][0]
            # The walk's own next page: back before this one when the listing shrank.
            progress.update(next_page=walk.next_page, shrank_by=part.shrank_by + walk.shrank,
                            updated_at=self.clock.now(),
                            unreadable=progress.get("unreadable", 0) + (page.error is not None),
                            unusable=progress.get("unusable", 0) + outcome.read - outcome.valid)
            if page.total is not None:
                progress["total"] = page.total

        # The postings read and the frontier's figures are written once per batch of pages,
        # just before it is committed (in its transaction: a kill loses both with the pages).
        read: list[int] = []
        progress: dict = {}

        def before_commit(connection) -> None:
            if read:
                connection.execute("INSERT INTO bronze.bronze_crawl_postings "
                                   "SELECT ?, unnest(?::BIGINT[])", [part.crawl_id, read])
                read.clear()
            if progress:
                connection.execute(
                    "UPDATE bronze.bronze_crawl_frontier SET next_page = ?, "
                    "total = coalesce(?, total), shrank_by = ?, unreadable = unreadable + ?, "
                    "unusable_items = unusable_items + ?, updated_at = ? "
                    "WHERE crawl_id = ? AND source = ?",
                    [progress["next_page"], progress.get("total"), progress["shrank_by"],
                     progress["unreadable"], progress["unusable"], progress["updated_at"],
                     part.crawl_id, part.source],
                )
                progress.clear()

        def stop(page: RawPage, outcome: PageOutcome) -> bool:
            if (part.may_stop and page.page == 0 and not record.oldest_first
                    and served_oldest_first(page, newest_stored)):
                # Its new postings are on its last pages, after pages of stored ones.
                record.oldest_first = True
                self.oldest_first.append(part.source)
                self.warn(f"{part.source} is served oldest first although descending=true was "
                          f"asked (page 0 rises in date and is older than the newest posting "
                          f"stored from it, {newest_stored:%Y-%m-%d %H:%M} UTC): walked whole, "
                          "not stopped at stored pages")
            if part.may_stop and outcome.all_known and not record.oldest_first:
                grew = (record.first_total - last_total
                        if record.first_total is not None and last_total is not None else 0)
                if record.arrived >= grew:
                    record.stopped_at_stored = True
                    self.stopped_at_stored += 1
                    return True
            if page.page == 0 and not part.may_stop and capacity and page.total is not None \
                    and page.total > capacity:
                split = self._plan(part, page.total, capacity)
                if split is not None:
                    self._plans[part.source] = split
                    record.split_now = True
                    return True
            return False

        self.writer.walk(iter(walk), then, stop, before_commit)
        record.requests = walk.requests
        if (walk.growth > 0 and walk.ended_by in (END, CAP) and not record.stopped_at_stored
                and not record.oldest_first):  # its head is its oldest postings
            record.requests += self._read_head_again(part, page_cap, walk.growth, then,
                                                     before_commit)
        self._finish(part, walk, record, capacity)

    def _read_head_again(self, part: Part, page_cap: int | None, growth: int, then,
                         before_commit) -> int:
        """New postings arrived on page 0 while the listing was walked: read its head again
        until a page of stored postings once as many new ones as it grew by were found.
        Returns the requests it made."""
        head = self.walk_listing(part.listing, start_page=0, page_cap=page_cap,
                                 budget=self.budget)
        found = 0

        def stop(page: RawPage, outcome: PageOutcome) -> bool:
            nonlocal found
            found += outcome.inserted
            return outcome.all_known and found >= growth

        self.writer.walk(iter(head), then, stop, before_commit)
        return head.requests

    def _finish(self, part: Part, walk: ListingWalk, record: WalkRecord,
                capacity: int | None) -> None:
        """Record how the walk ended and what becomes of the part (parted into children, capped,
        complete), in one transaction: a kill leaves the part either walking or finished."""
        total = walk.last_total if walk.last_total is not None else part.total
        if capacity is None and walk.cap_page:
            capacity = walk.cap_page * PAGE_SIZE
        if record.stopped_at_stored:
            status = COMPLETE
        elif record.split_now:
            status = SPLIT
        elif walk.ended_by == END:
            status = COMPLETE
        elif walk.ended_by == CAP:
            # A listing of exactly what the cap shows was read whole.
            status = COMPLETE if capacity and total is not None and total <= capacity else CAPPED
        elif walk.ended_by == BUDGET:
            status = PAUSED
        else:
            status = INCOMPLETE
        covered = status in (COMPLETE, CAPPED) and not record.unreadable
        outcome, split, note, unreachable = status, None, None, None
        if status in (CAPPED, SPLIT) and total is not None and capacity:
            split = self._plans.pop(part.source, None) or self._plan(part, total, capacity)
            if split is not None:
                outcome, note = SPLIT, split.reason
            else:
                unreachable = max(0, total - capacity)
                note = (f"{total:,} postings, the cap shows {capacity:,}: no filter parts the "
                        f"other {unreachable:,} off")
        db = self._db
        if outcome == COMPLETE:
            unreadable = db.execute(
                "SELECT unreadable FROM bronze.bronze_crawl_frontier WHERE crawl_id = ? "
                "AND source = ?", [part.crawl_id, part.source]).fetchall()[0][0]
            if unreadable:
                outcome, note = INCOMPLETE, f"{unreadable} unreadable pages"
        children = [] if split is None else [
            (child, part.may_stop and self._covered(self.source_of(child)))
            for child in (part.listing.narrowed(split.kind, group) for group in split.groups)
        ]
        now = self.clock.now()
        with transaction_with(db):
            # The walk's figures are written once, at its end (a row per page cost 7 ms a page);
            # an interrupted walk keeps none, its pages are in bronze and the frontier.
            db.execute(
                "UPDATE bronze.bronze_crawls SET status = ?, complete = ?, finished_at = ?, "
                "page_cap = ?, requests = ?, stopped_at_stored_page = ?, last_page = ?, "
                "total = ?, postings_reached = ?, oldest_publication_date = ?, "
                "newest_publication_date = ? "
                "WHERE crawl_id = ? AND source = ? AND status = 'walking'",
                [status if covered or status in (SPLIT, PAUSED) else INCOMPLETE, covered, now,
                 walk.cap_page, record.requests, record.stopped_at_stored, record.last_page,
                 total, record.reached, record.oldest, record.newest, part.crawl_id,
                 part.source],
            )
            if status == PAUSED:
                return  # the part stays in the frontier, resumed at its next page
            for child, may_stop in children:
                self._add_part(part.crawl_id, part.kind, child, part.source, split.kind, may_stop)
            db.execute(
                "UPDATE bronze.bronze_crawl_frontier SET state = ?, outcome = ?, split_by = ?, "
                "note = ?, unreachable = ?, updated_at = ? WHERE crawl_id = ? AND source = ?",
                [DONE, outcome, split.kind if split else None, note, unreachable, now,
                 part.crawl_id, part.source],
            )
        self.log(f"{part.source}: {outcome} after {record.pages} pages ({record.new} new "
                 f"postings, total {total if total is not None else '?'})"
                 + (f"; {note}" if note else ""))

    def _plan(self, part: Part, total: int, capacity: int) -> Split | None:
        """How to part `part` (None: no filter parts it). Its values are estimated from its
        stored postings, or, while fewer than MIN_SAMPLE are stored, from those of the nearest
        wider listing that has that many (walking it to the cap to learn them would cost up to
        100 requests; a group the estimate makes too large costs one, to halve it)."""
        values = dict(part.listing.filters).get(part.parted_by, ())
        stored = listing_sample(self._db, PLAIN)
        if len(values) > 1:  # a group of values over the cap: two halves of it
            sample = listing_sample(self._db, part.listing)
            sizes = estimated_sizes(sample, stored, part.parted_by, values, total)
            return Split(part.parted_by, halves(values, sizes), 0.0,
                         f"{total:,} postings over the cap of {capacity:,}: its {len(values)} "
                         f"{part.parted_by} values halved")
        filters = part.listing.filters
        sample = listing_sample(self._db, part.listing)
        while sample.postings < MIN_SAMPLE and filters:
            filters = filters[:-1]
            sample = listing_sample(self._db, Listing(filters)) if filters else stored
        return plan_split(part.listing, total, capacity, sample, stored, self.known, self.fixed)

    # --- progress ----------------------------------------------------------------------------

    def progress(self, crawl_id: str) -> CrawlProgress:
        row = self._db.execute(
            """
            SELECT any_value(kind), min(created_at),
                count(*) FILTER (WHERE state = 'done'),
                count(*) FILTER (WHERE state IN ('to do', 'walking')),
                count(*) FILTER (WHERE outcome = 'split'),
                count(*) FILTER (WHERE outcome = 'capped'),
                max(total) FILTER (WHERE parent_source IS NULL AND listing = '[]'),
                (SELECT count(DISTINCT posting_id) FROM bronze.bronze_crawl_postings
                 WHERE crawl_id = ?),
                coalesce(sum(unusable_items), 0),
                coalesce(sum(shrank_by), 0)
            FROM bronze.bronze_crawl_frontier WHERE crawl_id = ?
            """,
            [crawl_id, crawl_id],
        ).fetchall()[0]
        return CrawlProgress(crawl_id, *row)

    def forget_old_crawls(self) -> None:
        """Keep the postings read only by unfinished crawls and the latest finished full crawl
        (which postings were live when it walked): a full crawl of the live API reads 400,000."""
        self._db.execute(
            """
            DELETE FROM bronze.bronze_crawl_postings WHERE crawl_id NOT IN (
                SELECT crawl_id FROM bronze.bronze_crawl_frontier GROUP BY crawl_id
                HAVING count(*) FILTER (WHERE state IN ('to do', 'walking')) > 0
                UNION ALL
                (SELECT crawl_id FROM bronze.bronze_crawl_frontier WHERE kind = 'full'
                 GROUP BY crawl_id HAVING count(*) FILTER (WHERE state IN ('to do', 'walking')) = 0
                 ORDER BY max(updated_at) DESC LIMIT 1)
            )
            """
        )
