"""Start a run of the whole graph when The Muse lists something new."""

import hashlib
import json

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    sensor,
)

from .muse.client import MuseApiError
from .resources import MuseApi

careerpulse_all_job = define_asset_job(
    "careerpulse_all",
    selection=AssetSelection.all(),
    description="Every asset from bronze to gold, with their checks.",
)

# One request per tick: 12 an hour, a small share of the 500 an hour allowed without a key.
SENSOR_INTERVAL_SECONDS = 300


@sensor(
    job=careerpulse_all_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.STOPPED,
    description="Polls page 0 of the Muse listing (newest first) once per tick and requests a "
    "run of the whole graph when the newest posting or the total changed. Starts stopped: "
    "turn it on in the UI once the API settings are right.",
)
def muse_new_pages_sensor(context: SensorEvaluationContext, muse: MuseApi):
    try:
        state = muse.listing_state()
    except (MuseApiError, OSError) as exc:
        return SkipReason(f"could not read the Muse listing: {exc}")
    if state["newest_id"] is None:
        return SkipReason(f"the Muse listing ({muse.description}) has no postings")
    cursor = json.dumps(state, sort_keys=True)
    if cursor == context.cursor:
        return SkipReason(
            f"nothing new: newest posting {state['newest_id']} "
            f"({state['newest_publication_date']}), {state['total']} listed"
        )
    context.update_cursor(cursor)
    return RunRequest(
        run_key=hashlib.sha256(cursor.encode()).hexdigest()[:16],
        tags={"careerpulse/newest_posting_id": str(state["newest_id"])},
    )
