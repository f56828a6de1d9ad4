"""Appending raw pages to bronze in DuckDB: new payloads only, whole pages per transaction.

Bronze is append-only history. A payload is stored when its posting has no stored version yet or
its latest stored version has another hash, so re-reading the same source adds nothing and an
edited posting becomes a new version. Items that cannot be postings, and pages that cannot be
read, go to `bronze.bronze_quarantine` with the reason.

Beside the payloads: `bronze.bronze_listing_values` (the values each stored posting is listed
under, which crawls part listings by), `bronze.bronze_crawls` (one row per walk of a listing) and
`bronze.bronze_crawl_frontier` (the listings a crawl has walked and has still to walk), updated in
the same transaction as the page they follow. BronzeWriter commits every COMMIT_EVERY_PAGES pages
or COMMIT_EVERY_SECONDS, so a kill loses at most those pages (the frontier with them): the next
run fetches them again and stores each posting once.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, closing
from dataclasses import dataclass, field

from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from .listings import Listing, posting_values
from .pages import RawPage, UnreadableItem
from .partitions import Sample
from .postings import (
    InvalidPosting,
    parse_publication_date,
    posting_id,
    quarantine_text,
    stored_item,
)
from ..ops.duckdb_file import registered, transaction
from .waiting import WAITING, with_waits

# The raw text kept of a quarantined item or page; a 50 MB body is not worth a 50 MB row.
MAX_QUARANTINE_RAW_CHARS = 1_000_000

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS bronze;
CREATE SEQUENCE IF NOT EXISTS bronze.bronze_row_seq;
CREATE TABLE IF NOT EXISTS bronze.bronze_postings (
    bronze_row_id BIGINT PRIMARY KEY DEFAULT nextval('bronze.bronze_row_seq'),
    posting_id BIGINT NOT NULL,
    payload JSON NOT NULL,
    payload_hash VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    page INTEGER NOT NULL,
    fetched_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR
);
CREATE TABLE IF NOT EXISTS bronze.bronze_crawls (
    source VARCHAR NOT NULL,
    run_id VARCHAR,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    complete BOOLEAN NOT NULL DEFAULT false
);
-- Added for crawls that part capped listings and span runs (older stores get them too).
ALTER TABLE bronze.bronze_crawls ADD COLUMN IF NOT EXISTS crawl_id VARCHAR;
ALTER TABLE bronze.bronze_crawls ADD COLUMN IF NOT EXISTS status VARCHAR;
ALTER TABLE bronze.bronze_crawls ADD COLUMN IF NOT EXISTS first_page INTEGER;
ALTER TABLE bronze.bronze_crawls ADD COLUMN IF NOT EXISTS last_page INTEGER;
ALTER TABLE bronze.bronze_crawls ADD COLUMN IF NOT EXISTS total BIGINT;
ALTER TABLE bronze.bronze_crawls ADD COLUMN IF NOT EXISTS postings_reached BIGINT;
ALTER TABLE bronze.bronze_crawls ADD COLUMN IF NOT EXISTS oldest_publication_date TIMESTAMPTZ;
ALTER TABLE bronze.bronze_crawls ADD COLUMN IF NOT EXISTS newest_publication_date TIMESTAMPTZ;
ALTER TABLE bronze.bronze_crawls ADD COLUMN IF NOT EXISTS requests INTEGER;
ALTER TABLE bronze.bronze_crawls ADD COLUMN IF NOT EXISTS page_cap INTEGER;
ALTER TABLE bronze.bronze_crawls ADD COLUMN IF NOT EXISTS stopped_at_stored_page BOOLEAN;
CREATE TABLE IF NOT EXISTS bronze.bronze_listing_values (
    posting_id BIGINT NOT NULL,
    fetched_at TIMESTAMPTZ NOT NULL,
    categories VARCHAR[] NOT NULL,
    levels VARCHAR[] NOT NULL,
    locations VARCHAR[] NOT NULL,
    company VARCHAR
);
CREATE TABLE IF NOT EXISTS bronze.bronze_crawl_postings (
    crawl_id VARCHAR NOT NULL,
    posting_id BIGINT NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS bronze.bronze_frontier_seq;
CREATE TABLE IF NOT EXISTS bronze.bronze_crawl_frontier (
    crawl_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    position BIGINT NOT NULL DEFAULT nextval('bronze.bronze_frontier_seq'),
    source VARCHAR NOT NULL,
    listing VARCHAR NOT NULL,
    parent_source VARCHAR,
    parted_by VARCHAR,
    may_stop BOOLEAN NOT NULL,
    state VARCHAR NOT NULL,
    outcome VARCHAR,
    next_page INTEGER NOT NULL DEFAULT 0,
    total BIGINT,
    unreadable INTEGER NOT NULL DEFAULT 0,
    unusable_items INTEGER NOT NULL DEFAULT 0,
    split_by VARCHAR,
    unreachable BIGINT,
    note VARCHAR,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- How far the listing's `total` fell while its walks went (postings expired during the crawl).
ALTER TABLE bronze.bronze_crawl_frontier ADD COLUMN IF NOT EXISTS shrank_by BIGINT DEFAULT 0;
-- The highest bronze row id when the part was added: a posting whose first row is above the
-- crawl's first part's arrived since the crawl began (row ids only grow; clocks may jump).
ALTER TABLE bronze.bronze_crawl_frontier ADD COLUMN IF NOT EXISTS rows_before BIGINT;
CREATE TABLE IF NOT EXISTS bronze.bronze_quarantine (
    source VARCHAR NOT NULL,
    page INTEGER NOT NULL,
    item_index INTEGER,
    posting_id BIGINT,
    reason VARCHAR NOT NULL,
    raw VARCHAR,
    raw_hash VARCHAR NOT NULL,
    fetched_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR
);
"""

