import json

import duckdb
import pytest

from careerpulse_assets.ingestion.bronze_store import ensure_bronze_schema, store_page
from careerpulse_assets.ingestion.pages import RawPage

from .muse_fixtures import edge_case_page, synthetic_postings


@pytest.fixture
def connection():
    with duckdb.connect() as conn:
        ensure_bronze_schema(conn)
        yield conn


def count(connection, table):
    return connection.execute(f"SELECT count(*) FROM bronze.{table}").fetchone()[0]


def test_rereading_the_same_pages_adds_nothing(connection):
    items = synthetic_postings()
    first = store_page(connection, RawPage("test", 0, items))
    again = store_page(connection, RawPage("test", 0, items))
    assert (first.read, first.inserted) == (len(items), len(items))
    assert (again.read, again.inserted) == (len(items), 0)
    assert count(connection, "bronze_postings") == len(items)


def test_an_edited_posting_is_a_new_version_and_the_latest_wins(connection):
    original = synthetic_postings()[0]
    edited = dict(original, name="Principal Engineer")
    store_page(connection, RawPage("test", 0, [original]))
    assert store_page(connection, RawPage("test", 0, [edited])).inserted == 1
    # Seeing the old payload again is a change back, not nothing: it becomes the latest.
    assert store_page(connection, RawPage("test", 0, [original])).inserted == 1
    assert count(connection, "bronze_postings") == 3


def test_string_and_number_ids_are_one_posting(connection):
    item = synthetic_postings()[0]
    store_page(connection, RawPage("test", 0, [item]))
    assert store_page(connection, RawPage("test", 1, [dict(item, id=str(item["id"]))])).inserted == 1
    assert connection.execute(
        "SELECT count(DISTINCT posting_id) FROM bronze.bronze_postings"
    ).fetchone()[0] == 1


def test_bad_items_are_quarantined_with_reasons_and_the_rest_of_the_page_kept(connection):
    page = RawPage("archive:edge.json", 0, edge_case_page()["results"])
    outcome = store_page(connection, page)
    assert (outcome.read, outcome.inserted, outcome.quarantined) == (6, 3, 3)
    reasons = connection.execute(
        "SELECT item_index, reason FROM bronze.bronze_quarantine ORDER BY item_index"
    ).fetchall()
    assert [i for i, _ in reasons] == [3, 4, 5]
    assert "categories is not a list" in reasons[0][1]
    assert "missing id" in reasons[1][1]
    # Quarantine does not grow when the same bad items are read again.
    store_page(connection, page)
    assert count(connection, "bronze_quarantine") == 3


def test_an_unreadable_page_is_quarantined_with_its_body(connection):
    page = RawPage("api:x", 4, [], error="body is not valid JSON", raw="<html>oops")
    assert store_page(connection, page).quarantined == 1
    row = connection.execute("SELECT page, reason, raw FROM bronze.bronze_quarantine").fetchone()
    assert row == (4, "unreadable page: body is not valid JSON", "<html>oops")


def test_payload_is_stored_unchanged(connection):
    item = edge_case_page()["results"][0]
    store_page(connection, RawPage("test", 0, [item]))
    stored = connection.execute("SELECT payload FROM bronze.bronze_postings").fetchone()[0]
    assert json.loads(stored) == item
    assert list(json.loads(stored)) == list(item)  # field order kept too


def test_a_store_from_before_crawl_frontiers_is_upgraded_in_place(tmp_path):
    from careerpulse_assets.ingestion.bronze_store import listing_sample
    from careerpulse_assets.ingestion.listings import Listing

    path = tmp_path / "old.duckdb"
    items = synthetic_postings()
    with duckdb.connect(str(path)) as old:
        # The tables as the previous version created them, with a walk that completed.
        old.execute("""
            CREATE SCHEMA bronze; CREATE SEQUENCE bronze.bronze_row_seq;
            CREATE TABLE bronze.bronze_postings (
                bronze_row_id BIGINT PRIMARY KEY DEFAULT nextval('bronze.bronze_row_seq'),
                posting_id BIGINT NOT NULL, payload JSON NOT NULL, payload_hash VARCHAR NOT NULL,
                source VARCHAR NOT NULL, page INTEGER NOT NULL, fetched_at TIMESTAMPTZ NOT NULL,
                run_id VARCHAR);
            CREATE TABLE bronze.bronze_crawls (source VARCHAR NOT NULL, run_id VARCHAR,
                started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ,
                complete BOOLEAN NOT NULL DEFAULT false);
            INSERT INTO bronze.bronze_crawls VALUES ('api:x', 'r1', now(), now(), true);
        """)
        for item in items:
            old.execute("INSERT INTO bronze.bronze_postings (posting_id, payload, payload_hash, "
                        "source, page, fetched_at) VALUES (?, ?, 'h', 'api:x', 0, now())",
                        [item["id"], json.dumps(item)])
    with duckdb.connect(str(path)) as connection:
        ensure_bronze_schema(connection)
        walks = connection.execute("SELECT source, complete, status, total FROM "
                                   "bronze.bronze_crawls").fetchall()
        assert walks == [("api:x", True, None, None)]  # kept, with the new columns empty
        sample = listing_sample(connection, Listing.of({"category": "Sales"}))
    # The listing values were filled in from the stored payloads.
    assert sample.postings == 14 and sample.counts["level"] == {"Mid Level": 14}
