"""What the UI shows: every definition explains itself."""

from careerpulse_assets.definitions import build_definitions
from careerpulse_assets.ops.settings import Settings

ASSETS = {"bronze_postings", "silver_postings", "knn_classifier", "imputed_silver",
          "gold_daily_counts", "gold_category_forecast", "review_queue"}


def test_every_asset_has_a_description_group_owner_and_kinds(tmp_path):
    defs = build_definitions(Settings(home=tmp_path))
    graph = defs.resolve_asset_graph()
    seen = set()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        seen.add(key.to_user_string())
        assert node.description, key
        assert node.group_name in {"ingestion", "ml", "reporting"}, key
        assert node.owners == ["team:careerpulse"], key
        assert node.kinds, key
    assert seen == ASSETS


def test_every_check_job_schedule_and_sensor_has_a_description(tmp_path):
    defs = build_definitions(Settings(home=tmp_path))
    graph = defs.resolve_asset_graph()
    checks = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    assert set(checks) == {
        "silver_posting_id_unique", "category_names_known", "knn_holdout_accuracy",
        "knn_holdout_macro_f1", "category_drift", "gold_full_grid_sums_to_silver",
        "forecast_beats_seasonal_naive", "newest_posting_age",
        "imputation_coverage", "gold_count_error", "written_precision_on_labels",
    }
    assert all(spec.description for spec in checks.values())
    for name in ("careerpulse_all", "careerpulse_ingestion", "careerpulse_retrain"):
        assert defs.resolve_job_def(name).description
    assert defs.resolve_schedule_def("daily_retraining").description
    assert defs.resolve_sensor_def("muse_new_pages_sensor").description


def test_gold_carries_a_freshness_policy_of_the_configured_age_and_no_superseded_api(tmp_path):
    """Dagster 1.13's FreshnessPolicy on the asset (its daemon judges it), no freshness check
    or sensor of ours: the superseded builders warned in every command."""
    import warnings
    from datetime import timedelta

    settings = Settings.from_env({"CAREERPULSE_HOME": str(tmp_path),
                                  "CAREERPULSE_GOLD_MAX_AGE_HOURS": "36"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        defs = build_definitions(settings)
        graph = defs.resolve_asset_graph()
    policies = {key.to_user_string(): graph.get(key).freshness_policy
                for key in graph.get_all_asset_keys() if graph.get(key).freshness_policy}
    assert list(policies) == ["gold_daily_counts"]
    assert policies["gold_daily_counts"].fail_window.to_timedelta() == timedelta(hours=36)
    assert [sensor.name for sensor in defs.sensors] == ["muse_new_pages_sensor"]


def test_the_sensor_interval_is_a_setting_and_refused_below_a_minute(tmp_path):
    import pytest

    from careerpulse_assets.ops.settings import SettingsError

    settings = Settings.from_env({"CAREERPULSE_HOME": str(tmp_path),
                                  "CAREERPULSE_SENSOR_INTERVAL_SECONDS": "900"})
    sensor = build_definitions(settings).resolve_sensor_def("muse_new_pages_sensor")
    assert sensor.minimum_interval_seconds == 900
    with pytest.raises(SettingsError, match="at least 60, got 30: each tick is one request, and "
                                             "The Muse allows 500 requests an hour"):
        Settings.from_env({"CAREERPULSE_SENSOR_INTERVAL_SECONDS": "30"})


def test_the_postgres_instance_file_keeps_the_repositorys_settings():
    from pathlib import Path

    import yaml

    from careerpulse_assets.ops.instance import sqlite_instance_text

    repo = Path(__file__).resolve().parents[1]
    root = yaml.safe_load((repo / "dagster.yaml").read_text())
    postgres = yaml.safe_load((repo / "deploy" / "dagster.yaml").read_text())
    assert postgres.pop("storage") == {"postgres": {"postgres_url": {"env": "DAGSTER_POSTGRES_URL"}}}
    # The repository's file adds only where a root instance keeps its storage (.careerpulse).
    for section in ("storage", "local_artifact_storage", "compute_logs"):
        assert ".careerpulse/dagster" in str(root.pop(section))
    assert postgres == root == yaml.safe_load(sqlite_instance_text())


def test_the_instance_file_follows_dagster_postgres_url_but_leaves_ones_own_alone(tmp_path):
    from careerpulse_assets.ops.instance import POSTGRES_TEMPLATE, ensure_instance_file, sqlite_instance_text

    target = tmp_path / "dagster.yaml"
    assert ensure_instance_file(tmp_path, postgres=False).endswith("written (SQLite)")
    assert target.read_text() == sqlite_instance_text()
    assert ensure_instance_file(tmp_path, postgres=False).endswith("up to date")
    assert ensure_instance_file(tmp_path, postgres=True).endswith("written (PostgreSQL)")
    assert target.read_text() == POSTGRES_TEMPLATE.read_text()
    target.write_text("telemetry:\n  enabled: true\n")
    assert "your own, left as it is" in ensure_instance_file(tmp_path, postgres=True)
    assert target.read_text() == "telemetry:\n  enabled: true\n"
