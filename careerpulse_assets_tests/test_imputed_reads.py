"""What imputed_silver reads: the texts only of the postings it must score, a slice at a time
(issue 29)."""

import duckdb
import pandas as pd
import pytest

from careerpulse_assets.classification.imputed_store import (
    changed_postings,
    postings_and_earlier_scores,
    read_texts,
)
from careerpulse_assets.ingestion.bronze_store import ensure_bronze_schema, store_page
from careerpulse_assets.ingestion.pages import RawPage
from careerpulse_assets.ingestion.silver_store import update_silver

from .muse_fixtures import synthetic_postings


class FileResource:
    """The duckdb resource's get_connection over one database file."""

    def __init__(self, path):
        self.path = str(path)

    def get_connection(self):
        return duckdb.connect(self.path)


@pytest.fixture
def silver_file(tmp_path):
    path = tmp_path / "careerpulse.duckdb"
    with duckdb.connect(str(path)) as connection:
        ensure_bronze_schema(connection)
        store_page(connection, RawPage("t", 0, synthetic_postings()))
        update_silver(connection)
    return path


def test_no_text_is_read_with_the_postings_and_earlier_scores_are_those_of_the_model(silver_file):
    with duckdb.connect(str(silver_file)) as connection:
        unlabelled = connection.execute(
            "SELECT posting_id, bronze_row_id FROM silver.silver_postings "
            "WHERE category IS NULL ORDER BY posting_id").fetchall()
        (scored, row), (stale, stale_row) = unlabelled[:2]
        connection.execute(
            "CREATE TABLE silver.imputed_silver AS SELECT * FROM (VALUES "
            "(?, ?, 'v1', MAP {'Data': 1.0}, 0.5), (?, ?, 'v1', MAP {'Data': 1.0}, 0.5)) "
            "AS t(posting_id, bronze_row_id, model_version, model_scores, nearest_similarity)",
            [scored, row, stale, stale_row - 1])
        postings, earlier = postings_and_earlier_scores(connection, "v1")
        assert "description_text" not in postings and len(postings) == 54
        assert len(earlier) == 2
        assert postings_and_earlier_scores(connection, "v2")[1].empty
        assert postings_and_earlier_scores(connection, None)[1] is None


def test_texts_are_read_for_the_ids_asked_in_their_order_and_a_missing_one_is_named(silver_file):
    with duckdb.connect(str(silver_file)) as connection:
        silver = connection.execute("SELECT posting_id, title, description_text "
                                    "FROM silver.silver_postings").fetchdf()
    resource = FileResource(silver_file)
    wanted = silver["posting_id"].iloc[[5, 0, 3]]
    texts = read_texts(resource, wanted)
    expected = silver.set_index("posting_id").loc[wanted.to_numpy(), ["title", "description_text"]]
    pd.testing.assert_frame_equal(texts, expected.reset_index(drop=True))
    with pytest.raises(ValueError, match="1 of the postings"):
        read_texts(resource, pd.Series([int(wanted.iloc[0]), -1]))


def test_the_changed_postings_are_those_new_changed_or_gone_and_no_imputed_one_as_it_was(
    silver_file
):
    with duckdb.connect(str(silver_file)) as connection:
        assert changed_postings(connection) is None  # nothing imputed yet: every posting
        connection.execute(
            "CREATE TABLE silver.imputed_silver AS SELECT posting_id, bronze_row_id, title, "
            "coalesce(category, 'Unclassified') AS category, category_raw, "
            "coalesce(category_source, 'unclassified') AS category_source, categories, level, "
            "locations, company, publication_date, publication_day, "
            "NULL::MAP(VARCHAR, DOUBLE) AS category_probabilities, "
            "NULL::MAP(VARCHAR, DOUBLE) AS model_scores, NULL::DOUBLE AS nearest_similarity "
            "FROM silver.silver_postings")
        assert len(changed_postings(connection).posting_ids) == 0
        ids = connection.execute("SELECT posting_id, category IS NULL FROM silver.silver_postings "
                                 "ORDER BY posting_id").fetchall()
        labelled = [i for i, missing in ids if not missing]
        unlabelled = [i for i, missing in ids if missing]
        # What an imputation writes on a posting without a category is no change of it.
        connection.execute("UPDATE silver.imputed_silver SET category = 'Healthcare', "
                           "category_source = 'imputed' WHERE posting_id = ?", [unlabelled[0]])
        connection.execute("UPDATE silver.silver_postings SET category = 'Sales', "
                           "category_source = 'label' WHERE posting_id = ?", [unlabelled[1]])
        connection.execute("UPDATE silver.silver_postings SET bronze_row_id = bronze_row_id + "
                           "1000 WHERE posting_id = ?", [unlabelled[2]])
        connection.execute("UPDATE silver.silver_postings SET locations = ['Remote'] "
                           "WHERE posting_id = ?", [labelled[0]])
        connection.execute("INSERT INTO silver.silver_postings SELECT * REPLACE "
                           "(999001 AS posting_id) FROM silver.silver_postings "
                           "WHERE posting_id = ?", [labelled[1]])
        connection.execute("DELETE FROM silver.silver_postings WHERE posting_id = ?",
                           [labelled[2]])

        changed = changed_postings(connection)

    assert changed.posting_ids.tolist() == sorted([unlabelled[1], unlabelled[2], labelled[0],
                                                   999001, labelled[2]])
    # What the count rests on: the two that were without a category (one now labelled).
    assert changed.without_category == 2