# The latest stored version's hash of each of these postings (the page's ids, a list parameter).
LATEST_HASHES_SQL = """
SELECT posting_id, payload_hash FROM bronze.bronze_postings
WHERE posting_id IN (SELECT unnest(?::BIGINT[]))
QUALIFY row_number() OVER (PARTITION BY posting_id ORDER BY bronze_row_id DESC) = 1
"""
# The page's payloads that differ from their posting's latest stored version (`new`, decided in
# Python from LATEST_HASHES_SQL: one lookup and two plain inserts cost 4.5 ms a page less than
# inserting through a join and a NOT EXISTS, issue 29).
INSERT_NEW_VERSIONS_SQL = """
INSERT INTO bronze.bronze_postings
    (posting_id, payload, payload_hash, source, page, fetched_at, run_id)
SELECT posting_id, payload, payload_hash, source, page, fetched_at, run_id
FROM page_rows WHERE new
ORDER BY item_index
"""
# The values a posting is listed under, from the first version stored (an edit that moves a
# posting to another category is rare; the values only guide how listings are parted). A posting
# has listing values exactly when it has a stored version: both are written in the same
# transaction, and stores from before the table are filled at once (ensure_bronze_schema).
INSERT_LISTING_VALUES_SQL = """
INSERT INTO bronze.bronze_listing_values
SELECT posting_id, fetched_at, categories, levels, locations, company FROM page_rows
WHERE first_seen
"""
# Stores from before bronze_listing_values get it filled once from their payloads.
BACKFILL_LISTING_VALUES_SQL = """
INSERT INTO bronze.bronze_listing_values
SELECT posting_id, fetched_at,
    list_sort(list_distinct(list_filter(
        coalesce(json_extract_string(payload, '$.categories[*].name'), []), lambda x: x <> ''))),
    list_sort(list_distinct(list_filter(
        coalesce(json_extract_string(payload, '$.levels[*].name'), []), lambda x: x <> ''))),
    list_sort(list_distinct(list_filter(
        coalesce(json_extract_string(payload, '$.locations[*].name'), []), lambda x: x <> ''))),
    nullif(json_extract_string(payload, '$.company.name'), '')
FROM bronze.bronze_postings
"""

INSERT_QUARANTINE_SQL = """
INSERT INTO bronze.bronze_quarantine
SELECT q.* FROM page_quarantine q
WHERE NOT EXISTS (
    SELECT 1 FROM bronze.bronze_quarantine old
    WHERE old.raw_hash = q.raw_hash AND old.reason = q.reason AND old.source = q.source
)
"""


@dataclass
class Counts:
    """Items read, payloads inserted as new versions, items quarantined."""

    read: int = 0
    inserted: int = 0
    quarantined: int = 0


