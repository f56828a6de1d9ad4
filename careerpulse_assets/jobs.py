"""Jobs, the retraining schedule and the weekly full crawl."""

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

weekly_full_crawl_schedule = ScheduleDefinition(
    name="weekly_full_crawl",
    job=careerpulse_all_job,
    cron_schedule="30 3 * * 0",
    execution_timezone="UTC",
    run_config={"ops": {"bronze_postings": {"config": {"full_crawl": True}}}},
    default_status=DefaultScheduleStatus.RUNNING,
    description="Starts a full crawl every Sunday at 03:30 UTC: every listing walked whole "
    "(capped ones parted), which finds postings published into pages read before and edits to "
    "old ones. Later runs (the sensor's) go on with it within their request budget: about "
    "23,000 requests at the live API's size, 47 h without a key, 6.5 with one. Runs started any "
    "other way also start one when the last began CAREERPULSE_FULL_CRAWL_DAYS (7) ago.",
)
