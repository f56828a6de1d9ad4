import duckdb
import pandas as pd
import pytest

from careerpulse_assets.ingestion.bronze_store import ensure_bronze_schema, store_page
from careerpulse_assets.ingestion.silver_store import update_silver
from careerpulse_assets.ingestion.pages import RawPage

from .muse_fixtures import edge_case_page, synthetic_postings


@pytest.fixture
def connection():
    with duckdb.connect() as conn:
        ensure_bronze_schema(conn)
        yield conn


def silver(connection, columns="*"):
    return connection.execute(
        f"SELECT {columns} FROM silver.silver_postings ORDER BY posting_id"
    ).fetchdf()


def test_silver_is_built_from_the_latest_payload_of_each_posting(connection):
    items = synthetic_postings()
    store_page(connection, RawPage("t", 0, items))
    edited = dict(items[0], name="Principal Engineer", id=str(items[0]["id"]))
    store_page(connection, RawPage("t", 1, [edited]))
    assert update_silver(connection, slice_postings=7).rebuilt == len(items)
    rows = silver(connection)
    assert len(rows) == len(items) and rows["posting_id"].is_unique
    assert rows.loc[rows["posting_id"] == items[0]["id"], "title"].item() == "Principal Engineer"


def test_an_update_rebuilds_only_postings_with_new_payloads(connection):
    items = synthetic_postings()
    store_page(connection, RawPage("t", 0, items))
    update_silver(connection)
    before = silver(connection, "posting_id, bronze_row_id")

    assert update_silver(connection).rebuilt == 0  # nothing new in bronze
    store_page(connection, RawPage("t", 0, [dict(items[5], name="Edited")] + items[6:8]))
    assert update_silver(connection).rebuilt == 1  # items 6 and 7 were unchanged: bronze kept nothing
    after = silver(connection, "posting_id, bronze_row_id")
    changed = after["bronze_row_id"] != before["bronze_row_id"]
    assert after.loc[changed, "posting_id"].tolist() == [items[5]["id"]]


def test_flattened_columns_and_types(connection):
    store_page(connection, RawPage("t", 0, edge_case_page()["results"]))
    update_silver(connection)
    row = silver(connection).iloc[0]
    assert row["description_text"].startswith("Build pipelines & models")
    assert list(row["categories"]) == ["Data and Analytics", "Software Engineering"]
    types = dict(connection.execute("SELECT column_name, data_type FROM information_schema.columns "
                                    "WHERE table_name = 'silver_postings'").fetchall())
    assert types["publication_date"] == "TIMESTAMP WITH TIME ZONE"
    assert types["categories"] == "VARCHAR[]"


def test_a_silver_table_of_another_shape_is_rebuilt(connection):
    store_page(connection, RawPage("t", 0, synthetic_postings()))
    connection.execute("CREATE SCHEMA silver")
    connection.execute("CREATE TABLE silver.silver_postings AS SELECT 1 AS posting_id, 'x' AS title")
    assert update_silver(connection).rebuilt == 54
    assert len(silver(connection)) == 54


def test_a_slice_whose_sampled_rows_have_no_category_merges(connection):
    # Issue 29: DuckDB typed a pandas column from a sample of every 5th row of the slice; at 400k
    # postings the sampled rows were all [] and the merge failed ("VARCHAR -> NULL").
    base = synthetic_postings()[0]
    items = [dict(base, id=1_000_000 + i, name=f"Engineer {i}",
                  categories=[] if i % 5 == 0 else [{"name": "Software Engineering"}])
             for i in range(5_000)]
    store_page(connection, RawPage("t", 0, items))
    assert update_silver(connection, slice_postings=5_000).rebuilt == 5_000
    listed = connection.execute("SELECT count(*) FROM silver.silver_postings "
                                "WHERE len(categories) = 1").fetchone()[0]
    assert listed == 4_000


def test_each_posting_keeps_its_link_and_text_key_and_a_silver_without_them_is_rebuilt(
        connection):
    from careerpulse_assets.classification.evaluation import text_keys

    items = synthetic_postings()
    items[1] = dict(items[1], refs={"landing_page": 42})  # not a link: none kept
    store_page(connection, RawPage("t", 0, items))
    update_silver(connection)
    # Silver as the version before left it: no link, no text key.
    connection.execute("ALTER TABLE silver.silver_postings DROP COLUMN link")
    connection.execute("ALTER TABLE silver.silver_postings DROP COLUMN text_key")
    assert update_silver(connection).rebuilt == len(items)
    rows = silver(connection).set_index("posting_id")
    assert rows.loc[items[0]["id"], "link"] == items[0]["refs"]["landing_page"]
    assert rows.loc[items[1]["id"], "link"] is None
    assert (rows["text_key"] == text_keys(rows).to_numpy()).all()


def test_a_silver_written_before_link_and_text_key_still_gives_them_to_its_readers(connection):
    """A retraining job runs knn_classifier and the review queue without silver_postings: on a
    silver table an older version wrote, they read the key and link computed as it did."""
    from careerpulse_assets.assets.ml import LABELLED_KEYS_SQL
    from careerpulse_assets.ingestion.silver_store import key_and_link_sql
    from careerpulse_assets.review.queue import UNLABELLED_SQL

    store_page(connection, RawPage("t", 0, synthetic_postings()))
    update_silver(connection)

    def read():
        key_and_link = key_and_link_sql(connection)
        return (connection.execute(UNLABELLED_SQL.format(key_and_link=key_and_link)).fetchdf()
                .sort_values("posting_id", ignore_index=True),
                connection.execute(LABELLED_KEYS_SQL.format(key_and_link=key_and_link)).fetchdf())

    stored = read()
    connection.execute("ALTER TABLE silver.silver_postings DROP COLUMN link")
    connection.execute("ALTER TABLE silver.silver_postings DROP COLUMN text_key")
    computed = read()
    for before, after in zip(stored, computed, strict=True):
        pd.testing.assert_frame_equal(before, after)
    assert stored[0]["link"].notna().all() and stored[1]["text_key"].notna().all()
