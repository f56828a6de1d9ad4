"""The Definitions: assets, checks, the sensor and the resources for this environment."""

from __future__ import annotations

from datetime import timedelta

from dagster import (
    DefaultSensorStatus,
    Definitions,
    EnvVar,
    FilesystemIOManager,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
    in_process_executor,
)

from .assets.bronze import bronze_postings
from .assets.gold import gold_category_forecast, gold_daily_counts
from .assets.ml import imputed_silver, knn_classifier, review_queue
from .assets.silver import silver_postings
from .checks import (
    category_drift,
    category_names_known,
    forecast_beats_seasonal_naive,
    gold_full_grid_sums_to_silver,
    knn_holdout_accuracy,
    knn_holdout_macro_f1,
    silver_posting_id_unique,
)
from .jobs import (
    careerpulse_all_job,
    daily_retraining_schedule,
    ingestion_job,
    retraining_job,
    weekly_full_crawl_schedule,
)
from .resources import (
    CareerPulseDuckDB,
    ModelStore,
    MuseApi,
    ReviewerLabels,
    mlflow_tracking,
)
from .sensors import build_new_pages_sensor
from .settings import Settings

EXPERIMENT_NAME = "careerpulse"


def build_resources(settings: Settings) -> dict:
    settings.home.mkdir(parents=True, exist_ok=True)
    return {
        "muse": MuseApi(
            base_url=settings.muse_base_url,
            # As an EnvVar the UI shows the variable's name, never the key itself.
            api_key=EnvVar("CAREERPULSE_MUSE_API_KEY") if settings.muse_api_key else None,
            archive_dir=str(settings.muse_archive) if settings.muse_archive else None,
            max_pages=settings.max_pages,
            max_requests_per_run=settings.max_requests_per_run,
            full_crawl_days=settings.full_crawl_days,
            crawl_categories=list(settings.crawl_categories),
            crawl_levels=list(settings.crawl_levels),
        ),
        "duckdb": CareerPulseDuckDB(database=str(settings.duckdb_path)),
        "model_io_manager": FilesystemIOManager(base_dir=str(settings.storage_dir)),
        "model_store": ModelStore(folder=str(settings.storage_dir / "models")),
        "reviewer_labels": ReviewerLabels(folder=str(settings.labels_dir)),
        "mlflow": mlflow_tracking.configured(
            {
                "experiment_name": EXPERIMENT_NAME,
                "mlflow_tracking_uri": settings.mlflow_tracking_uri,
                "artifact_location": (
                    None if settings.mlflow_is_server else str(settings.mlflow_artifacts)
                ),
                "ui_url": settings.mlflow_ui_url,
            }
        ),
    }


def build_definitions(settings: Settings) -> Definitions:
    # A stalled sensor or a failing API shows in the UI: gold not rebuilt for too long warns.
    freshness_checks = build_last_update_freshness_checks(
        assets=[gold_daily_counts], lower_bound_delta=timedelta(hours=settings.gold_max_age_hours),
    )
    freshness_sensor = build_sensor_for_freshness_checks(
        freshness_checks=freshness_checks, name="gold_freshness_sensor",
        minimum_interval_seconds=settings.sensor_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
    )
    return Definitions(
        assets=[
            bronze_postings,
            silver_postings,
            knn_classifier,
            imputed_silver,
            gold_daily_counts,
            gold_category_forecast,
            review_queue,
        ],
        asset_checks=[
            knn_holdout_accuracy,
            knn_holdout_macro_f1,
            silver_posting_id_unique,
            category_names_known,
            category_drift,
            gold_full_grid_sums_to_silver,
            forecast_beats_seasonal_naive,
            *freshness_checks,
        ],
        jobs=[careerpulse_all_job, ingestion_job, retraining_job],
        schedules=[daily_retraining_schedule, weekly_full_crawl_schedule],
        sensors=[build_new_pages_sensor(settings.sensor_interval_seconds), freshness_sensor],
        resources=build_resources(settings),
        # One DuckDB file takes one writer and the graph is a chain: running the steps of a run
        # in one process avoids lock contention and re-importing scikit-learn and MLflow per step.
        executor=in_process_executor,
    )


defs = build_definitions(Settings.from_env())
