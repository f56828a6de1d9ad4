from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass

from dagster import (
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)
from dagster_duckdb import DuckDBResource

from ..core.bronze_store import (
    ensure_bronze_schema,
    finish_crawl,
    last_crawl_complete,
    start_crawl,
    store_page,
)
from ..core.waiting import WAITING, with_waits
from ..muse.archive import skipped_files
from ..muse.client import listing_source
from ..muse.pages import RawPage
from ..resources import MuseApi
from .common import DUCKDB_POOL, OWNERS, preview

PROGRESS_EVERY_PAGES = 10
# The DuckDB file is let go when the next page is this late (a rate-limit pause, a slow API), so
# another run can write in between; while pages keep coming it stays open (connecting cost
# 15-30 ms a page, as much as storing one).
RELEASE_AFTER_SECONDS = 0.5


class BronzeConfig(Config):
    full_crawl: bool = False
    """Walk every page even after reaching pages already stored (finds edits to old postings)."""


@asset(
    group_name="ingestion",
    kinds={"duckdb"},
    owners=OWNERS,
    tags={"layer": "bronze"},
    pool=DUCKDB_POOL,
    description="Raw Muse job items, one row per new payload (append-only history), in "
    "`bronze.bronze_postings`; items that cannot be postings go to `bronze.bronze_quarantine`.",
)
def bronze_postings(
    context: AssetExecutionContext, config: BronzeConfig, muse: MuseApi, duckdb: DuckDBResource
) -> MaterializeResult:
    with duckdb.get_connection() as connection:
        ensure_bronze_schema(connection)
    tally = Tally()
    if muse.is_archive:
        # Archives are not ordered newest first, so they are always read whole.
        store_pages(context, duckdb, muse.iter_pages(), tally, may_stop_at_stored_page=False)
        skipped = skipped_files(muse.archive_dir)
        if skipped:
            context.log.warning(f"archive files not read (not .json): {', '.join(skipped)}")
    else:
        for listing_filter in muse.listings():
            crawl_listing(context, config, muse, duckdb, listing_filter, tally)
    context.log.info(
        f"{tally.pages} pages read: {tally.read} items, {tally.inserted} new, "
        f"{tally.quarantined} quarantined"
    )
    with duckdb.get_connection() as connection:
        connection.execute("CHECKPOINT")
        total, postings = connection.execute(
            "SELECT count(*), count(DISTINCT posting_id) FROM bronze.bronze_postings"
        ).fetchone()
        quarantine_total = connection.execute(
            "SELECT count(*) FROM bronze.bronze_quarantine"
        ).fetchone()[0]
        columns = connection.execute("DESCRIBE bronze.bronze_postings").fetchall()
        newest = connection.execute(
            "SELECT posting_id, payload_hash, source, page, fetched_at "
            "FROM bronze.bronze_postings ORDER BY bronze_row_id DESC LIMIT 5"
        ).fetchdf()
    return MaterializeResult(
        metadata={
            "source": muse.description,
            "pages_read": tally.pages,
            "stopped_at_stored_page": tally.stopped_early,
            "items_read": tally.read,
            "rows_inserted": tally.inserted,
            "items_quarantined": tally.quarantined,
            "unreadable_pages": tally.unreadable_pages,
            "dagster/row_count": total,
            "distinct_postings": postings,
            "quarantine_rows_total": quarantine_total,
            "table": MetadataValue.text("bronze.bronze_postings"),
            "dagster/column_schema": TableSchema(
                columns=[TableColumn(name=row[0], type=row[1]) for row in columns]
            ),
            "newest_rows": preview(newest),
        }
    )


@dataclass
class Tally:
    pages: int = 0
    read: int = 0
    inserted: int = 0
    quarantined: int = 0
    unreadable_pages: int = 0
    stopped_early: bool = False


def crawl_listing(
    context: AssetExecutionContext,
    config: BronzeConfig,
    muse: MuseApi,
    duckdb: DuckDBResource,
    listing_filter: dict[str, str] | None,
    tally: Tally,
) -> None:
    """Walk one API listing newest first, recording whether the walk finished."""
    source = listing_source(muse.base_url, listing_filter)
    with duckdb.get_connection() as connection:
        may_stop = not config.full_crawl and last_crawl_complete(connection, source)
        start_crawl(connection, source, context.run_id)
    pages = muse.iter_listing_pages(listing_filter)
    if store_pages(context, duckdb, pages, tally, may_stop_at_stored_page=may_stop):
        with duckdb.get_connection() as connection:
            finish_crawl(connection, source, context.run_id)
    else:
        context.log.warning(
            f"{source}: walk incomplete (cut short, or a page was unreadable): the next run "
            "walks the whole listing again"
        )


def store_pages(
    context: AssetExecutionContext,
    duckdb: DuckDBResource,
    pages: Iterator[RawPage],
    tally: Tally,
    may_stop_at_stored_page: bool,
) -> bool:
    """Store a listing's pages; True when the walk read all of it: it reached the listing's last
    page, or pages already stored, and no page on the way was unreadable."""
    reached_end, unreadable = False, 0
    with HeldConnection(duckdb) as held, closing(with_waits(pages, RELEASE_AFTER_SECONDS)) as walk:
        for page in walk:
            if page is WAITING:
                held.release()
                continue
            outcome = store_page(held.connection(), page, context.run_id)
            unreadable += page.error is not None
            reached_end = page.is_last
            if _record(context, page, outcome, tally, may_stop_at_stored_page):
                reached_end = True
                break
    return reached_end and not unreadable


def _record(context, page: RawPage, outcome, tally: Tally, may_stop_at_stored_page: bool) -> bool:
    """Count a stored page and log it; True when the walk may stop here."""
    tally.pages += 1
    tally.read += outcome.read
    tally.inserted += outcome.inserted
    tally.quarantined += outcome.quarantined
    tally.unreadable_pages += page.error is not None
    if page.error:
        context.log.warning(f"{page.source} page {page.page} quarantined: {page.error}")
    for note in page.notes:
        context.log.warning(f"{page.source} page {page.page}: {note}")
    # Every log line is an event written to the instance's event log (5 ms each in SQLite): a
    # line per page was a sixth of a 5,000-page crawl.
    if tally.pages % PROGRESS_EVERY_PAGES == 0:
        context.log.info(
            f"{tally.pages} pages read ({page.source} page {page.page}): {tally.read} items, "
            f"{tally.inserted} new, {tally.quarantined} quarantined"
        )
    # A listing runs newest first: once a whole page is stored, so is the rest of it.
    if may_stop_at_stored_page and outcome.all_known:
        context.log.info(f"{page.source} page {page.page} holds only stored postings: done")
        tally.stopped_early = True
        return True
    return False


class HeldConnection:
    """The DuckDB file, opened when a page is to be stored and let go while the walk waits."""

    def __init__(self, duckdb: DuckDBResource):
        self._duckdb = duckdb
        self._stack: ExitStack | None = None
        self._connection = None

    def connection(self):
        if self._connection is None:
            self._stack = ExitStack()
            self._connection = self._stack.enter_context(self._duckdb.get_connection())
            # Closing a DuckDB file checkpoints it, rewriting the tables' indexes: 0.14-0.3 s on
            # a 200 MB store. Committed pages are durable in the WAL; DuckDB checkpoints when
            # the WAL reaches 16 MB, and bronze once at its end.
            self._connection.execute("PRAGMA disable_checkpoint_on_shutdown")
        return self._connection

    def release(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack = self._connection = None

    def __enter__(self) -> "HeldConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
