import json

import pandas as pd
from dagster import AssetExecutionContext, Failure, asset
from dagster_duckdb import DuckDBResource

from ..core.bronze_store import latest_payloads
from ..core.postings import silver_row
from .bronze import DUCKDB_POOL, bronze_postings


@asset(
    deps=[bronze_postings],
    group_name="ingestion",
    kinds={"duckdb", "pandas"},
    pool=DUCKDB_POOL,
    metadata={"schema": "silver"},
    description="One clean row per posting (its latest bronze payload): text from the HTML, "
    "first real category (NULL when none or 'Unknown'), publication date in UTC.",
)
def silver_postings(context: AssetExecutionContext, duckdb: DuckDBResource) -> pd.DataFrame:
    with duckdb.get_connection() as connection:
        latest = latest_payloads(connection)
    if latest.empty:
        raise Failure("bronze.bronze_postings holds no postings: nothing to clean")
    silver = pd.DataFrame.from_records([silver_row(json.loads(p)) for p in latest["payload"]])
    silver["publication_date"] = pd.to_datetime(silver["publication_date"], utc=True)
    context.add_output_metadata(
        {
            "labelled_postings": int(silver["category"].notna().sum()),
            "postings_without_category": int(silver["category"].isna().sum()),
            "categories": int(silver["category"].nunique()),
        }
    )
    return silver
