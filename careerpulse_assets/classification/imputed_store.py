"""`silver.imputed_silver` and its side tables in DuckDB: what imputation reads from silver, which
silver postings changed since the table was written, and the writes (the whole table, or only
the changed postings), each in one transaction.

The table is written by its asset, not by the `io_manager` (it is loaded through it like every
table): a run that brings a page of 20 new postings rewrote 400,000 rows through the IO manager
(2.5 s of an incremental run at 400,000 postings, issue 29); it now replaces only the postings new,
changed or gone (classification/decisions.py `recount_decision` says when everything is imputed
again). No Dagster here: connections in, frames and Arrow tables out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from ..ops.duckdb_file import registered, transaction_with

# Silver's columns imputed_silver copies, without the description: the texts of the postings to
# classify are read a slice at a time (TEXTS_SQL), the imputed table is the lean one users count
# and join, and the texts of 280,000 postings without a category were most of the step's memory
# at 400,000 postings (~4.5 GiB: issue 29's research, section 4).
COPIED_COLUMNS = ("bronze_row_id, title, category_raw, categories, level, locations, company, "
                  "publication_date, publication_day")
POSTINGS_SQL = """
SELECT posting_id, bronze_row_id, title, category, category_raw, category_source, categories,
       level, locations, company, publication_date, publication_day
FROM silver.silver_postings {where} ORDER BY posting_id
"""
# The model's input for the postings in `wanted_texts` (posting_id, position), in its order.
TEXTS_SQL = """
SELECT s.title, s.description_text
FROM wanted_texts AS w JOIN silver.silver_postings AS s USING (posting_id)
ORDER BY w.position
"""
EARLIER_SCORES_SQL = """
SELECT posting_id, bronze_row_id, model_scores, nearest_similarity
FROM silver.imputed_silver
WHERE model_version = $model_version AND model_scores IS NOT NULL {and_wanted}
"""
# Silver postings that imputed_silver does not hold as silver has them now (new, or any copied
# column different: a new version of the posting, a reviewer's label, a taxonomy change), and
# postings imputed_silver holds that silver no longer has; each with whether it is or was without
# a category (what the count rests on). A posting without a category is held with the category
# imputed_silver gave it: compared as silver has it (NULL).
CHANGED_SQL = f"""
WITH changed AS (
    SELECT posting_id FROM (
        SELECT posting_id, category, category_source, {COPIED_COLUMNS} FROM silver.silver_postings
        EXCEPT
        SELECT posting_id,
               CASE WHEN category_source IN ('imputed', 'unclassified') THEN NULL ELSE category END,
               CASE WHEN category_source IN ('imputed', 'unclassified') THEN NULL
                    ELSE category_source END,
               {COPIED_COLUMNS}
        FROM silver.imputed_silver)
    UNION
    SELECT posting_id FROM silver.imputed_silver ANTI JOIN silver.silver_postings USING (posting_id)
)
SELECT c.posting_id,
       coalesce(s.posting_id IS NOT NULL AND s.category IS NULL, false)
       OR coalesce(i.category_source IN ('imputed', 'unclassified'), false) AS without_category
FROM changed AS c
LEFT JOIN silver.silver_postings AS s USING (posting_id)
LEFT JOIN silver.imputed_silver AS i USING (posting_id)
ORDER BY c.posting_id
"""
# What the postings about to be replaced added to the kept counts: per category the sum of their
# probabilities and of q(1 - q).
REPLACED_SUMS_SQL = """
SELECT entry.key AS category, sum(entry.value) AS counts,
       sum(entry.value * (1 - entry.value)) AS variance
FROM (SELECT unnest(map_entries(category_probabilities)) AS entry
      FROM silver.imputed_silver
      WHERE category_probabilities IS NOT NULL
        AND posting_id IN (SELECT posting_id FROM replaced_postings))
