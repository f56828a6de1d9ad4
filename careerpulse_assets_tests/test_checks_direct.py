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
    build_newest_posting_age_check,
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


def backtest_table(database, rows):
    columns = ["category", "posted_day_share", "chosen_mase", "baseline_mase", "chosen_rmsse",
               "baseline_rmsse", "interval_coverage", "pit_coverage"]
    with database.get_connection() as connection:
        connection.register("backtest", pd.DataFrame(rows, columns=columns))
        connection.execute("CREATE OR REPLACE TABLE gold.gold_forecast_backtest AS "
                           "SELECT * FROM backtest")


def test_the_forecast_check_judges_busy_categories_by_mase_and_reports_intermittent_ones(database):
    backtest_table(database, [
        ("Sales", 0.9, 0.8, 1.0, 0.7, 0.9, 0.82, 0.79),
        ("Healthcare", 1.0, 1.1, 1.0, 1.0, 1.0, 0.78, 0.80),
        ("Legal", 0.1, 0.3, 0.2, 0.5, 0.6, 0.95, 0.81),
        ("Retail", 0.0, None, None, None, None, 1.0, 0.80),
    ])
    result = forecast_beats_seasonal_naive(duckdb=database)
    assert result.passed and result.severity.value == "WARN"
    assert result.description == (
        "mean MASE 0.950 (models chosen on earlier windows) vs 1.000 (SeasonalNaive) on the later "
        "windows over the 2 categories posted on most days, 80 % intervals cover 80% of their "
        "days; intermittent: 1 of 1 scored categories beat SeasonalNaive (RMSSE 0.500 vs 0.600)")
    # Seasonal naive chosen everywhere: equal is not better.
    backtest_table(database, [("Sales", 0.9, 1.0, 1.0, 0.9, 0.9, 0.8, 0.8)])
    equal = forecast_beats_seasonal_naive(duckdb=database)
    assert not equal.passed and "nothing beat last week's count" in equal.description


def test_the_forecast_check_with_no_busy_category_says_not_evaluated(database):
    backtest_table(database, [("Legal", 0.1, 0.3, 0.2, 0.5, 0.6, 0.95, 0.81)])
    result = forecast_beats_seasonal_naive(duckdb=database)
    assert not result.passed and result.metadata["evaluated"].value is False
    assert result.description.startswith("not evaluated: no category posted on most days")


def test_newest_posting_age_fails_with_the_age_of_stale_postings(database):
    check = build_newest_posting_age_check(max_age_days=3)
    sql(database, "CREATE OR REPLACE TABLE silver.silver_postings AS SELECT * FROM (VALUES "
                  "(1, now() - INTERVAL 147 DAY), (2, now() - INTERVAL 200 DAY)) "
                  "AS t(posting_id, publication_date)")
    stale = check(duckdb=database)
    assert not stale.passed and stale.severity.value == "WARN"
    assert stale.metadata["age_days"].value == 147.0
    assert "147.0 days ago (more than 3): no new postings are coming in, and the forecast runs " \
           "147 days past its data" in stale.description
    sql(database, "INSERT INTO silver.silver_postings VALUES (3, now() - INTERVAL 2 HOUR)")
    fresh = check(duckdb=database)
    assert fresh.passed and fresh.metadata["age_days"].value == 0.1
