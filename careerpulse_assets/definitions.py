"""The Definitions: assets, checks, the sensor and the resources for this environment.

`defs` is built from the environment and `.env` in the working directory, which Dagster's own
commands have already read (settings.apply_env_file: the same rule, for the Python API). A code
server reads `.env` again each time it loads, so *Reload definitions* in the UI applies an edited
`.env`; a setting the servers of `make ui` / `make serve` took when they started (the homes, the
stores, the ports) fails the load instead, saying that they must be restarted.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

from dagster import (
    Definitions,
    EnvVar,
    FreshnessPolicy,
    in_process_executor,
)

from .assets.bronze import bronze_postings
from .assets.gold import gold_category_forecast, gold_daily_counts
from .assets.ml import imputed_silver, knn_classifier, review_queue
from .assets.silver import silver_postings
from .checks import (
    build_newest_posting_age_check,
    category_drift,
    category_names_known,
    forecast_beats_seasonal_naive,
    gold_count_error,
    gold_full_grid_sums_to_silver,
    written_precision_on_labels,
    imputation_coverage,
    knn_holdout_accuracy,
    knn_holdout_macro_f1,
    silver_posting_id_unique,
)
from .jobs import (
    careerpulse_all_job,
    daily_retraining_schedule,
    ingestion_job,
    retraining_job,
)
from .io_managers import DuckDBTables, ServingClassifierIOManager
from .resources import (
    CareerPulseDuckDB,
    MuseApi,
    QualityBars,
    ReviewerLabels,
    mlflow_tracking,
)
from .sensors import build_new_pages_sensor
from .classification.registry import EXPERIMENT_NAME
from .ops.settings import (
    SERVER_SETTINGS_VARIABLE,
    Settings,
    SettingsError,
    apply_env_file,
    restart_needed,
)



def build_resources(settings: Settings) -> dict:
    settings.home.mkdir(parents=True, exist_ok=True)
    quality_bars = QualityBars(min_accuracy=settings.min_accuracy,
                               min_macro_f1=settings.min_macro_f1,
                               min_precision=settings.min_precision,
                               min_coverage=settings.min_coverage,
                               max_count_error=settings.max_count_error)
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
        # Every table in and out as pandas frames (the tables computed as frames written by it).
        "io_manager": DuckDBTables(database=str(settings.duckdb_path)),
        # knn_classifier's value: in memory within its run, else the champion from the registry.
        "classifier_io_manager": ServingClassifierIOManager(
            tracking_uri=settings.mlflow_tracking_uri, quality_bars=quality_bars),
        "reviewer_labels": ReviewerLabels(folder=str(settings.labels_dir)),
        "quality_bars": quality_bars,
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
    # A stalled sensor or a failing API shows in the UI: gold not rebuilt for
    # CAREERPULSE_GOLD_MAX_AGE_HOURS fails its freshness policy (Dagster's freshness daemon,
    # under `dagster dev` / `make ui` / `make serve`, judges it; no sensor or check of ours).
    stale_after = FreshnessPolicy.time_window(fail_window=timedelta(hours=settings.gold_max_age_hours))
    return Definitions(
        assets=[
            bronze_postings,
            silver_postings,
            knn_classifier,
            imputed_silver,
            gold_daily_counts.map_asset_specs(
                lambda spec: spec.replace_attributes(freshness_policy=stale_after)
            ),
            gold_category_forecast,
            review_queue,
        ],
        asset_checks=[
            knn_holdout_accuracy,
            knn_holdout_macro_f1,
            silver_posting_id_unique,
            build_newest_posting_age_check(settings.max_posting_age_days),
            category_names_known,
            category_drift,
            imputation_coverage,
            written_precision_on_labels,
            gold_full_grid_sums_to_silver,
            gold_count_error,
            forecast_beats_seasonal_naive,
        ],
        jobs=[careerpulse_all_job, ingestion_job, retraining_job],
        schedules=[daily_retraining_schedule],
        sensors=[build_new_pages_sensor(settings.sensor_interval_seconds, settings.duckdb_path)],
        resources=build_resources(settings),
        # One DuckDB file takes one writer and the graph is a chain: running the steps of a run
        # in one process avoids lock contention and re-importing scikit-learn and MLflow per step.
        executor=in_process_executor,
    )


def settings_for_code_server() -> Settings:
    """The settings from the environment and `.env`; SettingsError when `.env` now sets one the
    running servers of `make ui` / `make serve` keep from their start."""
    apply_env_file()
    settings = Settings.from_env()
    started_with = os.environ.get(SERVER_SETTINGS_VARIABLE)
    changed = restart_needed(json.loads(started_with), settings) if started_with else []
    if changed:
        raise SettingsError(
            f"changed since the servers started: {'; '.join(changed)}. The servers keep the "
            "settings they started with: stop `make ui` / `make serve` and start it again for "
            "these to take effect (or undo the change and reload)")
    return settings


defs = build_definitions(settings_for_code_server())
