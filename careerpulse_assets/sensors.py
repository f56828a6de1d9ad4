"""Start a run of the whole graph when The Muse lists something new."""

import hashlib
import json
import time
from pathlib import Path

from dagster import (
    AssetKey,
    DagsterInvariantViolationError,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from .ingestion.bronze_store import unstored_postings
from .ops.duckdb_file import read_if_free
from .jobs import careerpulse_all_job
from .ingestion.muse_api import MuseApiError
from .ops.recovery import recover_dead_runs
from .resources import MuseApi
from .ops.settings import DEFAULT_SENSOR_INTERVAL_SECONDS

# After a failed poll, wait interval × 2^failures (at most 6 hours) before asking again.
MAX_BACKOFF_SECONDS = 6 * 3600


def backoff_seconds(failures: int, interval: int = DEFAULT_SENSOR_INTERVAL_SECONDS) -> int:
    return min(interval * 2**failures, MAX_BACKOFF_SECONDS)


def build_new_pages_sensor(interval: int = DEFAULT_SENSOR_INTERVAL_SECONDS,
                           database: Path | None = None):
    """The sensor ticking every `interval` seconds (CAREERPULSE_SENSOR_INTERVAL_SECONDS),
    comparing page 0 with what the DuckDB file `database` holds (None: it does not look)."""

    @sensor(
        name="muse_new_pages_sensor",
        job=careerpulse_all_job,
        minimum_interval_seconds=interval,
        default_status=DefaultSensorStatus.STOPPED,
        description=f"Polls page 0 of the Muse listing (newest first) every {interval} s (one "
        "request a tick; CAREERPULSE_SENSOR_INTERVAL_SECONDS) and requests a run of the whole "
        "graph when the newest posting or the total changed, or when the last run left a crawl "
        "unfinished (its request budget spent: `crawl_unfinished` in bronze_postings' metadata, "
        "read from the Dagster instance), or when postings on page 0 are not in the DuckDB file "
        "although the listing did not change (a file restored from a backup, or deleted): it "
        "looks only while no run is queued or going on and no process holds the file, "
        "read-only, for a moment. A failing "
        f"API makes it skip with the reason and back off ({interval} s × 2^failures, at most "
        "6 h). Each tick first marks runs whose worker process died as failed, which frees "
        "their DuckDB pool slot. Starts stopped: turn it on in the UI once the API settings are "
        "right.",
    )
    def muse_new_pages_sensor(context: SensorEvaluationContext, muse: MuseApi):
        return _tick(context, muse, interval, database)

    return muse_new_pages_sensor


def _tick(context: SensorEvaluationContext, muse: MuseApi, interval: int,
          database: Path | None):
    # A run whose worker died would hold the run queue and the DuckDB pool for ever.
    try:
        instance = context.instance
    except DagsterInvariantViolationError:
        instance = None  # built without an instance, in a test
    if instance is not None:
        for line in recover_dead_runs(instance):
            context.log.warning(line)
    # The cursor (kept in the Dagster instance, so it survives restarts) holds the last listing
    # seen and the failure count with the time before which no request is made.
    cursor = json.loads(context.cursor) if context.cursor else {}
    now = time.time()
    if now < cursor.get("retry_after", 0):
        return SkipReason(
            f"backing off after {cursor['failures']} failed polls; next request in "
            f"{cursor['retry_after'] - now:.0f} s"
        )
    try:
        state, page_ids = muse.listing_state()
    except (MuseApiError, OSError) as exc:
        failures = cursor.get("failures", 0) + 1
        wait = backoff_seconds(failures, interval)
        context.update_cursor(
            json.dumps({**cursor, "failures": failures, "retry_after": now + wait})
        )
        return SkipReason(f"could not read the Muse listing ({exc}); next try in {wait} s")
    seen = {"listing": state}
    context.update_cursor(json.dumps(seen, sort_keys=True))
    unfinished = unfinished_crawl(instance)
    if state["newest_id"] is None and unfinished is None:
        return SkipReason(f"the Muse listing ({muse.description}) has no postings")
    if state != cursor.get("listing") and state["newest_id"] is not None:
        return RunRequest(
            run_key=hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16],
            tags={"careerpulse/newest_posting_id": str(state["newest_id"])},
        )
    if unfinished is not None:
        # One run per materialisation that left the crawl unfinished: the next one is asked
        # for only once that run has gone on with it.
        storage_id, crawls = unfinished
        return RunRequest(run_key=f"crawl-{storage_id}", tags={"careerpulse/crawl": crawls})
    # The cursor says what was listed, not what the file holds: a file restored from a backup
    # lacks postings the listing no longer shows as new.
    unstored = None if database is None or runs_going_on(instance) else (
        unstored_on_page_0(database, page_ids))
    if unstored:
        reason = (f"{len(unstored)} of the {len(page_ids)} postings on page 0 are not in "
                  f"{database}")
        context.log.warning(f"{reason} although the listing did not change (the file restored "
                            "from a backup, or deleted?): a run brings them back")
        key = json.dumps([state, unstored], sort_keys=True)
        return RunRequest(run_key="unstored-" + hashlib.sha256(key.encode()).hexdigest()[:16],
                          tags={"careerpulse/unstored": reason})
    return SkipReason(
        f"nothing new: newest posting {state['newest_id']} "
        f"({state['newest_publication_date']}), {state['total']} listed"
        + ("; page 0 all stored" if unstored == [] else "")
    )


def unstored_on_page_0(database: Path, page_ids: list[int]) -> list[int] | None:
    """Of the postings on page 0, those the DuckDB file holds neither stored nor quarantined;
    every one when there is no file; None when a process holds it (not waited for)."""
    if not Path(database).exists():
        return sorted(set(page_ids))
    return read_if_free(Path(database), lambda connection: unstored_postings(connection, page_ids))


def runs_going_on(instance) -> bool:
    """Whether a run is queued or going on: it may be the one that stores page 0."""
    if instance is None:
        return False
    return bool(instance.get_run_ids(filters=RunsFilter(statuses=[
        DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]), limit=1))


def unfinished_crawl(instance) -> tuple[int, str] | None:
    """(storage id, crawl ids) of the latest bronze_postings materialisation when it says a
    crawl is unfinished; None otherwise, or without an instance."""
    if instance is None:
        return None
    records = instance.fetch_materializations(AssetKey("bronze_postings"), limit=1).records
    if not records or records[0].asset_materialization is None:
        return None
    metadata = records[0].asset_materialization.metadata
    flag = metadata.get("crawl_unfinished")
    if flag is None or not flag.value:
        return None
    crawls = metadata.get("crawl_ids")
    return records[0].storage_id, crawls.value if crawls is not None else ""


muse_new_pages_sensor = build_new_pages_sensor()