GROUP BY ALL
"""
WITHOUT_CATEGORY_SQL = "SELECT count(*) FROM silver.silver_postings WHERE category IS NULL"
# Every category written per posting, the first time each model version writes it: what a
# reviewer's later label is compared with (the check written_precision_on_labels).
WRITTEN_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS silver.written_categories (
    posting_id BIGINT, model_version VARCHAR, category VARCHAR, confidence DOUBLE,
    written_at TIMESTAMPTZ)
"""
RECORD_WRITTEN_SQL = """
INSERT INTO silver.written_categories
SELECT i.posting_id, i.model_version, i.category, i.imputation_confidence, now()
FROM imputed_rows AS i
WHERE i.is_imputed AND NOT EXISTS (
    SELECT 1 FROM silver.written_categories AS w
    WHERE w.posting_id = i.posting_id AND w.model_version = i.model_version
      AND w.category = i.category)
"""
# Per posting a reviewer labelled after a category was written on it: the category written last
# before the label, and the label.
WRITTEN_THEN_LABELLED_SQL = """
SELECT w.category AS written, s.category AS labelled
FROM silver.silver_postings AS s
JOIN (SELECT posting_id, arg_max(category, written_at) AS category
      FROM silver.written_categories GROUP BY posting_id) AS w USING (posting_id)
WHERE s.category_source = 'label'
"""
# What the asset's page says of the whole table, however much of it this run wrote.
SUMMARY_SQL = """
SELECT count(*) FILTER (WHERE category_source IN ('imputed', 'unclassified')) AS without_category,
       count(*) FILTER (WHERE is_imputed) AS imputed,
       avg(imputation_confidence) FILTER (WHERE is_imputed) AS mean_confidence_written,
       count(*) FILTER (WHERE nearest_similarity < $least_similarity) AS like_no_labelled_one
FROM silver.imputed_silver
"""
UNCLASSIFIED_GUESSES_SQL = """
SELECT predicted_category, count(*) AS postings FROM silver.imputed_silver
WHERE category_source = 'unclassified' AND predicted_category IS NOT NULL
GROUP BY ALL ORDER BY postings DESC, predicted_category
"""
WRITTEN_PREVIEW_SQL = """
SELECT * EXCLUDE (categories, locations, category_probabilities, model_scores)
FROM silver.imputed_silver WHERE is_imputed ORDER BY posting_id LIMIT {rows}
"""


def _has_columns(connection, table: str, columns: tuple[str, ...]) -> bool:
    # Asked first: DuckDB would look a missing table up among this module's Python names.
    found = connection.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'silver' "
        f"AND table_name = '{table}' AND column_name IN ({', '.join('?' * len(columns))})",
        list(columns)).fetchall()[0][0]
    return found == len(columns)


def _ids(posting_ids) -> pa.Table:
    return pa.table({"posting_id": pa.array(np.asarray(posting_ids, dtype=np.int64))})


def read_postings(connection, posting_ids: np.ndarray | None = None) -> pd.DataFrame:
    """Silver's postings (POSTINGS_SQL's columns: no description), every one or those of
    `posting_ids`, by posting_id."""
    if posting_ids is None:
        return connection.execute(POSTINGS_SQL.format(where="")).fetchdf()
    with registered(connection, wanted_postings=_ids(posting_ids)):
        return connection.execute(POSTINGS_SQL.format(
            where="WHERE posting_id IN (SELECT posting_id FROM wanted_postings)")).fetchdf()


