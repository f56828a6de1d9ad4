from dagster import (
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    TableColumn,
    TableSchema,
    asset,
)
from dagster_duckdb import DuckDBResource

from ..core.silver_store import update_silver
from .bronze import bronze_postings
from .common import DUCKDB_POOL, OWNERS, preview

SILVER_STATS_SQL = """
SELECT count(*) AS postings,
       count(category) AS labelled,
       count(*) - count(category) AS without_category,
       count(DISTINCT category) AS categories
FROM silver.silver_postings
"""


@asset(
    deps=[bronze_postings],
    group_name="ingestion",
    kinds={"duckdb"},
    owners=OWNERS,
    tags={"layer": "silver"},
    pool=DUCKDB_POOL,
    description="One clean row per posting (its latest bronze payload) in "
    "`silver.silver_postings`: text from the HTML, first real category (NULL when none or "
    "'Unknown') under its current Muse name (`category`; the name as listed in "
    "`category_raw`), publication date in UTC. Only postings with new bronze payloads are "
    "rebuilt.",
)
def silver_postings(context: AssetExecutionContext, duckdb: DuckDBResource) -> MaterializeResult:
    with duckdb.get_connection() as connection:
        updated = update_silver(connection)
        cursor = connection.execute(SILVER_STATS_SQL)
        stats = dict(zip([c[0] for c in cursor.description], cursor.fetchone(), strict=True))
        columns = connection.execute("DESCRIBE silver.silver_postings").fetchall()
        sample = connection.execute(
            "SELECT posting_id, title, category, category_raw, company, publication_date, "
            "description_text FROM silver.silver_postings ORDER BY publication_date DESC LIMIT 5"
        ).fetchdf()
    if not stats["postings"]:
        raise Failure("bronze.bronze_postings holds no postings: nothing to clean")
    context.log.info(f"{updated} postings rebuilt from new bronze payloads")
    return MaterializeResult(
        metadata={
            "postings_rebuilt": updated,
            "dagster/row_count": stats["postings"],
            "labelled_postings": stats["labelled"],
            "postings_without_category": stats["without_category"],
            "categories": stats["categories"],
            "dagster/column_schema": TableSchema(
                columns=[TableColumn(name=row[0], type=row[1]) for row in columns]
            ),
            "newest_rows": preview(sample),
        }
    )

