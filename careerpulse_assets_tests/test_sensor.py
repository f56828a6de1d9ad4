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
    from careerpulse_assets.ops.recovery import WORKER_TAG, worker_identity

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


def test_a_duckdb_file_restored_from_a_backup_asks_for_the_run_that_brings_back_what_it_lacks(
        settings_for, tmp_path):
    import shutil

    from dagster import DagsterInstance, materialize

    from careerpulse_assets.assets.bronze import bronze_postings
    from careerpulse_assets.assets.silver import silver_postings
    from careerpulse_assets.definitions import build_definitions, build_resources

    from .graph import query

    items = sorted(synthetic_postings(per_category=50, unlabelled=0),
                   key=lambda item: item["publication_date"])  # 150, oldest first
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance, \
            serve_muse(items[:140]) as (stub, base_url):
        settings = settings_for(base_url=base_url)
        sensor, = build_definitions(settings).sensors  # as deployed: it knows the file
        muse = MuseApi(base_url=base_url, retries=0)

        def tick_with(cursor):
            context = build_sensor_context(instance=instance, cursor=cursor,
                                           resources={"muse": muse})
            return sensor(context), context.cursor

        def ingest():
            assert materialize([bronze_postings, silver_postings], instance=instance,
                               resources=build_resources(settings)).success

        def stored() -> int:
            return query(settings, "SELECT count(DISTINCT posting_id) AS n "
                                   "FROM bronze.bronze_postings")["n"][0]

        first, cursor = tick_with(None)
        assert isinstance(first, RunRequest)
        ingest()
        backup = tmp_path / "backup.duckdb"
        shutil.copyfile(settings.duckdb_path, backup)  # the nightly backup: 140 postings
        stub.publish(items[140:])
        new, cursor = tick_with(cursor)
        assert isinstance(new, RunRequest)
        ingest()
        assert stored() == 150
        idle, cursor = tick_with(cursor)
        assert isinstance(idle, SkipReason) and "150 listed" in idle.skip_message

        assert not settings.duckdb_path.with_name("careerpulse.duckdb.wal").exists()
        shutil.copyfile(backup, settings.duckdb_path)  # restored; the cursor still says 150
        assert stored() == 140
        restored, cursor = tick_with(cursor)
        # It used to skip, "nothing new: ... 150 listed", for ever.
        assert isinstance(restored, RunRequest), restored.skip_message
        assert restored.tags["careerpulse/unstored"] == (
            f"10 of the 20 postings on page 0 are not in {settings.duckdb_path}")
        ingest()
        assert stored() == 150
        again, _ = tick_with(cursor)
        assert isinstance(again, SkipReason) and "nothing new" in again.skip_message


def test_the_sensor_does_not_wait_for_a_duckdb_file_another_process_holds(settings_for, tmp_path):
    import subprocess
    import sys

    import duckdb

    from careerpulse_assets.sensors import build_new_pages_sensor

    items = synthetic_postings()
    database = tmp_path / "held.duckdb"
    duckdb.connect(str(database)).close()  # a file without bronze: page 0 is not in it
    with serve_muse(items) as (_, base_url):
        muse = MuseApi(base_url=base_url, retries=0)
        sensor = build_new_pages_sensor(database=database)
        _, cursor = tick(muse, None)  # the listing is known to the cursor
        context = build_sensor_context(cursor=cursor, resources={"muse": muse})
        assert isinstance(sensor(context), RunRequest)  # nothing of page 0 is stored
        holder = subprocess.Popen(
            [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
             "print('held', flush=True); time.sleep(60)", str(database)],
            stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "held"
            context = build_sensor_context(cursor=cursor, resources={"muse": muse})
            held = sensor(context)
        finally:
            holder.kill()
            holder.wait()
    assert isinstance(held, SkipReason) and "nothing new" in held.skip_message
