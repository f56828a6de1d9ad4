import json

from dagster import RunRequest, SkipReason, build_sensor_context

from careerpulse_assets.resources import MuseApi
from careerpulse_assets.sensors import muse_new_pages_sensor

from .muse_fixtures import synthetic_postings
from .muse_server import serve_muse


def tick(muse: MuseApi, cursor: str | None):
    context = build_sensor_context(cursor=cursor, resources={"muse": muse})
    return muse_new_pages_sensor(context), context.cursor


def test_new_postings_request_one_run_and_the_same_listing_none():
    items = synthetic_postings()
    with serve_muse(items) as (stub, base_url):
        muse = MuseApi(base_url=base_url, retries=0)
        first, cursor = tick(muse, None)
        assert isinstance(first, RunRequest)
        assert len(stub.requests) == 1 and "page=0" in stub.requests[0]

        again, same_cursor = tick(muse, cursor)
        assert isinstance(again, SkipReason) and "nothing new" in again.skip_message
        assert same_cursor == cursor

        newest = max(items, key=lambda i: i["publication_date"])
        stub.items.append(dict(newest, id=999_999, publication_date="2026-02-01T00:00:00Z"))
        after_new, new_cursor = tick(muse, cursor)
        assert isinstance(after_new, RunRequest)
        assert after_new.run_key != first.run_key and new_cursor != cursor
        assert after_new.tags["careerpulse/newest_posting_id"] == "999999"
        assert len(stub.requests) == 3  # one request per tick


def test_a_failing_api_skips_with_the_reason_and_backs_off():
    items = synthetic_postings()
    with serve_muse(items) as (stub, base_url):
        muse = MuseApi(base_url=base_url, retries=0)
        stub.faults[0] = [500]
        result, cursor = tick(muse, None)
        assert isinstance(result, SkipReason)
        assert "could not read the Muse listing" in result.skip_message
        assert "500" in result.skip_message and "next try in 600 s" in result.skip_message

        # The next tick comes too soon: no request at all.
        again, cursor = tick(muse, cursor)
        assert "backing off after 1 failed polls" in again.skip_message
        assert len(stub.requests) == 1

        # Once the wait is over, a healthy API gives a run and clears the failures.
        waited = json.dumps({**json.loads(cursor), "retry_after": 0})
        recovered, cursor = tick(muse, waited)
        assert isinstance(recovered, RunRequest)
        assert "failures" not in json.loads(cursor)


def test_an_empty_listing_skips():
    with serve_muse([]) as (_, base_url):
        result, _ = tick(MuseApi(base_url=base_url, retries=0), None)
    assert isinstance(result, SkipReason) and "no postings" in result.skip_message


def test_a_tick_fails_runs_whose_worker_died_and_frees_their_pool_slot(tmp_path):
    import subprocess
    import sys

    from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

    from careerpulse_assets.assets.common import DUCKDB_POOL
    from careerpulse_assets.recovery import WORKER_TAG, worker_identity

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with DagsterInstance.ephemeral(tempdir=str(tmp_path)) as instance:
        dead = DagsterRun(job_name="careerpulse_all", status=DagsterRunStatus.STARTED,
                          tags={WORKER_TAG: worker_identity(gone.pid)})
        instance.add_run(dead)
        instance.event_log_storage.set_concurrency_slots(DUCKDB_POOL, 1)
        claim = instance.event_log_storage.claim_concurrency_slot(
            DUCKDB_POOL, dead.run_id, "bronze_postings"
        )
        assert claim.is_claimed
        with serve_muse(synthetic_postings()) as (_, base_url):
            context = build_sensor_context(
                instance=instance, resources={"muse": MuseApi(base_url=base_url, retries=0)}
            )
            result = muse_new_pages_sensor(context)
        assert isinstance(result, RunRequest)
        assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_info(DUCKDB_POOL).claimed_slots


def test_an_unfinished_crawl_asks_for_another_run_even_when_page_0_did_not_change(tmp_path):
    from dagster import AssetMaterialization, DagsterInstance

    with DagsterInstance.ephemeral(tempdir=str(tmp_path)) as instance, \
            serve_muse(synthetic_postings()) as (stub, base_url):
        muse = MuseApi(base_url=base_url, retries=0)

        def tick_with(cursor):
            context = build_sensor_context(instance=instance, cursor=cursor,
                                           resources={"muse": muse})
            return muse_new_pages_sensor(context), context.cursor

        first, cursor = tick_with(None)
        assert isinstance(first, RunRequest)  # the listing is new to the sensor
        instance.report_runless_asset_event(AssetMaterialization(
            "bronze_postings", metadata={"crawl_unfinished": True, "crawl_ids": "full-1"}))
        going_on, cursor = tick_with(cursor)
        assert isinstance(going_on, RunRequest) and going_on.run_key.startswith("crawl-")
        assert going_on.tags["careerpulse/crawl"] == "full-1"
        # The same materialisation asks for the same run (Dagster runs a run key once); the
        # next run's materialisation asks for the next one.
        again, cursor = tick_with(cursor)
        assert again.run_key == going_on.run_key
        instance.report_runless_asset_event(AssetMaterialization(
            "bronze_postings", metadata={"crawl_unfinished": True, "crawl_ids": "full-1"}))
        next_run, cursor = tick_with(cursor)
        assert next_run.run_key != going_on.run_key
        instance.report_runless_asset_event(AssetMaterialization(
            "bronze_postings", metadata={"crawl_unfinished": False, "crawl_ids": "full-1"}))
        finished, _ = tick_with(cursor)
        assert isinstance(finished, SkipReason) and "nothing new" in finished.skip_message
        assert len(stub.requests) == 5  # still one request a tick
