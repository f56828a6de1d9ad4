from dagster import AssetExecutionContext, Config, MaterializeResult
from dagster_duckdb import DuckDBResource

from ..core.bronze_store import BronzeWriter, PageOutcome, Tally
from ..muse.archive import skipped_files
from ..muse.client import listing_source
from ..muse.pages import RawPage
from ..resources import MuseApi
from .common import Heartbeat, careerpulse_asset, preview, table_metadata

# Every log line is an event written to the instance's event log (5 ms each in SQLite): a line
# per page was a sixth of a 5,000-page crawl.
PROGRESS_EVERY_PAGES = 10


class BronzeConfig(Config):
    full_crawl: bool = False
    """Walk every page even after reaching pages already stored (finds edits to old postings)."""


@careerpulse_asset(
    layer="bronze",
    group="ingestion",
    kinds={"duckdb"},
    description="Raw Muse job items, one row per new payload (append-only history), in "
    "`bronze.bronze_postings`; items that cannot be postings go to `bronze.bronze_quarantine` "
    "with the reason, and each walk of a listing is recorded in `bronze.bronze_crawls`.",
)
def bronze_postings(
    context: AssetExecutionContext, config: BronzeConfig, muse: MuseApi, duckdb: DuckDBResource
) -> MaterializeResult:
    with Heartbeat(context.log.info, "bronze_postings") as beat:

        def on_page(page: RawPage, outcome: PageOutcome, tally: Tally) -> None:
            beat.note(f"{page.source} page {page.page} stored ({tally.pages} read)")
            if page.error:
                context.log.warning(f"{page.source} page {page.page} quarantined: {page.error}")
            for note in page.notes:
                context.log.warning(f"{page.source} page {page.page}: {note}")
            if tally.pages % PROGRESS_EVERY_PAGES == 0:
                context.log.info(
                    f"{tally.pages} pages read ({page.source} page {page.page}): {tally.read} "
                    f"items, {tally.inserted} new, {tally.quarantined} quarantined"
                )

        writer = BronzeWriter(
            duckdb.get_connection, context.run_id, on_page=on_page,
            on_wait=lambda tally: beat.note(f"waiting for the next page ({tally.pages} read)"),
        )
        if muse.is_archive:
            # Archives are not ordered newest first, so they are always read whole.
            writer.store(muse.iter_pages(), may_stop_at_stored_page=False)
            skipped = skipped_files(muse.archive_dir)
            if skipped:
                context.log.warning(f"archive files not read (not .json): {', '.join(skipped)}")
        else:
            for listing_filter in muse.listings():
                source = listing_source(muse.base_url, listing_filter)
                pages = muse.iter_listing_pages(listing_filter)
                if not writer.crawl(source, pages, config.full_crawl):
                    context.log.warning(
                        f"{source}: walk incomplete (cut short, or a page was unreadable): the "
                        "next run walks the whole listing again"
                    )
        writer.finish()
    tally = writer.tally
    context.log.info(f"{tally.pages} pages read: {tally.read} items, {tally.inserted} new, "
                     f"{tally.quarantined} quarantined")
    with duckdb.get_connection() as connection:
        metadata = table_metadata(connection, "bronze.bronze_postings")
        postings, quarantined = connection.execute(
            "SELECT (SELECT count(DISTINCT posting_id) FROM bronze.bronze_postings), "
            "(SELECT count(*) FROM bronze.bronze_quarantine)"
        ).fetchone()
        newest = connection.execute(
            "SELECT posting_id, payload_hash, source, page, fetched_at "
            "FROM bronze.bronze_postings ORDER BY bronze_row_id DESC LIMIT 5"
        ).fetchdf()
    return MaterializeResult(metadata={
        **metadata,
        "source": muse.description,
        "pages_read": tally.pages,
        "stopped_at_stored_page": tally.stopped_early,
        "items_read": tally.read,
        "rows_inserted": tally.inserted,
        "items_quarantined": tally.quarantined,
        "unreadable_pages": tally.unreadable_pages,
        "distinct_postings": postings,
        "quarantine_rows_total": quarantined,
        "newest_rows": preview(newest),
    })
