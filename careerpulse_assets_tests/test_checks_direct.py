"""Checks and logic-light assets called directly with plain inputs (no graph, no run): a small
DuckDB file made with SQL, a classifier described by its figures."""

import duckdb
import pandas as pd
import pytest
from dagster import build_asset_context
from dagster_duckdb import DuckDBResource

from careerpulse_assets.assets.gold import gold_daily_counts
from careerpulse_assets.checks import (
    CategoryDriftConfig,
    MinAccuracyConfig,
    MinMacroF1Config,
    category_drift,
    category_names_known,
    forecast_beats_seasonal_naive,
    gold_full_grid_sums_to_silver,
    knn_holdout_accuracy,
    knn_holdout_macro_f1,
    silver_posting_id_unique,
)
from careerpulse_assets.core.classifier import (
    DriftReference,
    Evaluation,
    Outcome,
    ServingClassifier,
)


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "careerpulse.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE SCHEMA silver; CREATE SCHEMA gold")
        connection.execute("""
            CREATE TABLE silver.silver_postings AS
            SELECT * FROM (VALUES (1, ['Sales']), (2, ['Engineering']), (3, ['Healthcare']))
                AS t(posting_id, categories)""")
        connection.execute("""
            CREATE TABLE silver.imputed_silver AS
            SELECT posting_id, category, is_imputed, publication_day,
                   TIMESTAMPTZ '2026-03-01 12:00:00+00' + (posting_id * INTERVAL 1 HOUR) AS publication_date
            FROM (VALUES (1, 'Sales', false, DATE '2026-03-01'),
                         (2, 'Software Engineering', false, DATE '2026-03-01'),
                         (3, 'Healthcare', true, DATE '2026-03-03'))
                AS t(posting_id, category, is_imputed, publication_day)""")
    return DuckDBResource(database=str(path))


def sql(resource: DuckDBResource, statement: str):
    with resource.get_connection() as connection:
        connection.execute(statement)


def serving(accuracy=0.9, macro_f1=0.8, counts=None) -> ServingClassifier:
    estimate = {"accuracy": accuracy, "accuracy_ci_low": accuracy - 0.02,
                "accuracy_ci_high": accuracy + 0.02, "macro_f1": macro_f1,
                "macro_f1_ci_low": macro_f1 - 0.05, "macro_f1_ci_high": macro_f1 + 0.05,
                "weighted_f1": accuracy}
    return ServingClassifier(
        model=None, version="models:/careerpulse-knn-category/3", run_id="r",
        evaluation=Evaluation("k=5", estimate, 1200, "out-of-fold over 1,200 labelled postings"),
        reference=DriftReference(counts or {"Sales": 500, "Healthcare": 500}, 0.1),
        outcome=Outcome(False, "labels unchanged"),
    )


def test_the_gate_checks_judge_the_estimate_and_say_what_it_rests_on():
    passed = knn_holdout_accuracy(MinAccuracyConfig(min_accuracy=0.75), serving(accuracy=0.9))
    assert passed.passed and passed.severity.value == "ERROR"
    assert passed.description.startswith("accuracy 0.900 (95 % interval 0.880–0.920) >= threshold "
                                         "0.75, out-of-fold over 1,200 labelled postings")
    assert passed.metadata["estimated_on_postings"].value == 1200
    blocked = knn_holdout_macro_f1(MinMacroF1Config(min_macro_f1=0.7), serving(macro_f1=0.62))
    assert not blocked.passed
    assert blocked.description.endswith("imputations are not written with this model")
    assert blocked.metadata["model_version"].value == "models:/careerpulse-knn-category/3"


def test_the_grid_check_passes_a_full_grid_and_names_what_is_missing(database):
    gold_daily_counts(build_asset_context(), duckdb=database)
    result = gold_full_grid_sums_to_silver(duckdb=database)
    assert result.passed and result.metadata["rows"].value == 3 * 3
    sql(database, "DELETE FROM gold.gold_daily_counts WHERE day = DATE '2026-03-02'")
    broken = gold_full_grid_sums_to_silver(duckdb=database)
    assert not broken.passed and "1 days missing from the range" in broken.description


def test_gold_daily_counts_called_directly_writes_the_grid_and_describes_it(database):
    result = gold_daily_counts(build_asset_context(), duckdb=database)
    assert result.metadata["dagster/row_count"] == 9
    assert (result.metadata["first_day"], result.metadata["last_day"]) == ("2026-03-01", "2026-03-03")
    assert [c.name for c in result.metadata["dagster/column_schema"].columns] == [
        "day", "category", "postings", "imputed_postings", "observed", "complete"]


def test_duplicate_ids_and_unknown_names_fail_their_checks(database):
    assert silver_posting_id_unique(duckdb=database).passed
    sql(database, "INSERT INTO silver.silver_postings VALUES (1, ['Sales']), "
                  f"(4, ['{'Q' * 10_000}'])")
    duplicated = silver_posting_id_unique(duckdb=database)
    assert not duplicated.passed and duplicated.metadata["duplicated_posting_ids"].value == 1
    unknown = category_names_known(duckdb=database)
    assert not unknown.passed
    assert unknown.description == f"1 category names neither current nor mapped: {'Q' * 60}… (10,000 characters)"


def test_drift_too_few_postings_is_not_evaluated_and_does_not_read_as_a_pass(database):
    result = category_drift(CategoryDriftConfig(), serving(), duckdb=database)
    assert not result.passed and result.severity.value == "WARN"
    assert result.metadata["evaluated"].value is False
    assert result.description == "not evaluated: 3 postings, the check needs 500"
    small = category_drift(CategoryDriftConfig(min_postings=3), serving(), duckdb=database)
    assert small.metadata["evaluated"].value is True and small.metadata["window_postings"].value == 3


def test_the_forecast_check_reads_the_backtest_table(database):
    sql(database, """CREATE TABLE gold.gold_daily_counts AS
        SELECT CAST(d AS DATE) AS day, 'Sales' AS category, 1 AS postings, 0 AS imputed_postings
        FROM range(TIMESTAMP '2026-01-01', TIMESTAMP '2026-04-01', INTERVAL 1 DAY) AS t(d)""")
    backtest = pd.DataFrame({
        "category": ["Sales", "Healthcare", "Legal"], "candidate": ["AutoETS"] * 3,
        "chosen_on_earlier": ["AutoETS"] * 3, "scored_windows": [4, 4, 0],
        "chosen_mase": [0.8, 1.1, None], "baseline_mase": [1.0, 1.0, None],
        "note": ["", "", "not scored"],
    })
    with database.get_connection() as connection:
        connection.register("backtest", backtest)
        connection.execute("CREATE TABLE gold.gold_forecast_backtest AS SELECT * FROM backtest")
    result = forecast_beats_seasonal_naive(duckdb=database)
    assert result.passed and result.severity.value == "WARN"
    assert result.description == ("mean MASE 0.950 (models chosen on earlier windows) vs 1.000 "
                                  "(SeasonalNaive) on the later windows, over 2 of 3 categories "
                                  "(1 have no week-to-week change to scale by)")
