from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from dagster_duckdb import DuckDBResource

from ..core.bronze_store import ensure_bronze_schema, store_page
from ..resources import MuseApi

DUCKDB_POOL = "careerpulse_duckdb"
PROGRESS_EVERY_PAGES = 10


class BronzeConfig(Config):
    full_crawl: bool = False
    """Walk every page even after reaching pages already stored (finds edits to old postings)."""


@asset(
    group_name="ingestion",
    kinds={"duckdb"},
    pool=DUCKDB_POOL,
    description="Raw Muse job items, one row per new payload (append-only history), in "
    "`bronze.bronze_postings`; items that cannot be postings go to `bronze.bronze_quarantine`.",
)
def bronze_postings(
    context: AssetExecutionContext, config: BronzeConfig, muse: MuseApi, duckdb: DuckDBResource
) -> MaterializeResult:
    pages = read = inserted = quarantined = 0
    stopped_early = False
    with duckdb.get_connection() as connection:
        ensure_bronze_schema(connection)
    listings = [iter(muse.iter_pages())] if muse.is_archive else [
        muse.iter_listing_pages(listing_filter) for listing_filter in muse.listings()
    ]
    for listing in listings:
        for page in listing:
            # DuckDB lets one process hold the file: take it per page, not across the HTTP
            # waits, so another run (the sensor's, a manual one) can write in between.
            with duckdb.get_connection() as connection:
                outcome = store_page(connection, page, context.run_id)
            pages += 1
            read += outcome.read
            inserted += outcome.inserted
            quarantined += outcome.quarantined
            if page.error:
                context.log.warning(f"{page.source} page {page.page} quarantined: {page.error}")
            log = context.log.info if pages % PROGRESS_EVERY_PAGES == 0 else context.log.debug
            log(
                f"{pages} pages read ({page.source} page {page.page}): {read} items, "
                f"{inserted} new, {quarantined} quarantined"
            )
            # A listing runs newest first: once a whole page is stored, so is the rest of it.
            # (Archives are not ordered, so they are always read whole.)
            if outcome.all_known and not muse.is_archive and not config.full_crawl:
                context.log.info(
                    f"{page.source} page {page.page} holds only stored postings: "
                    "stopping this listing"
                )
                stopped_early = True
                break
    context.log.info(
        f"{pages} pages read: {read} items, {inserted} new, {quarantined} quarantined"
    )
    with duckdb.get_connection() as connection:
        total, postings = connection.execute(
            "SELECT count(*), count(DISTINCT posting_id) FROM bronze.bronze_postings"
        ).fetchone()
        quarantine_total = connection.execute(
            "SELECT count(*) FROM bronze.bronze_quarantine"
        ).fetchone()[0]
    return MaterializeResult(
        metadata={
            "source": muse.description,
            "pages_read": pages,
            "stopped_at_known_page": stopped_early,
            "items_read": read,
            "rows_inserted": inserted,
            "items_quarantined": quarantined,
            "dagster/row_count": total,
            "distinct_postings": postings,
            "quarantine_rows_total": quarantine_total,
            "table": MetadataValue.text("bronze.bronze_postings"),
        }
    )
