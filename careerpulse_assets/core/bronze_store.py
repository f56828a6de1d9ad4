"""Appending raw pages to bronze in DuckDB: new payloads only, one transaction per page.

Bronze is append-only history. A payload is stored when its posting has no stored version yet or
its latest stored version has another hash, so re-reading the same source adds nothing and an
edited posting becomes a new version. Items that cannot be postings, and pages that cannot be
read, go to `bronze.bronze_quarantine` with the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, closing
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from ..muse.pages import RawPage, UnreadableItem
from .waiting import WAITING, with_waits
from .postings import InvalidPosting, quarantine_text, stored_item
from .sql import transaction_with

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

# The latest stored version of each posting in this page; only differing payloads go in.
INSERT_NEW_VERSIONS_SQL = """
INSERT INTO bronze.bronze_postings
    (posting_id, payload, payload_hash, source, page, fetched_at, run_id)
SELECT p.posting_id, p.payload, p.payload_hash, p.source, p.page, p.fetched_at, p.run_id
FROM page_rows p
LEFT JOIN (
    SELECT posting_id, payload_hash
    FROM bronze.bronze_postings
    WHERE posting_id IN (SELECT posting_id FROM page_rows)
    QUALIFY row_number() OVER (PARTITION BY posting_id ORDER BY bronze_row_id DESC) = 1
) latest USING (posting_id)
WHERE latest.payload_hash IS DISTINCT FROM p.payload_hash
ORDER BY p.item_index
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
class PageOutcome:
    read: int = 0
    valid: int = 0
    inserted: int = 0
    quarantined: int = 0

    @property
    def all_known(self) -> bool:
        """Every posting on the page was already stored with this very payload."""
        return self.valid > 0 and self.inserted == 0


