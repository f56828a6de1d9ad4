"""The gold series: postings per UTC day and category, every day and category present, each
row saying whether anybody saw that day (`observed`) and saw it whole (`complete`).

The counts are plain SQL against the DuckDB file, as silver is: the UTC day was settled once,
when silver was built (`publication_day`). The grid and its flags come from `core/coverage.py`
(which days the crawls and archives covered), fed by the bronze tables.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from .classifier import UNCLASSIFIED
from .clock import reference_now
from .coverage import day_coverage
from .sql import transaction_with


# One row per posting and source that stored it; the 'unknown' source when bronze is not there
# (a gold built from an imputed_silver alone counts like an archive).
POSTING_SOURCES_SQL = """
SELECT DISTINCT coalesce(b.source, 'unknown') AS source, i.posting_id,
       i.publication_day AS day, coalesce(i.category, $unclassified) AS category,
       CASE WHEN NOT coalesce(i.is_imputed, false) AND i.category <> $unclassified
            THEN i.category END AS listed_category
FROM silver.imputed_silver i
LEFT JOIN (SELECT DISTINCT posting_id, source FROM bronze.bronze_postings) b USING (posting_id)
"""
POSTINGS_WITHOUT_BRONZE_SQL = """
SELECT 'unknown' AS source, posting_id, publication_day AS day,
       coalesce(category, $unclassified) AS category,
       CASE WHEN NOT coalesce(is_imputed, false) AND category <> $unclassified
            THEN category END AS listed_category
FROM silver.imputed_silver
"""
# A walk the page cap stopped read back only to its oldest posting (core.coverage rule 1).
WALKS_SQL = """
SELECT source, started_at, complete,
       CASE WHEN status IN ('capped', 'split') THEN coalesce(oldest_publication_date, started_at)
       END AS reached_back_to
FROM bronze.bronze_crawls
"""

DAILY_COUNTS_SQL = """
CREATE OR REPLACE TABLE gold.gold_daily_counts AS
WITH counts AS (
    SELECT publication_day AS day, coalesce(category, $unclassified) AS category,
           count(*) AS postings, count(*) FILTER (WHERE is_imputed) AS imputed_postings
    FROM silver.imputed_silver GROUP BY ALL
)
SELECT CAST(grid.day AS DATE) AS day, grid.category,
       coalesce(counts.postings, 0)::BIGINT AS postings,
       coalesce(counts.imputed_postings, 0)::BIGINT AS imputed_postings,
       grid.observed::BOOLEAN AS observed, grid.complete::BOOLEAN AS complete
FROM grid LEFT JOIN counts ON counts.day = CAST(grid.day AS DATE) AND counts.category = grid.category
ORDER BY day, category
"""


def _has_table(connection: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    (count,), = connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()
    return bool(count)


def coverage_inputs(connection: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(postings by source, walks) as `core.coverage.day_coverage` takes them."""
    with_bronze = _has_table(connection, "bronze", "bronze_postings")
    postings = connection.execute(
        POSTING_SOURCES_SQL if with_bronze else POSTINGS_WITHOUT_BRONZE_SQL,
        {"unclassified": UNCLASSIFIED},
    ).fetchdf()
    walks = (connection.execute(WALKS_SQL).fetchdf()
             if _has_table(connection, "bronze", "bronze_crawls")
             else pd.DataFrame(columns=["source", "started_at", "complete", "reached_back_to"]))
    return postings, walks


def write_daily_counts(connection: duckdb.DuckDBPyConnection) -> None:
    """`gold.gold_daily_counts` (day DATE, category, postings, imputed_postings, observed,
    complete): one row per day from the first publication day to the last (or to the newest
    walk of an API listing) and per category, zeros included, from every `silver.imputed_silver`
    row (a NULL category counted as `Unclassified`); the flags by `core.coverage.day_coverage`."""
    connection.execute("CREATE SCHEMA IF NOT EXISTS gold")
    grid = day_coverage(*coverage_inputs(connection), today=reference_now(connection).date())
    grid = grid.astype({"day": "datetime64[ns]", "observed": bool, "complete": bool})
    with transaction_with(connection, grid=grid):
        connection.execute(DAILY_COUNTS_SQL, {"unclassified": UNCLASSIFIED})
