import pandas as pd
from dagster import AssetExecutionContext, asset

from ..core.gold import daily_counts
from .bronze import DUCKDB_POOL


@asset(
    group_name="reporting",
    kinds={"duckdb", "pandas"},
    pool=DUCKDB_POOL,
    metadata={"schema": "gold"},
    description="Postings per UTC day and category from the first to the last publication day, "
    "a row for every day and category (zeros included): the series a demand forecast uses.",
)
def gold_daily_counts(context: AssetExecutionContext, imputed_silver: pd.DataFrame) -> pd.DataFrame:
    counts = daily_counts(imputed_silver)
    context.add_output_metadata(
        {
            "days": int(counts["day"].nunique()),
            "categories": int(counts["category"].nunique()),
            "first_day": str(counts["day"].min()),
            "last_day": str(counts["day"].max()),
        }
    )
    return counts
