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


# --- pages committed in batches (BronzeWriter) ------------------------------------------------


def stored_pages(database) -> tuple[int, int, int]:
    """(rows, distinct postings, the frontier's next page) of the crawl_pages store."""
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(
            "SELECT (SELECT count(*) FROM bronze.bronze_postings), "
            "(SELECT count(DISTINCT posting_id) FROM bronze.bronze_postings), "
            "(SELECT max(next_page) FROM bronze.bronze_crawl_frontier)").fetchone()


def test_a_crawl_killed_mid_batch_loses_only_that_batch_and_the_rerun_stores_each_posting_once(
        tmp_path):
    """SIGKILL when page 25 is asked for (ahead, while page 24 is stored): pages 20-24 are not
    yet committed (COMMIT_EVERY_PAGES = 20). Only those five are lost, the frontier with them,
    so the rerun asks again from page 20 and every posting is stored once."""
    import subprocess
    import sys
    from pathlib import Path

    from careerpulse_assets.ingestion.bronze_store import COMMIT_EVERY_PAGES

    from .crawl_pages import crawl, listing

    assert COMMIT_EVERY_PAGES == 20
    database = tmp_path / "careerpulse.duckdb"
    killed = subprocess.run(
        [sys.executable, "-m", "careerpulse_assets_tests.crawl_pages", str(database), "25"],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert stored_pages(database) == (20 * 20, 20 * 20, 20)

    items = listing()
    asked = crawl(str(database), items)
    assert asked == list(range(20, 34))  # the lost batch again, the rest, the empty page 33
    assert stored_pages(database)[:2] == (len(items), len(items))


def test_a_batch_as_old_as_commit_every_seconds_is_committed_before_it_is_full(tmp_path):
    """COMMIT_EVERY_SECONDS = 0: every page is committed once stored, so the kill when page 25
    is asked for loses at most page 24, the one being stored when the full crawl asked for page
    25 ahead (the age rule, without waiting for a clock)."""
    import subprocess
    import sys
    from pathlib import Path

    database = tmp_path / "careerpulse.duckdb"
    killed = subprocess.run(
        [sys.executable, "-m", "careerpulse_assets_tests.crawl_pages", str(database), "25", "0"],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    rows, postings, next_page = stored_pages(database)
    assert next_page in (24, 25) and rows == postings == next_page * 20


def test_a_failing_page_source_keeps_the_pages_stored_and_a_failing_store_loses_its_batch(
        tmp_path):
    from contextlib import contextmanager

    from careerpulse_assets.ingestion.bronze_store import BronzeWriter

    items = synthetic_postings(per_category=20, unlabelled=0)  # 120 postings, 6 pages
    pages = [RawPage("test", n, items[n * 20:(n + 1) * 20]) for n in range(6)]
    database = str(tmp_path / "careerpulse.duckdb")

    @contextmanager
    def connect():
        with duckdb.connect(database) as connection:
            yield connection

    def refused_after(count):
        yield from pages[:count]
        raise RuntimeError("the API refused")

    writer = BronzeWriter(connect, "run")
    with pytest.raises(RuntimeError, match="the API refused"):
        writer.walk(refused_after(3))
    with duckdb.connect(database) as connection:
        assert count(connection, "bronze_postings") == 60  # all three pages, committed

    def fails_on_page_5(connection, page, outcome):
        if page.page == 5:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        writer.walk(iter(pages), then=fails_on_page_5)
    writer.held.release()
    with duckdb.connect(database) as connection:
        # Pages 3 and 4 were in the failed page's batch: rolled back with it, whole.
        assert count(connection, "bronze_postings") == 60
