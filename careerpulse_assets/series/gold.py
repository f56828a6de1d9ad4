"""The gold series: postings per UTC day and category, every day and category present, each
row saying whether anybody saw that day (`observed`) and saw it whole (`complete`), and how many
postings the category is estimated to have had counting those without a category
(`estimated_postings`, with a 90 % interval `estimated_low` / `estimated_high`).

The counts are plain SQL against the DuckDB file, as silver is: the UTC day was settled once,
when silver was built (`publication_day`). The grid and its flags come from `series/coverage.py`
(which days the crawls and archives covered), fed by the bronze tables.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa

from ..classification.serving import UNCLASSIFIED
from ..ingestion.clock import reference_now
from .coverage import day_coverage
from .quantification import INTERVAL_Z
from ..ops.duckdb_file import declared_table, transaction_with


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

# Known categories count 1 where they are; each posting without one is spread over the categories
# by its probabilities (series/quantification.py), with the per-posting variance p(1 - p); a posting
# without probabilities (no model) counts 1 as Unclassified. The interval adds the method's
# systematic error per category, a share of the day's postings without a category
# (silver.unlabelled_mix.share_error), and is clipped to what the day's postings allow.
DAILY_COUNTS_SQL = """
WITH imputed AS (SELECT * FROM {imputed}),
counts AS (
    SELECT publication_day AS day, coalesce(category, $unclassified) AS category,
           count(*) AS postings, count(*) FILTER (WHERE is_imputed) AS imputed_postings,
           count(*) FILTER (WHERE category_probabilities IS NULL) AS certain
    FROM imputed GROUP BY ALL
),
entries AS (
    SELECT publication_day AS day, unnest(map_entries(category_probabilities)) AS entry
    FROM imputed WHERE category_probabilities IS NOT NULL
),
spread AS (
    SELECT day, entry.key AS category, sum(entry.value) AS expected,
           sum(entry.value * (1 - entry.value)) AS variance
    FROM entries GROUP BY ALL
),
uncertain_days AS (
    SELECT publication_day AS day, count(*) AS uncertain
    FROM imputed WHERE category_probabilities IS NOT NULL GROUP BY ALL
),
cells AS (
    SELECT CAST(grid.day AS DATE) AS day, grid.category,
           coalesce(counts.postings, 0) AS postings,
           coalesce(counts.imputed_postings, 0) AS imputed_postings,
           coalesce(counts.certain, 0) AS certain,
           coalesce(spread.expected, 0) AS expected,
           coalesce(spread.variance, 0) + power(coalesce(mix.share_error, 0)
                                                * coalesce(uncertain_days.uncertain, 0), 2)
               AS variance,
           coalesce(uncertain_days.uncertain, 0) AS uncertain,
           grid.observed, grid.complete
    FROM grid
    LEFT JOIN counts ON counts.day = CAST(grid.day AS DATE) AND counts.category = grid.category
    LEFT JOIN spread ON spread.day = CAST(grid.day AS DATE) AND spread.category = grid.category
    LEFT JOIN uncertain_days ON uncertain_days.day = CAST(grid.day AS DATE)
    LEFT JOIN mix ON mix.category = grid.category
)
SELECT day, category, postings::BIGINT AS postings, imputed_postings::BIGINT AS imputed_postings,
       observed::BOOLEAN AS observed, complete::BOOLEAN AS complete,
       (certain + expected)::DOUBLE AS estimated_postings,
       greatest(certain, certain + expected - $z * sqrt(variance))::DOUBLE AS estimated_low,
       least(certain + uncertain, certain + expected + $z * sqrt(variance))::DOUBLE
           AS estimated_high
FROM cells
ORDER BY day, category
"""
# The systematic error of each category's count (a share of the postings without a category).
# The frames daily_counts hands DuckDB, with their types declared (declared_table).
GRID_ARROW_TYPES = {"day": pa.date32(), "category": pa.string(), "observed": pa.bool_(),
                    "complete": pa.bool_()}
MIX_SHARE_ERROR_TYPES = {"category": pa.string(), "share_error": pa.float64()}
MIX_SQL = """
SELECT category, share_error FROM silver.unlabelled_mix
"""


def _has_table(connection: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    (count,), = connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()
    return bool(count)


def _imputed_source(connection: duckdb.DuckDBPyConnection) -> str:
    """`silver.imputed_silver`, or, written before it kept probabilities, the same with none (its
    postings without a category counted where they were written)."""
    (has,), = connection.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'silver' AND "
        "table_name = 'imputed_silver' AND column_name = 'category_probabilities'").fetchall()
    if has:
        return "silver.imputed_silver"
    return ("(SELECT *, CAST(NULL AS MAP(VARCHAR, DOUBLE)) AS category_probabilities "
            "FROM silver.imputed_silver)")


def coverage_inputs(connection: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(postings by source, walks) as `series.coverage.day_coverage` takes them."""
    with_bronze = _has_table(connection, "bronze", "bronze_postings")
    postings = connection.execute(
        POSTING_SOURCES_SQL if with_bronze else POSTINGS_WITHOUT_BRONZE_SQL,
        {"unclassified": UNCLASSIFIED},
    ).fetchdf()
    walks = (connection.execute(WALKS_SQL).fetchdf()
             if _has_table(connection, "bronze", "bronze_crawls")
             else pd.DataFrame(columns=["source", "started_at", "complete", "reached_back_to"]))
    return postings, walks


