"""Gold built without the graph: from imputed rows, or from an archive through bronze and silver
as the pipeline stores them (every posting left as listed: no classifier, so a posting without a
category is counted as Unclassified)."""

from contextlib import nullcontext
from pathlib import Path

import duckdb
import pandas as pd

from careerpulse_assets.ingestion.bronze_store import BronzeWriter
from careerpulse_assets.series.gold import daily_counts as gold_table
from careerpulse_assets.ingestion.silver_store import update_silver
from careerpulse_assets.ingestion.archive import iter_archive_pages

AS_LISTED_SQL = """
CREATE OR REPLACE TABLE silver.imputed_silver AS
SELECT posting_id, category, false AS is_imputed, publication_day FROM silver.silver_postings
"""


def daily_counts(rows) -> pd.DataFrame:
    """gold.gold_daily_counts from imputed rows (publication_day, category, is_imputed)."""
    imputed = pd.DataFrame(rows, columns=["publication_day", "category", "is_imputed"])
    imputed["publication_day"] = pd.to_datetime(imputed["publication_day"]).dt.date
    imputed.insert(0, "posting_id", range(1, len(imputed) + 1))
    with duckdb.connect() as connection:
        connection.execute("CREATE SCHEMA silver")
        connection.register("frame", imputed)
        connection.execute("CREATE TABLE silver.imputed_silver AS SELECT * FROM frame")
        return gold_table(connection).to_pandas(date_as_object=False)


def archive_gold(folder: Path) -> pd.DataFrame:
    """gold.gold_daily_counts of an archive folder: bronze (BronzeWriter), silver
    (update_silver) and gold (daily_counts) in an in-memory DuckDB."""
    with duckdb.connect() as connection:
        writer = BronzeWriter(lambda: nullcontext(connection), run_id=None)
        writer.store(iter_archive_pages(folder))
        update_silver(connection)
        connection.execute(AS_LISTED_SQL)
        return gold_table(connection).to_pandas(date_as_object=False)