@dataclass
class PageOutcome(Counts):
    """One page stored: its counts, its valid postings and their publication dates."""

    valid: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    posting_ids: list[int] = field(default_factory=list)  # the valid postings' ids

    @property
    def all_known(self) -> bool:
        """Every posting on the page was already stored with this very payload."""
        return self.valid > 0 and self.inserted == 0


def ensure_bronze_schema(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(SCHEMA_SQL)
    missing = connection.execute(
        "SELECT (SELECT count(*) FROM bronze.bronze_listing_values) = 0 "
        "AND EXISTS (SELECT 1 FROM bronze.bronze_postings)"
    ).fetchall()[0][0]
    if missing:
        connection.execute(BACKFILL_LISTING_VALUES_SQL)


def unstored_postings(connection: duckdb.DuckDBPyConnection, ids: list[int]) -> list[int]:
    """Of `ids`, those bronze holds neither as a posting nor as a quarantined item (sorted);
    every one of them when bronze has no tables yet."""
    if not ids:
        return []
    try:
        rows = connection.execute(
            "SELECT id FROM (SELECT unnest(?::BIGINT[]) AS id) WHERE id NOT IN ("
            "SELECT posting_id FROM bronze.bronze_postings WHERE posting_id IN "
            "(SELECT unnest(?::BIGINT[])) UNION ALL SELECT posting_id FROM "
            "bronze.bronze_quarantine WHERE posting_id IN (SELECT unnest(?::BIGINT[])))",
            [ids, ids, ids],
        ).fetchall()
    except duckdb.CatalogException:
        return sorted(set(ids))
    return sorted({posting for (posting,) in rows})


def last_crawl_complete(connection: duckdb.DuckDBPyConnection, source: str) -> bool:
    """Whether the latest walk of this listing reached its end (or pages already stored), in
    a store from before crawls kept a frontier (ingestion/crawl.py decides from the frontier)."""
    rows = connection.execute(
        "SELECT complete FROM bronze.bronze_crawls WHERE source = ? "
        "ORDER BY started_at DESC LIMIT 1",
        [source],
    ).fetchall()
    return bool(rows and rows[0][0])


# bronze_listing_values' column for each filter kind.
VALUE_COLUMNS = {"category": "categories", "level": "levels", "location": "locations"}


def listing_sample(connection: duckdb.DuckDBPyConnection, listing: Listing,
                   crawl_id: str | None = None) -> Sample:
    """The stored postings a listing shows (by the values they were stored with), counted per
    value of every filter kind; the plain listing's sample is every stored posting. With
    `crawl_id`, only the postings that crawl has read."""
    conditions, params = [], []
    if crawl_id is not None:
        conditions.append("posting_id IN (SELECT posting_id FROM bronze.bronze_crawl_postings "
                          "WHERE crawl_id = ?)")
        params.append(crawl_id)
    for kind, values in listing.filters:
        column = VALUE_COLUMNS.get(kind)
        conditions.append(f"list_has_any({column}, ?::VARCHAR[])" if column
                          else "list_contains(?::VARCHAR[], company)")
        params.append(list(values))
    listed = (f"(SELECT DISTINCT posting_id, categories, levels, locations, company "
              f"FROM bronze.bronze_listing_values WHERE {' AND '.join(conditions) or 'true'})")
    unnested = " UNION ALL ".join(
        f"SELECT '{kind}' AS kind, unnest({column}) AS value, posting_id FROM listed"
        for kind, column in VALUE_COLUMNS.items()
    )
    rows = connection.execute(f"""
        WITH listed AS {listed},
        named AS ({unnested} UNION ALL
                  SELECT 'company', company, posting_id FROM listed WHERE company IS NOT NULL)
        SELECT kind, value, count(DISTINCT posting_id) FROM named GROUP BY ALL
    """, params).fetchall()
    postings, *without = connection.execute(f"""
        WITH listed AS {listed}
        SELECT count(DISTINCT posting_id),
            count(DISTINCT posting_id) FILTER (WHERE len(categories) = 0),
            count(DISTINCT posting_id) FILTER (WHERE len(levels) = 0),
            count(DISTINCT posting_id) FILTER (WHERE len(locations) = 0),
            count(DISTINCT posting_id) FILTER (WHERE company IS NULL)
        FROM listed
    """, params).fetchall()[0]
    counts: dict[str, dict[str, int]] = {}
    for kind, value, n in rows:
        counts.setdefault(kind, {})[value] = n
    return Sample(postings, counts, dict(zip(("category", "level", "location", "company"),
                                             without, strict=True)))


def raw_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()


def _storable(text: str | None) -> str | None:
    """Text DuckDB can store: lone surrogates replaced, cut at MAX_QUARANTINE_RAW_CHARS."""
    if text is None:
        return None
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    if len(text) > MAX_QUARANTINE_RAW_CHARS:
        text = f"{text[:MAX_QUARANTINE_RAW_CHARS]}… [cut: {len(text):,} characters in all]"
    return text


def known_posting_id(item) -> int | None:
    """The id of a quarantined item when it has a valid one (its date or text was refused), so
    the quarantine says which posting it was; None otherwise."""
    if not isinstance(item, dict):
        return None
    try:
        return posting_id(item)
    except InvalidPosting:
        return None


def split_page(page: RawPage, run_id: str | None) -> tuple[pa.Table, pa.Table]:
    """The page's valid postings (first occurrence of each id, with the values they are listed
    under and their publication date) and its quarantined records."""
    rows, quarantine, seen = [], [], set()

    def quarantine_record(index, reason, raw, item=None):
        raw = _storable(raw)
        quarantine.append(
            {
                "source": page.source, "page": page.page, "item_index": index,
                "posting_id": known_posting_id(item), "reason": _storable(reason), "raw": raw,
                "raw_hash": raw_hash(raw or ""), "fetched_at": page.fetched_at, "run_id": run_id,
            }
        )

    if page.error is not None:
        quarantine_record(None, f"unreadable page: {page.error}", page.raw)
    for index, item in enumerate(page.items):
        if isinstance(item, UnreadableItem):
            quarantine_record(index, item.reason, item.raw)
            continue
        try:
            valid = stored_item(item, page.fetched_at)
        except InvalidPosting as exc:
            quarantine_record(index, str(exc), quarantine_text(item), item)
            continue
        if valid.posting_id in seen:
            continue
        seen.add(valid.posting_id)
        values = posting_values(item)
        rows.append(
            {
                "item_index": index, "posting_id": valid.posting_id, "payload": valid.payload,
                "payload_hash": valid.payload_hash, "source": page.source, "page": page.page,
                "fetched_at": page.fetched_at, "run_id": run_id,
                "categories": list(values["category"]), "levels": list(values["level"]),
                "locations": list(values["location"]),
                "company": values["company"][0] if values["company"] else None,
                "published": parse_publication_date(item.get("publication_date")),
            }
        )
    return (
        pa.Table.from_pylist(rows, schema=PAGE_ROW_SCHEMA),
        pa.Table.from_pylist(quarantine, schema=QUARANTINE_SCHEMA),
    )


# Arrow tables, not pandas frames: building typed frames of 20 rows cost 5.6 ms a page in
# pandas, a quarter of storing a page.
_FETCHED_AT = pa.timestamp("us", tz="UTC")
PAGE_ROW_SCHEMA = pa.schema([
    ("item_index", pa.int64()), ("posting_id", pa.int64()), ("payload", pa.string()),
    ("payload_hash", pa.string()), ("source", pa.string()), ("page", pa.int64()),
    ("fetched_at", _FETCHED_AT), ("run_id", pa.string()),
    ("categories", pa.list_(pa.string())), ("levels", pa.list_(pa.string())),
    ("locations", pa.list_(pa.string())), ("company", pa.string()), ("published", _FETCHED_AT),
])
QUARANTINE_SCHEMA = pa.schema([
    ("source", pa.string()), ("page", pa.int64()), ("item_index", pa.int64()),
    ("posting_id", pa.int64()), ("reason", pa.string()), ("raw", pa.string()),
    ("raw_hash", pa.string()), ("fetched_at", _FETCHED_AT), ("run_id", pa.string()),
])


def store_page(
    connection: duckdb.DuckDBPyConnection,
    page: RawPage,
    run_id: str | None = None,
    then: Callable[[duckdb.DuckDBPyConnection, PageOutcome], None] | None = None,
) -> PageOutcome:
    """Append one page to bronze atomically: all of its new rows, their listing values and its
    quarantine, or nothing. `then(connection, outcome)` runs in the same transaction (a crawl
    records how far it got there)."""
    with transaction(connection):
        return add_page(connection, page, run_id, then)


def add_page(
    connection: duckdb.DuckDBPyConnection,
    page: RawPage,
    run_id: str | None = None,
    then: Callable[[duckdb.DuckDBPyConnection, PageOutcome], None] | None = None,
) -> PageOutcome:
    """Append one page to bronze in the transaction the caller holds (`store_page` is one page
    in a transaction of its own; BronzeWriter commits a few pages at once)."""
    page_rows, page_quarantine = split_page(page, run_id)
    published = page_rows.column("published")
    outcome = PageOutcome(
        read=len(page.items), valid=page_rows.num_rows,
        oldest=pc.min(published).as_py(), newest=pc.max(published).as_py(),
    )
    # A page with nothing to quarantine (nearly every one) skips that table and its statement:
    # 3 ms of a page's 30 even with no rows.
    quarantine = {"page_quarantine": page_quarantine} if page_quarantine.num_rows else {}
    ids = outcome.posting_ids = page_rows.column("posting_id").to_pylist()
    latest = dict(connection.execute(LATEST_HASHES_SQL, [ids]).fetchall()) if ids else {}
    new = [latest.get(posting) != payload_hash for posting, payload_hash
           in zip(ids, page_rows.column("payload_hash").to_pylist(), strict=True)]
    first_seen = [posting not in latest for posting in ids]
    page_rows = (page_rows.append_column("new", pa.array(new, pa.bool_()))
                 .append_column("first_seen", pa.array(first_seen, pa.bool_())))
    with registered(connection, page_rows=page_rows, **quarantine):
        if any(new):
            outcome.inserted = int(connection.execute(INSERT_NEW_VERSIONS_SQL).fetchall()[0][0])
        if any(first_seen):
            connection.execute(INSERT_LISTING_VALUES_SQL)
        if quarantine:
            outcome.quarantined = int(connection.execute(INSERT_QUARANTINE_SQL).fetchall()[0][0])
        if then is not None:
            then(connection, outcome)
    return outcome


# The DuckDB file is let go when the next page is this late (a rate-limit pause, a slow API), so
# another run can write in between; while pages keep coming it stays open (connecting cost
# 15-30 ms a page, as much as storing one).
RELEASE_AFTER_SECONDS = 0.5
# Pages stored in one transaction, committed when there are this many or the first of them was
# stored this long ago, whichever comes first (and before the file is let go, at a walk's end and
# when the page source fails). A commit writes the pages to the WAL on disk: 7 ms a page when
# each page was its own transaction, a quarter of storing one (issue 29, 20,000 postings). A kill
# loses at most the batch in flight: its pages and the frontier's progress over them roll back
# together, so the next run asks for those pages again.
COMMIT_EVERY_PAGES = 20
COMMIT_EVERY_SECONDS = 0.5


@dataclass
class Tally(Counts):
    """A run's pages stored so far, their counts added up."""

    pages: int = 0
    unreadable_pages: int = 0


class HeldConnection:
    """The DuckDB file, opened when a page is to be stored and let go while the walk waits."""

    def __init__(self, connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]):
        self._connect = connect
        self._stack: ExitStack | None = None
        self._connection: duckdb.DuckDBPyConnection | None = None

    def connection(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            self._stack = ExitStack()
            self._connection = self._stack.enter_context(self._connect())
            # Closing a DuckDB file checkpoints it, rewriting the tables' indexes: 0.14-0.3 s on
            # a 200 MB store. Committed pages are durable in the WAL; DuckDB checkpoints when
            # the WAL reaches 16 MB, and BronzeWriter.finish once at the end.
            self._connection.execute("PRAGMA disable_checkpoint_on_shutdown")
        return self._connection

    def release(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack = self._connection = None

    def __enter__(self) -> HeldConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class PageBatch:
    """The pages a walk has stored and not yet committed, in one open transaction."""

    def __init__(self, held: HeldConnection,
                 before_commit: Callable[[duckdb.DuckDBPyConnection], None] | None = None):
        self._held, self._before_commit = held, before_commit
        self._pages = 0
        self._began: float | None = None  # time.monotonic() of its first page

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB file, in the batch's transaction (begun when none is open)."""
        connection = self._held.connection()
        if self._began is None:
            connection.execute("BEGIN TRANSACTION")
            self._began = time.monotonic()
        return connection

    def stored(self) -> None:
        """One more whole page in the batch: committed when the batch is full or old enough."""
        self._pages += 1
        if (self._pages >= COMMIT_EVERY_PAGES
                or time.monotonic() - self._began >= COMMIT_EVERY_SECONDS):
            self.commit()

    def commit(self) -> None:
        """`before_commit(connection)`, then COMMIT (nothing when no page is in the batch)."""
        if self._began is not None:
            connection = self._held.connection()
            if self._before_commit is not None:
                try:
                    self._before_commit(connection)
                except BaseException:
                    self.rollback()
                    raise
            self._began, self._pages = None, 0
            connection.execute("COMMIT")

    def rollback(self) -> None:
        if self._began is not None:
            self._began, self._pages = None, 0
            self._held.connection().execute("ROLLBACK")


class BronzeWriter:
    """Stores pages in bronze as they arrive: whole pages, a few per transaction, the file held only
    while pages keep coming (let go while the walk waits for a slow page or a rate-limit reset).

    `connect` opens the DuckDB file (`DuckDBResource.get_connection`); `on_page(page, outcome,
    tally)` and `on_wait(tally)` let the caller log and show progress.
    """

    def __init__(
        self,
        connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
        run_id: str | None,
        on_page: Callable[[RawPage, PageOutcome, Tally], None] = lambda *_: None,
        on_wait: Callable[[Tally], None] = lambda _: None,
    ):
        self.run_id = run_id
        self._on_page, self._on_wait = on_page, on_wait
        self.tally = Tally()
        self.held = HeldConnection(connect)
        ensure_bronze_schema(self.held.connection())

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB file, opened again if it was let go."""
        return self.held.connection()

    def walk(
        self,
        pages: Iterator[RawPage],
        then: Callable[[duckdb.DuckDBPyConnection, RawPage, PageOutcome], None] | None = None,
        stop: Callable[[RawPage, PageOutcome], bool] = lambda *_: False,
        before_commit: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    ) -> None:
        """Store `pages` as they come until they end or `stop(page, outcome)` says so;
        `then(connection, page, outcome)` runs in each page's transaction, and
        `before_commit(connection)` in each batch's, before it is committed (to write once per
        batch what follows its pages).

        Pages are committed in batches (COMMIT_EVERY_PAGES, COMMIT_EVERY_SECONDS), always whole:
        when storing a page fails the batch is rolled back; when the page source fails (the
        API refused, the run was interrupted while waiting for a page) the pages stored so far
        are committed and the error raised."""
        batch = PageBatch(self.held, before_commit)
        try:
            with closing(with_waits(pages, RELEASE_AFTER_SECONDS)) as waited:
                for page in waited:
                    if page is WAITING:
                        batch.commit()
                        self.held.release()
                        self._on_wait(self.tally)
                        continue
                    try:
                        outcome = add_page(
                            batch.connection(), page, self.run_id,
                            None if then is None else (lambda c, o, page=page: then(c, page, o)),
                        )
                        stopping = stop(page, outcome)
                    except BaseException:
                        batch.rollback()
                        raise
                    batch.stored()
                    self._count(page, outcome)
                    if stopping:
                        break
        finally:
            batch.commit()

    def store(self, pages: Iterator[RawPage]) -> None:
        """Store every page of a source read whole (an archive)."""
        self.walk(pages)

    def _count(self, page: RawPage, outcome: PageOutcome) -> None:
        tally = self.tally
        tally.pages += 1
        tally.read += outcome.read
        tally.inserted += outcome.inserted
        tally.quarantined += outcome.quarantined
        tally.unreadable_pages += page.error is not None
        self._on_page(page, outcome, tally)

    def finish(self) -> None:
        """One checkpoint at the end (none was made page by page), and the file let go."""
        self.held.connection().execute("CHECKPOINT")
        self.held.release()
