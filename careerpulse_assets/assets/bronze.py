from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from dagster_duckdb import DuckDBResource

from ..core.bronze_store import ensure_bronze_schema, store_page
from ..resources import MuseApi

DUCKDB_POOL = "careerpulse_duckdb"


@asset(
    group_name="ingestion",
    kinds={"duckdb"},
    pool=DUCKDB_POOL,
    description="Raw Muse job items, one row per new payload (append-only history), in "
    "`bronze.bronze_postings`; items that cannot be postings go to `bronze.bronze_quarantine`.",
)
def bronze_postings(
    context: AssetExecutionContext, muse: MuseApi, duckdb: DuckDBResource
) -> MaterializeResult:
    pages = read = inserted = quarantined = 0
    with duckdb.get_connection() as connection:
        ensure_bronze_schema(connection)
        for page in muse.iter_pages():
            outcome = store_page(connection, page, context.run_id)
            pages += 1
            read += outcome.read
            inserted += outcome.inserted
            quarantined += outcome.quarantined
            if page.error:
                context.log.warning(f"{page.source} page {page.page} quarantined: {page.error}")
            context.log.info(
                f"{page.source} page {page.page}: {outcome.read} items, "
                f"{outcome.inserted} new, {outcome.quarantined} quarantined"
            )
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
            "items_read": read,
            "rows_inserted": inserted,
            "items_quarantined": quarantined,
            "dagster/row_count": total,
            "distinct_postings": postings,
            "quarantine_rows_total": quarantine_total,
            "table": MetadataValue.text("bronze.bronze_postings"),
        }
    )