def postings_and_earlier_scores(
    connection, model_version: str | None, posting_ids: np.ndarray | None = None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(silver's postings, every one or those of `posting_ids`: `read_postings`; what
    `model_version` said before of those without a category, or None)."""
    earlier = (earlier_scores(connection, model_version, posting_ids) if model_version
               else None)
    return read_postings(connection, posting_ids), earlier


def read_texts(duckdb, posting_ids: pd.Series) -> pd.DataFrame:
    """The model's input (title, description_text) of silver's `posting_ids`, in their order,
    over a connection of the `duckdb` resource. ValueError when silver lacks one of them (the
    join would drop its row and shift the rest)."""
    wanted = pa.table({"posting_id": pa.array(posting_ids.to_numpy(), pa.int64()),
                       "position": pa.array(np.arange(len(posting_ids)), pa.int64())})
    with duckdb.get_connection() as connection, registered(connection, wanted_texts=wanted):
        texts = connection.execute(TEXTS_SQL).fetchdf()
    if len(texts) != len(posting_ids):
        raise ValueError(f"{len(posting_ids) - len(texts)} of the postings to classify are no "
                         "longer in silver.silver_postings")
    return texts


def earlier_scores(connection, model_version: str, posting_ids: np.ndarray | None = None
                   ) -> pd.DataFrame | None:
    """What `model_version` said of the postings without a category imputed_silver holds (of
    those of `posting_ids`): posting_id, bronze_row_id, model_scores (Arrow maps),
    nearest_similarity; None when the table is missing or older than these columns."""
    if not _has_columns(connection, "imputed_silver",
                        ("bronze_row_id", "model_scores", "nearest_similarity")):
        return None
    params = {"model_version": model_version}
    if posting_ids is None:
        table = connection.sql(EARLIER_SCORES_SQL.format(and_wanted=""),
                               params=params).to_arrow_table()
    else:
        with registered(connection, wanted_postings=_ids(posting_ids)):
            table = connection.sql(EARLIER_SCORES_SQL.format(
                and_wanted="AND posting_id IN (SELECT posting_id FROM wanted_postings)"),
                params=params).to_arrow_table()
    # The scores stay Arrow maps (a Python dict per posting took seconds at 400,000 postings).
    earlier = table.drop_columns(["model_scores"]).to_pandas()
    earlier["model_scores"] = pd.arrays.ArrowExtensionArray(table["model_scores"])
    return earlier


@dataclass(frozen=True)
class Changes:
    """What changed in silver since imputed_silver was written (CHANGED_SQL)."""

    posting_ids: np.ndarray  # new, changed or gone, ascending
    without_category: int  # of those, the ones without a category in silver or in imputed_silver


def changed_postings(connection) -> Changes | None:
    """The silver postings new or changed since imputed_silver was written, and those it holds that
    silver no longer has; None when there is no imputed table of today's columns to compare
    with."""
    if not _has_columns(connection, "imputed_silver", ("bronze_row_id", "category_probabilities",
                                                       "model_scores", "nearest_similarity")):
        return None
    found = connection.execute(CHANGED_SQL).fetchnumpy()
    return Changes(found["posting_id"].astype(np.int64), int(found["without_category"].sum()))


def kept_mix(connection) -> pd.DataFrame | None:
    """silver.unlabelled_mix as the last imputation left it, or None (missing, or written by code
    that kept no correction)."""
    if not _has_columns(connection, "unlabelled_mix", ("prior_weight", "variance", "estimated_on",
                                                       "changed_since", "count_key")):
        return None
    return connection.execute("SELECT * FROM silver.unlabelled_mix").fetchdf()


def replaced_sums(connection, posting_ids: np.ndarray) -> pd.DataFrame:
    """Per category, what the postings `posting_ids` add to the kept counts now (REPLACED_SUMS_SQL:
    category, counts, variance)."""
    with registered(connection, replaced_postings=_ids(posting_ids)):
        return connection.execute(REPLACED_SUMS_SQL).fetchdf()


def postings_without_category(connection) -> int:
    return int(connection.execute(WITHOUT_CATEGORY_SQL).fetchall()[0][0])


def write(connection, rows: pa.Table, mix: pa.Table, replaced: np.ndarray | None) -> None:
    """In one transaction: silver.imputed_silver becomes `rows` (replaced: None), or loses the
    postings `replaced` and gains `rows`; silver.unlabelled_mix becomes `mix`; the categories
    written in `rows` are recorded in silver.written_categories."""
    tables = {"imputed_rows": rows, "mix_rows": mix}
    if replaced is not None:
        tables["replaced_postings"] = _ids(replaced)
    with transaction_with(connection, **tables):
        connection.execute("CREATE SCHEMA IF NOT EXISTS silver")
        connection.execute("CREATE OR REPLACE TABLE silver.unlabelled_mix AS "
                           "SELECT * FROM mix_rows ORDER BY estimated_postings DESC")
        if replaced is None:
            connection.execute("CREATE OR REPLACE TABLE silver.imputed_silver AS "
                               "SELECT * FROM imputed_rows")
        else:
            connection.execute("DELETE FROM silver.imputed_silver WHERE posting_id IN "
                               "(SELECT posting_id FROM replaced_postings)")
            connection.execute("INSERT INTO silver.imputed_silver BY NAME "
                               "SELECT * FROM imputed_rows")
        connection.execute(WRITTEN_TABLE_SQL)
        connection.execute(RECORD_WRITTEN_SQL)


def summary(connection, least_similarity: float, preview_rows: int) -> dict:
    """What the asset's page says of the whole table: its SUMMARY_SQL figures,
    `unclassified_by_guess` ({category: postings}) and the first written rows
    (`written_preview`)."""
    figures = dict(zip(("without_category", "imputed", "mean_confidence_written",
                        "like_no_labelled_one"),
                       connection.execute(SUMMARY_SQL,
                                          {"least_similarity": least_similarity}).fetchall()[0]))
    guesses = connection.execute(UNCLASSIFIED_GUESSES_SQL).fetchall()
    figures["unclassified_by_guess"] = {str(c): int(n) for c, n in guesses}
    figures["written_preview"] = connection.execute(
        WRITTEN_PREVIEW_SQL.format(rows=int(preview_rows))).fetchdf()
    return figures


def written_then_labelled(connection) -> pd.DataFrame:
    """WRITTEN_THEN_LABELLED_SQL: written, labelled per posting a reviewer labelled after."""
    return connection.execute(WRITTEN_THEN_LABELLED_SQL).fetchdf()
