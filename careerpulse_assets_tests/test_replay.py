"""The benchmark replay (benchmarks/replay.py): any size, distinct texts, built on request."""

import json
import urllib.request
from datetime import datetime

import pytest

from benchmarks.replay import ReplayedPostings, replay_sources
from careerpulse_assets.ingestion.postings import silver_row

from .muse_fixtures import synthetic_postings
from .muse_server import serve_muse


@pytest.fixture(scope="module")
def sources():
    return replay_sources(synthetic_postings())


def test_a_posting_is_a_pure_function_of_the_seed_and_its_number(sources):
    postings = ReplayedPostings(sources, 3_000)
    again = ReplayedPostings(sources, 10)  # another size: the same first postings
    assert postings[7] == again[7] == postings[7]
    assert ReplayedPostings(sources, 10, seed=1)[7] != postings[7]
    assert postings.with_newer(20)[20] == postings[0]  # a new page goes in front


def test_texts_are_distinct_with_the_asked_share_without_a_category(sources):
    # 54 shared postings in 3 categories: the old replay of copies had 64 texts each at most.
    postings = ReplayedPostings(sources, 5_000, unlabelled_share=0.7)
    rows = [silver_row(item) for item in postings]
    assert len({(row["title"], row["description_text"]) for row in rows}) == 5_000
    without = sum(row["category"] is None for row in rows) / len(rows)
    assert 0.68 < without < 0.72
    truth = postings.true_categories()
    assert truth["posting_id"].tolist() == [row["posting_id"] for row in rows]
    # A posting served with a category is served with its true one.
    listed = [(row["category"], true) for row, true in zip(rows, truth["true_category"])
              if row["category"] is not None]
    assert all(category == true for category, true in listed)


def test_about_1100_postings_a_day_back_from_a_fixed_date(sources):
    postings = ReplayedPostings(sources, 400_000)
    newest, oldest = (datetime.fromisoformat(postings[i]["publication_date"])
                      for i in (0, len(postings) - 1))
    assert newest.isoformat() == "2026-07-01T00:00:00+00:00"
    assert 360 <= (newest - oldest).days <= 365  # a year at the live API's size


def test_the_stub_builds_pages_on_request(sources):
    built = []

    class Counted(ReplayedPostings):
        def posting(self, i):
            built.append(i)
            return super().posting(i)

    postings = Counted(sources, 400_000)
    with serve_muse(postings, in_listing_order=True) as (_, base_url):
        with urllib.request.urlopen(f"{base_url}/jobs?page=3&descending=true") as answer:
            page = json.load(answer)
    assert page["total"] == 400_000 and page["page_count"] == 20_000
    assert [item["id"] for item in page["results"]] == [p["id"] for p in postings[60:80]]
    assert len(built) == 40  # the page, and the comparison's 20: never the 400,000


def test_each_size_of_make_bench_runs_in_a_home_of_its_own_whatever_this_process_set(tmp_path):
    """The comparisons of one size set MLFLOW_TRACKING_URI in this process (mlflow's
    set_tracking_uri); the next size's runs once inherited it and logged to the first home."""
    from benchmarks.scale import run_environment

    leaked = {"PATH": "/usr/bin", "MLFLOW_TRACKING_URI": "sqlite:////elsewhere/mlflow.db",
              "CAREERPULSE_MUSE_ARCHIVE": "/elsewhere", "CAREERPULSE_MAX_PAGES": "3"}
    env = run_environment(tmp_path / "home", "http://127.0.0.1:9", environ=leaked)
    assert "MLFLOW_TRACKING_URI" not in env
    assert "CAREERPULSE_MUSE_ARCHIVE" not in env and "CAREERPULSE_MAX_PAGES" not in env
    assert env["CAREERPULSE_HOME"] == str(tmp_path / "home")
    assert env["DAGSTER_HOME"] == str(tmp_path / "home" / "dagster")
    assert (tmp_path / "home" / "dagster" / "dagster.yaml").exists()
    assert env["PATH"] == "/usr/bin" and leaked["MLFLOW_TRACKING_URI"]  # the caller's untouched
