"""The Muse client and bronze against a loopback API that misbehaves in the ways the real one can."""

import time

import pytest
from dagster import DagsterInstance, materialize

from careerpulse_assets.assets.bronze import bronze_postings
from careerpulse_assets.definitions import build_resources
from careerpulse_assets.ingestion.muse_api import MuseApiError, iter_api_pages, make_session

from .graph import query
from .muse_fixtures import synthetic_postings
from .muse_server import serve_muse

FAST = {"retries": 3, "backoff_factor": 0.01}


def walk(base_url, **kwargs):
    return list(iter_api_pages(base_url, session=make_session(**FAST), **kwargs))


def test_rate_limited_answers_wait_for_the_reset_and_retry():
    with serve_muse(synthetic_postings()) as (stub, base_url):
        stub.faults[1] = ["rate_limited"]
        started = time.monotonic()
        pages = walk(base_url)
        elapsed = time.monotonic() - started
    assert [len(p.items) for p in pages] == [20, 20, 14]
    assert len(stub.requests) == 4
    assert elapsed >= 1.0  # X-RateLimit-Reset: 1


def test_a_walk_that_used_its_allowance_pauses_until_the_reset():
    with serve_muse(synthetic_postings()) as (stub, base_url):
        stub.faults[0] = ["last_request"]
        started = time.monotonic()
        pages = walk(base_url)
        elapsed = time.monotonic() - started
    assert len(pages) == 3 and len(stub.requests) == 3  # paced, so never refused
    assert elapsed >= 1.0


def test_a_refusal_that_is_not_the_rate_limit_is_a_clear_error():
    with serve_muse(synthetic_postings()) as (stub, base_url):
        stub.faults[0] = [403] * 10
        with pytest.raises(MuseApiError, match="answered 403"):
            walk(base_url)
        assert len(stub.requests) == 1 + FAST["retries"]


def test_a_truncated_body_is_asked_for_again():
    with serve_muse(synthetic_postings()) as (stub, base_url):
        stub.faults[1] = ["truncated"]
        pages = walk(base_url)
    assert [p.error for p in pages] == [None, None, None]
    assert len(stub.requests) == 4


def test_a_body_that_stays_broken_is_quarantined_and_the_walk_goes_on():
    with serve_muse(synthetic_postings()) as (stub, base_url):
        stub.faults[1] = ["truncated"] * 3
        pages = walk(base_url)
    assert [len(p.items) for p in pages] == [20, 0, 14]
    assert "body is not valid JSON (3 tries)" in pages[1].error
    assert pages[1].raw.startswith('{"page": 1')


def test_an_answer_slower_than_the_timeout_is_retried():
    with serve_muse(synthetic_postings()) as (stub, base_url):
        stub.slow_seconds = 1.5
        stub.faults[0] = ["slow"]
        pages = walk(base_url, timeout=0.5)
    assert len(pages) == 3 and len(stub.requests) == 4


def bronze_run(settings, instance, full_crawl=False):
    return materialize(
        [bronze_postings],
        resources=build_resources(settings),
        instance=instance,
        run_config={"ops": {"bronze_postings": {"config": {"full_crawl": full_crawl}}}},
    )


def test_an_incremental_run_reads_only_the_new_pages_and_stops(settings_for):
    items = synthetic_postings(per_category=30, unlabelled=0)  # 90 postings, 5 pages
    with serve_muse(items) as (stub, base_url):
        settings = settings_for(base_url=base_url)
        instance = DagsterInstance.ephemeral()
        bronze_run(settings, instance)
        assert len(stub.requests) == 5

        newer = synthetic_postings(per_category=7, unlabelled=0, first_id=500_000, seed=2)
        for item in newer:  # 21 new postings, newer than everything stored
            item["publication_date"] = "2026-06-01T00:00:00Z"
        stub.items += newer
        stub.requests.clear()
        bronze_run(settings, instance)
        # page 0: 20 new; page 1: 1 new + 19 stored; page 2: all stored -> stop.
        assert len(stub.requests) == 3
    stored = query(settings, "SELECT count(*) AS n, count(DISTINCT posting_id) AS d FROM bronze.bronze_postings")
    assert stored["n"][0] == stored["d"][0] == 111


def test_an_edited_posting_wins_and_the_key_never_leaks(settings_for, monkeypatch):
    items = synthetic_postings()
    # The resource reads the key from the environment (an EnvVar), as in production.
    monkeypatch.setenv("CAREERPULSE_MUSE_API_KEY", "k3y-that-must-not-leak")
    with serve_muse(items) as (stub, base_url):
        settings = settings_for(base_url=base_url, muse_api_key="k3y-that-must-not-leak")
        instance = DagsterInstance.ephemeral()
        result = bronze_run(settings, instance)
        newest = stub.listing()[0]
        newest["name"] = "Edited title"
        stub.items = [i for i in stub.items if i["id"] != newest["id"]] + [newest]
        bronze_run(settings, instance)
        assert all("api_key=k3y-that-must-not-leak" in r for r in stub.requests)
    versions = query(
        settings, f"SELECT count(*) AS n FROM bronze.bronze_postings WHERE posting_id = {newest['id']}"
    )
    assert versions["n"][0] == 2
    everything = " ".join(
        str(entry.user_message) + str(entry.dagster_event)
        for entry in instance.all_logs(result.run_id)
    )
    assert "k3y-that-must-not-leak" not in everything
    stored = query(settings, "SELECT string_agg(source || payload, '') AS s FROM bronze.bronze_postings")
    assert "k3y-that-must-not-leak" not in stored["s"][0]


