"""The gold series: postings per UTC day and category, every day and category present."""

from __future__ import annotations

import duckdb
import pandas as pd

DAILY_COUNTS_SQL = """
WITH postings AS (
    SELECT day, category, is_imputed FROM imputed WHERE category IS NOT NULL
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
    SELECT day, category, count(*) AS postings, count(*) FILTER (WHERE is_imputed) AS imputed_postings
    FROM postings GROUP BY day, category
)
SELECT days.day, categories.category,
       coalesce(counts.postings, 0)::BIGINT AS postings,
       coalesce(counts.imputed_postings, 0)::BIGINT AS imputed_postings
FROM days CROSS JOIN categories
LEFT JOIN counts ON counts.day = days.day AND counts.category = categories.category
ORDER BY days.day, categories.category
"""


def daily_counts(imputed_silver: pd.DataFrame) -> pd.DataFrame:
    """One row per day from the first to the last publication day, per category, zeros included."""
    imputed = pd.DataFrame(
        {
            "day": pd.to_datetime(imputed_silver["publication_date"], utc=True).dt.date,
            "category": imputed_silver["category"],
            "is_imputed": imputed_silver["is_imputed"].astype(bool),
        }
    )
    with duckdb.connect() as connection:
        connection.register("imputed", imputed)
        counts = connection.execute(DAILY_COUNTS_SQL).fetchdf()
    counts["day"] = pd.to_datetime(counts["day"]).dt.date
    return counts
