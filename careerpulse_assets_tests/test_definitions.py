"""What the UI shows: every definition explains itself."""

from careerpulse_assets.definitions import build_definitions
from careerpulse_assets.settings import Settings

ASSETS = {"bronze_postings", "silver_postings", "knn_classifier", "imputed_silver",
          "gold_daily_counts", "gold_category_forecast"}


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
        "forecast_beats_seasonal_naive",
    }
    assert all(spec.description for spec in checks.values())
    for name in ("careerpulse_all", "careerpulse_ingestion", "careerpulse_retrain"):
        assert defs.resolve_job_def(name).description
    assert defs.resolve_schedule_def("daily_retraining").description
    assert defs.resolve_sensor_def("muse_new_pages_sensor").description