def daily_counts(connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """`gold.gold_daily_counts` as an Arrow table (day DATE, category, postings,
    imputed_postings BIGINT, observed, complete BOOLEAN, estimated_postings, estimated_low,
    estimated_high DOUBLE): one row per day from the first publication day to the last (or to the
    newest walk of an API listing) and per category (those of the postings and those the model
    spreads postings over), zeros included, from every `silver.imputed_silver` row (a NULL
    category counted as `Unclassified`); the flags by `series.coverage.day_coverage`; the
    estimates as DAILY_COUNTS_SQL says (90 % intervals). Reads only: the asset returns it."""
    mix = (connection.execute(MIX_SQL).fetchdf()
           if _has_table(connection, "silver", "unlabelled_mix")
           else pd.DataFrame({"category": pd.Series(dtype=str),
                              "share_error": pd.Series(dtype=float)}))
    postings, walks = coverage_inputs(connection)
    grid = day_coverage(postings, walks, today=reference_now(connection).date(),
                        categories=mix["category"])
    grid = declared_table(grid, GRID_ARROW_TYPES)
    with transaction_with(connection, grid=grid, mix=declared_table(mix, MIX_SHARE_ERROR_TYPES)):
        return connection.sql(DAILY_COUNTS_SQL.format(imputed=_imputed_source(connection)),
                              params={"unclassified": UNCLASSIFIED, "z": INTERVAL_Z}
                              ).to_arrow_table()


def forecast_input(gold: pd.DataFrame) -> pd.DataFrame:
    """Gold's rows as the forecast learns from them: `postings` is the day's estimated count of
    the category (every posting without a category counted by its probabilities), and
    `Unclassified` is left out where nothing is left unclassified by the counts (a model spreads
    every posting), so it is not forecast as a category of its own."""
    frame = gold.assign(postings=gold["estimated_postings"].astype(float).round(9))
    unclassified = frame["category"] == UNCLASSIFIED
    if unclassified.any() and not (frame.loc[unclassified, "postings"] > 0).any():
        frame = frame[~unclassified]
    return frame.reset_index(drop=True)


def count_method(connection: duckdb.DuckDBPyConnection) -> dict:
    """How the postings without a category were counted (`silver.unlabelled_mix`): the method
    and its expected L1 error of the category shares; empty without a model."""
    if not _has_table(connection, "silver", "unlabelled_mix"):
        return {}
    row = connection.execute("SELECT any_value(method), any_value(expected_share_error), "
                             "any_value(model_version) FROM silver.unlabelled_mix").fetchone()
    if row[0] is None:
        return {"count_method": "none: no model, every posting without a category Unclassified"}
    return {"count_method": row[0], "expected_count_error": round(float(row[1]), 3),
            "model_version": row[2]}


def category_totals(gold: pd.DataFrame, mix: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per category over every day: postings counted by their written category, and the
    estimated postings with a 90 % interval of the total: the postings of known category plus
    `mix`'s interval of those without one (silver.unlabelled_mix: the days' errors share the
    method's systematic part, so summing the daily bounds would overstate the interval's width
    and say another thing than the summary)."""
    totals = gold.groupby("category").agg(
        postings=("postings", "sum"), estimated_postings=("estimated_postings", "sum"))
    if mix is not None and len(mix):
        spread = mix.set_index("category")
        known = totals["estimated_postings"] - spread["estimated_postings"].reindex(
            totals.index).fillna(0.0)
        totals["estimated_low"] = known + spread["estimated_low"].reindex(totals.index).fillna(0.0)
        totals["estimated_high"] = known + spread["estimated_high"].reindex(
            totals.index).fillna(0.0)
    else:
        totals["estimated_low"] = totals["estimated_high"] = totals["estimated_postings"]
    return totals.sort_values("estimated_postings", ascending=False).reset_index()
