"""Jobs and the (stopped) daily retraining schedule."""

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

careerpulse_all_job = define_asset_job(
    "careerpulse_all",
    selection=AssetSelection.all(),
    description="Every asset from bronze to the forecast, with their checks: what `make run` "
    "and the sensor run.",
)

ingestion_job = define_asset_job(
    "careerpulse_ingestion",
    selection=AssetSelection.assets("bronze_postings", "silver_postings"),
    description="Only bronze and silver: fetch what is new and clean it, no training.",
)

retraining_job = define_asset_job(
    "careerpulse_retrain",
    selection=AssetSelection.assets("knn_classifier").downstream(),
    config={"ops": {"knn_classifier": {"config": {"force_retrain": True}}}},
    description="Retrain the classifier whatever share of the labels changed (never on the very "
    "labels and code of the model in service: that would learn the same model), then re-impute "
    "and rebuild gold and the forecast.",
)

daily_retraining_schedule = ScheduleDefinition(
    name="daily_retraining",
    job=retraining_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Retrains the classifier every day at 03:00 UTC when any label changed. Stopped "
    "by default: the classifier already retrains when reviewers' labels or 5 % of the labels "
    "change.",
)

# The full crawl has one cadence, the setting CAREERPULSE_FULL_CRAWL_DAYS (7): whichever way a run
# starts (the sensor, `make run`, the UI), bronze_postings starts a full crawl when the last one
# began that long ago (ingestion/crawl.py). No schedule repeats it (a schedule fires only under a
# daemon, and said the same thing a second time); `full_crawl: true` on op bronze_postings starts
# one now.
