"""What imputed_silver reads: the texts only of the postings it must score (issue 29)."""

import duckdb

from careerpulse_assets.assets.ml import postings_and_earlier_scores
from careerpulse_assets.ingestion.bronze_store import ensure_bronze_schema, store_page
from careerpulse_assets.ingestion.pages import RawPage
from careerpulse_assets.ingestion.silver_store import update_silver

from .muse_fixtures import synthetic_postings


def test_texts_of_postings_scored_before_by_the_same_model_are_not_read():
    with duckdb.connect() as connection:
        ensure_bronze_schema(connection)
        store_page(connection, RawPage("t", 0, synthetic_postings()))
        update_silver(connection)
        unlabelled = connection.execute(
            "SELECT posting_id, bronze_row_id FROM silver.silver_postings "
            "WHERE category IS NULL ORDER BY posting_id").fetchall()
        (scored, row), (stale, stale_row), (new, _) = unlabelled[:3]
        # The last run scored two of them with model v1, one from a silver row since rebuilt.
        connection.execute(
            "CREATE TABLE silver.imputed_silver AS SELECT * FROM (VALUES "
            "(?, ?, 'v1', MAP {'Data': 1.0}, 0.5), (?, ?, 'v1', MAP {'Data': 1.0}, 0.5)) "
            "AS t(posting_id, bronze_row_id, model_version, model_scores, nearest_similarity)",
            [scored, row, stale, stale_row - 1])

        postings, earlier = postings_and_earlier_scores(connection, "v1")
        texts = postings.set_index("posting_id")["description_text"]
        assert texts[scored] is None  # its scores are reused: its text is not read
        assert texts[stale] and texts[new]
        assert len(postings) == 54 and len(earlier) == 2

        postings, _ = postings_and_earlier_scores(connection, "v2")  # another model: all read
        assert postings.set_index("posting_id")["description_text"][scored]
        postings, earlier = postings_and_earlier_scores(connection, None)  # no model
        assert earlier is None and postings["description_text"].notna().sum() == 12