def ensure_bronze_schema(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(SCHEMA_SQL)


def last_crawl_complete(connection: duckdb.DuckDBPyConnection, source: str) -> bool:
    """Whether the latest walk of this listing reached its end (or pages already stored).

    Only then may a walk stop at the first stored page: after a walk that was cut short (a
    crash, a failure, CAREERPULSE_MAX_PAGES) older pages may still be missing, so the next walk
    goes on past the stored pages to fetch them.
    """
    row = connection.execute(
        "SELECT complete FROM bronze.bronze_crawls WHERE source = ? "
        "ORDER BY started_at DESC LIMIT 1",
        [source],
    ).fetchone()
    return bool(row and row[0])


def start_crawl(connection: duckdb.DuckDBPyConnection, source: str, run_id: str | None) -> None:
    connection.execute(
        "INSERT INTO bronze.bronze_crawls (source, run_id, started_at) VALUES (?, ?, now())",
        [source, run_id],
    )


def finish_crawl(connection: duckdb.DuckDBPyConnection, source: str, run_id: str | None) -> None:
    connection.execute(
        "UPDATE bronze.bronze_crawls SET finished_at = now(), complete = true "
        "WHERE source = ? AND run_id IS NOT DISTINCT FROM ? AND NOT complete",
        [source, run_id],
    )


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


def split_page(page: RawPage, run_id: str | None) -> tuple[pa.Table, pa.Table]:
    """The page's valid postings (first occurrence of each id) and its quarantined records."""
    rows, quarantine, seen = [], [], set()

    def quarantine_record(index, reason, raw):
        raw = _storable(raw)
        quarantine.append(
            {
                "source": page.source, "page": page.page, "item_index": index,
                "posting_id": None, "reason": _storable(reason), "raw": raw,
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
            quarantine_record(index, str(exc), quarantine_text(item))
            continue
        if valid.posting_id in seen:
            continue
        seen.add(valid.posting_id)
        rows.append(
            {
                "item_index": index, "posting_id": valid.posting_id, "payload": valid.payload,
                "payload_hash": valid.payload_hash, "source": page.source, "page": page.page,
                "fetched_at": page.fetched_at, "run_id": run_id,
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
])
QUARANTINE_SCHEMA = pa.schema([
    ("source", pa.string()), ("page", pa.int64()), ("item_index", pa.int64()),
    ("posting_id", pa.int64()), ("reason", pa.string()), ("raw", pa.string()),
    ("raw_hash", pa.string()), ("fetched_at", _FETCHED_AT), ("run_id", pa.string()),
])


def store_page(
    connection: duckdb.DuckDBPyConnection, page: RawPage, run_id: str | None = None
) -> PageOutcome:
    """Append one page to bronze atomically: all of its new rows and quarantine, or nothing."""
    page_rows, page_quarantine = split_page(page, run_id)
    with transaction_with(connection, page_rows=page_rows, page_quarantine=page_quarantine):
        inserted = connection.execute(INSERT_NEW_VERSIONS_SQL).fetchone()[0]
        quarantined = connection.execute(INSERT_QUARANTINE_SQL).fetchone()[0]
    return PageOutcome(
        read=len(page.items), valid=page_rows.num_rows, inserted=int(inserted),
        quarantined=int(quarantined),
    )



# The DuckDB file is let go when the next page is this late (a rate-limit pause, a slow API), so
# another run can write in between; while pages keep coming it stays open (connecting cost
# 15-30 ms a page, as much as storing one).
RELEASE_AFTER_SECONDS = 0.5


@dataclass
class Tally:
    pages: int = 0
    read: int = 0
    inserted: int = 0
    quarantined: int = 0
    unreadable_pages: int = 0
    stopped_early: bool = False


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


class BronzeWriter:
    """Stores a source's pages in bronze as they arrive: each page one transaction, the file held
    only while pages keep coming, walks of API listings recorded in `bronze.bronze_crawls`.

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
        self._connect, self.run_id = connect, run_id
        self._on_page, self._on_wait = on_page, on_wait
        self.tally = Tally()
        with connect() as connection:
            ensure_bronze_schema(connection)

    def crawl(self, source: str, pages: Iterator[RawPage], full_crawl: bool = False) -> bool:
        """Walk one API listing newest first; True when the walk read all of it (recorded, so
        the next walk may stop at the first stored page)."""
        with self._connect() as connection:
            may_stop = not full_crawl and last_crawl_complete(connection, source)
            start_crawl(connection, source, self.run_id)
        complete = self.store(pages, may_stop_at_stored_page=may_stop)
        if complete:
            with self._connect() as connection:
                finish_crawl(connection, source, self.run_id)
        return complete

    def store(self, pages: Iterator[RawPage], may_stop_at_stored_page: bool) -> bool:
        """Store pages; True when the walk read all of the listing: it reached the listing's last
        page, or pages already stored, and no page on the way was unreadable."""
        reached_end, unreadable = False, 0
        with HeldConnection(self._connect) as held, closing(
            with_waits(pages, RELEASE_AFTER_SECONDS)
        ) as walk:
            for page in walk:
                if page is WAITING:
                    held.release()
                    self._on_wait(self.tally)
                    continue
                outcome = store_page(held.connection(), page, self.run_id)
                self._count(page, outcome)
                unreadable += page.error is not None
                reached_end = page.is_last
                # A listing runs newest first: once a whole page is stored, so is the rest.
                if may_stop_at_stored_page and outcome.all_known:
                    self.tally.stopped_early = reached_end = True
                    break
        return reached_end and not unreadable

    def _count(self, page: RawPage, outcome: PageOutcome) -> None:
        tally = self.tally
        tally.pages += 1
        tally.read += outcome.read
        tally.inserted += outcome.inserted
        tally.quarantined += outcome.quarantined
        tally.unreadable_pages += page.error is not None
        self._on_page(page, outcome, tally)

    def finish(self) -> None:
        """One checkpoint at the end of the walk (none was made page by page)."""
        with self._connect() as connection:
            connection.execute("CHECKPOINT")
