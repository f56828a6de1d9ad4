"""The gold series: postings per UTC day and category, every day and category present.

Plain SQL against the DuckDB file, as silver is: the UTC day was settled once, when silver was
built (`publication_day`), so gold needs nothing from Python.
"""

from __future__ import annotations

import duckdb

DAILY_COUNTS_SQL = """
CREATE OR REPLACE TABLE gold.gold_daily_counts AS
WITH postings AS (
    SELECT publication_day AS day, category, is_imputed
    FROM silver.imputed_silver WHERE category IS NOT NULL
),
days AS (
    SELECT CAST(d AS DATE) AS day
    FROM range(
        (SELECT min(day) FROM postings)::TIMESTAMP,
        (SELECT max(day) FROM postings)::TIMESTAMP + INTERVAL 1 DAY,
        INTERVAL 1 DAY
    ) AS t(d)
),
categories AS (SELECT DISTINCT category FROM postings),
counts AS (
    SELECT day, category, count(*) AS postings,
           count(*) FILTER (WHERE is_imputed) AS imputed_postings
    FROM postings GROUP BY day, category
)
SELECT days.day, categories.category,
       coalesce(counts.postings, 0)::BIGINT AS postings,
       coalesce(counts.imputed_postings, 0)::BIGINT AS imputed_postings
FROM days CROSS JOIN categories
LEFT JOIN counts ON counts.day = days.day AND counts.category = categories.category
ORDER BY days.day, categories.category
"""


def write_daily_counts(connection: duckdb.DuckDBPyConnection) -> None:
    """`gold.gold_daily_counts`: one row per day from the first to the last publication day and
    per category, zeros included, from `silver.imputed_silver`."""
    connection.execute("CREATE SCHEMA IF NOT EXISTS gold")
    connection.execute(DAILY_COUNTS_SQL)