def test_crawl_settings_come_from_the_environment():
    from careerpulse_assets.ops.settings import Settings

    settings = Settings.from_env({"CAREERPULSE_CRAWL_CATEGORIES": "Sales; Installation, Maintenance, and Repairs;",
                                  "CAREERPULSE_CRAWL_LEVELS": "Senior Level"})
    assert settings.crawl_categories == ("Sales", "Installation, Maintenance, and Repairs")
    assert settings.crawl_levels == ("Senior Level",)
    assert (settings.max_requests_per_run, settings.full_crawl_days) == (400, 7)
    budgeted = Settings.from_env({"CAREERPULSE_MAX_REQUESTS_PER_RUN": "3000",
                                  "CAREERPULSE_FULL_CRAWL_DAYS": "14"})
    assert (budgeted.max_requests_per_run, budgeted.full_crawl_days) == (3000, 14)
    with pytest.raises(ValueError, match="CAREERPULSE_MAX_REQUESTS_PER_RUN must be a positive"):
        Settings.from_env({"CAREERPULSE_MAX_REQUESTS_PER_RUN": "0"})


@pytest.mark.slow
def test_a_run_killed_mid_crawl_leaves_whole_pages_and_the_next_run_finishes(settings_for):
    from .ingest_once import killed_after

    items = synthetic_postings(per_category=200, unlabelled=60)  # 660 postings, 33 pages
    with serve_muse(items) as (stub, base_url):
        stub.delay_seconds = 0.2
        settings = settings_for(base_url=base_url)
        killed_after(stub, settings.home, base_url, 10)

        stored = query(settings, "SELECT count(*) AS n FROM bronze.bronze_postings")["n"][0]
        assert 0 < stored < len(items) and stored % 20 == 0  # whole pages only

        stub.delay_seconds = 0
        stub.requests.clear()
        instance = DagsterInstance.ephemeral()
        bronze_run(settings, instance)
        # The killed walk goes on from the page after the last one stored (its frontier was
        # committed with each page) to the end: 33 full pages, and the empty page 33 that says
        # the listing ends there.
        assert len(stub.requests) == 34 - stored // 20
        assert stub.requests[0].startswith(f"/api/public/jobs?page={stored // 20}&")
        stub.requests.clear()
        bronze_run(settings, instance)
        assert len(stub.requests) == 1  # now complete: the next run stops at page 0
    counts = query(settings, "SELECT count(*) AS n, count(DISTINCT posting_id) AS d FROM bronze.bronze_postings")
    assert counts["n"][0] == counts["d"][0] == len(items)


@pytest.mark.slow
def test_every_fault_at_once_every_valid_posting_lands_exactly_once(settings_for):
    from .graph import judged_checks_pass, materialize_graph
    from .test_assets import SMALL_GRID

    items = synthetic_postings()
    malformed = [
        {"name": "no id", "publication_date": "2026-01-20T00:00:00Z", "categories": []},
        dict(items[0], id=777_001, categories="Sales"),
        dict(items[1], id=777_002, contents=["not", "a", "string"]),
        dict(items[2], id=777_003, publication_date="someday"),
    ]
    with serve_muse(items + malformed) as (stub, base_url):
        stub.faults = {0: ["rate_limited", 500], 1: ["truncated", "slow"], 2: [503, 502]}
        stub.slow_seconds = 0.1
        settings = settings_for(base_url=base_url)
        instance = DagsterInstance.ephemeral()
        first = materialize_graph(settings, SMALL_GRID, instance=instance)
        assert first.success and judged_checks_pass(first)
        second = materialize_graph(settings, SMALL_GRID, instance=instance)
        assert second.success
    counts = query(
        settings,
        "SELECT (SELECT count(*) FROM bronze.bronze_postings) AS bronze, "
        "(SELECT count(DISTINCT posting_id) FROM bronze.bronze_postings) AS ids, "
        "(SELECT count(*) FROM silver.imputed_silver) AS imputed, "
        "(SELECT count(*) FROM bronze.bronze_quarantine) AS quarantined",
    ).iloc[0]
    assert counts.tolist() == [len(items), len(items), len(items), 4]
    reasons = query(settings, "SELECT reason FROM bronze.bronze_quarantine ORDER BY reason")["reason"]
    assert any("missing id" in r for r in reasons) and any("not a list" in r for r in reasons)
    assert any("contents is not a string" in r for r in reasons) and any("ISO-8601" in r for r in reasons)
