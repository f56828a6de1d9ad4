"""Checks and logic-light assets called directly with plain inputs (no graph, no run): a small
DuckDB file made with SQL, a classifier described by its figures."""

import duckdb
import pandas as pd
import pytest
from dagster import Output, build_asset_context
from dagster_duckdb import DuckDBResource

from careerpulse_assets.assets.gold import gold_daily_counts
from careerpulse_assets.checks import (
    CategoryDriftConfig,
    build_newest_posting_age_check,
    MaxCountErrorConfig,
    MinAccuracyConfig,
    MinCoverageConfig,
    MinMacroF1Config,
    category_drift,
    category_names_known,
    forecast_beats_seasonal_naive,
    gold_count_error,
    gold_full_grid_sums_to_silver,
    imputation_coverage,
    knn_holdout_accuracy,
    knn_holdout_macro_f1,
    silver_posting_id_unique,
    written_precision_on_labels,
)
from careerpulse_assets.classification.serving import (
    DriftReference,
    Evaluation,
    ModelCalibration,
    Outcome,
    ServingClassifier,
)
from careerpulse_assets.classification.decisions import GateBars, gate_verdict
from careerpulse_assets.classification.per_posting_policy import ImputationPolicy
from careerpulse_assets.resources import QualityBars

BARS = QualityBars()  # the settings' defaults: 0.75, 0.70, precision 0.90, coverage 0.80


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
            SELECT posting_id, category, category_source, is_imputed, publication_day,
                   TIMESTAMPTZ '2026-03-01 12:00:00+00' + (posting_id * INTERVAL 1 HOUR) AS publication_date,
                   CAST(probabilities AS MAP(VARCHAR, DOUBLE)) AS category_probabilities
            FROM (VALUES (1, 'Sales', 'api', false, DATE '2026-03-01', NULL),
                         (2, 'Software Engineering', 'api', false, DATE '2026-03-01', NULL),
                         (3, 'Healthcare', 'imputed', true, DATE '2026-03-03',
                          MAP {'Healthcare': 0.8, 'Sales': 0.2}))
                AS t(posting_id, category, category_source, is_imputed, publication_day,
                     probabilities)""")
    return DuckDBResource(database=str(path))


def sql(resource: DuckDBResource, statement: str):
    with resource.get_connection() as connection:
        connection.execute(statement)


def with_intervals(**figures) -> dict:
    out = {}
    for name, value in figures.items():
        out |= {name: value, f"{name}_ci_low": value - 0.02, f"{name}_ci_high": value + 0.02}
    return out


def serving(accuracy=0.88, macro_f1=0.72, coverage=0.9, threshold=0.6, counts=None,
            model=object(), bars=GateBars(0.75, 0.7)) -> ServingClassifier:
    """A classifier in service as knn_classifier hands it on: its gate judged against `bars`."""
    estimate = with_intervals(accuracy=accuracy, macro_f1=macro_f1)
    written = with_intervals(precision=0.91, coverage=coverage)
    policy = ImputationPolicy(0.9, threshold, {"Sales": 0.61}, written, 1200,
                              f"writes the most probable category where its probability is ≥ "
                              f"{threshold}" if threshold is not None else
                              "no confidence threshold writes out-of-fold predictions right ≥ "
                              "0.90 of the time")
    evaluation = Evaluation("k=5", estimate, 1200, "out-of-fold over 1,200 labelled postings",
                            judged=("Healthcare", "Sales"))
    return ServingClassifier(
        model=model, version="models:/careerpulse-knn-category/3", run_id="r",
        evaluation=evaluation,
        reference=DriftReference(counts or {"Sales": 500, "Healthcare": 500}, 0.1),
        outcome=Outcome(False, "labels unchanged"),
        calibration=ModelCalibration(counting=None, policy=policy, report=None),
        gate=gate_verdict(estimate, bars),
    )


def test_the_gate_checks_report_the_gate_at_full_coverage_and_say_what_it_rests_on():
    passed = knn_holdout_accuracy(MinAccuracyConfig(), serving())
    assert passed.passed and passed.severity.value == "ERROR"
    assert passed.description.startswith(
        "accuracy 0.880 (95 % interval 0.860–0.900) at full coverage (every posting its most "
        "probable category), nested out-of-fold over 1,200 labelled postings, >= 0.75")
    assert passed.metadata["estimated_on_postings"].value == 1200
    assert passed.metadata["threshold"].value == 0.75  # the setting, as the config left it unset
    macro = knn_holdout_macro_f1(MinMacroF1Config(), serving())
    assert macro.passed and "over the 2 categories with 20+ labelled postings" in macro.description
    # A bar above the model (the run config's, as QualityBars.for_run reads it for
    # knn_classifier's verdict): it fails, and says what that changes.
    bars = BARS.for_run({"ops": {"knn_classifier_knn_holdout_macro_f1": {
        "config": {"min_macro_f1": 0.85}}}})
    failed = knn_holdout_macro_f1(MinMacroF1Config(min_macro_f1=0.85), serving(bars=bars))
    assert not failed.passed
    assert "< 0.85" in failed.description and "best available" in failed.description
    assert failed.metadata["model_version"].value == "models:/careerpulse-knn-category/3"
    # The setting is the bar when the run config leaves it unset.
    strict = QualityBars(min_accuracy=0.95).for_run({})
    assert not knn_holdout_accuracy(MinAccuracyConfig(), serving(bars=strict)).passed


def test_with_no_model_or_no_judged_category_the_gate_fails_saying_why():
    for check, config in ((knn_holdout_accuracy, MinAccuracyConfig()),
                          (knn_holdout_macro_f1, MinMacroF1Config())):
        result = check(config, serving(model=None))
        assert not result.passed and result.metadata["evaluated"].value is False
        assert result.description.startswith("no model to judge")
    unjudged = knn_holdout_macro_f1(MinMacroF1Config(), serving(macro_f1=float("nan")))
    assert not unjudged.passed and unjudged.metadata["evaluated"].value is False
    assert unjudged.description.startswith("macro-F1 not estimated")


def test_the_coverage_check_warns_below_the_setting(database):
    result = imputation_coverage(MinCoverageConfig(), serving(), duckdb=database, quality_bars=BARS)
    assert result.passed and result.severity.value == "WARN"
    assert result.description.startswith("coverage 100.0% (1 of 1 postings without a category written")
    sql(database, "INSERT INTO silver.imputed_silver VALUES (4, 'Unclassified', 'unclassified', "
                  "false, DATE '2026-03-03', TIMESTAMPTZ '2026-03-03 12:00:00+00', "
                  "MAP {'Sales': 1.0})")
    low = imputation_coverage(MinCoverageConfig(), serving(threshold=None), duckdb=database,
                              quality_bars=BARS)
    assert not low.passed and low.severity.value == "WARN"
    assert low.description.startswith("coverage 50.0% (1 of 2 postings without a category "
                                      "written, 1 Unclassified) < 80%: no confidence threshold")
    assert low.metadata["unclassified"].value == 1
    assert imputation_coverage(MinCoverageConfig(min_coverage=0.5), serving(), duckdb=database,
                               quality_bars=BARS).passed


def write_gold(database) -> Output:
    """gold_daily_counts called directly, its table written as the io_manager writes it."""
    output = gold_daily_counts(build_asset_context(), duckdb=database)
    with database.get_connection() as connection:
        connection.register("gold_rows", output.value)
        connection.execute("CREATE OR REPLACE TABLE gold.gold_daily_counts AS SELECT * FROM gold_rows")
    return output


def test_the_grid_check_passes_a_full_grid_and_names_what_is_missing(database):
    write_gold(database)
    result = gold_full_grid_sums_to_silver(duckdb=database)
    assert result.passed and result.metadata["rows"].value == 3 * 3
    sql(database, "DELETE FROM gold.gold_daily_counts WHERE day = DATE '2026-03-02'")
    broken = gold_full_grid_sums_to_silver(duckdb=database)
    assert not broken.passed and "1 days missing from the range" in broken.description


def test_gold_daily_counts_called_directly_returns_the_grid_and_describes_it(database):
    result = write_gold(database)
    assert result.value.num_rows == 9
    assert (result.metadata["first_day"].value, result.metadata["last_day"].value) == (
        "2026-03-01", "2026-03-03")
    assert result.value.column_names == [
        "day", "category", "postings", "imputed_postings", "observed", "complete",
        "estimated_postings", "estimated_low", "estimated_high"]
    with database.get_connection() as connection:
        rows = connection.execute(
            "SELECT day, category, postings, estimated_postings, estimated_low, estimated_high "
            "FROM gold.gold_daily_counts WHERE day = DATE '2026-03-03' ORDER BY category"
        ).fetchall()
    # The imputed posting counts 0.8 in Healthcare and 0.2 in Sales; its interval holds 0 to 1.
    assert [(r[1], r[2], round(r[3], 3)) for r in rows] == [
        ("Healthcare", 1, 0.8), ("Sales", 0, 0.2), ("Software Engineering", 0, 0.0)]
    assert all(0 <= r[4] <= r[3] <= r[5] <= 1 for r in rows)


def test_the_grid_check_fails_when_the_estimates_do_not_add_up_to_the_day(database):
    write_gold(database)
    sql(database, "UPDATE gold.gold_daily_counts SET estimated_postings = 0.5, "
                  "estimated_high = 1 WHERE day = DATE '2026-03-03' AND category = 'Healthcare'")
    broken = gold_full_grid_sums_to_silver(duckdb=database)
    assert not broken.passed
    assert "on 1 days the estimated postings do not add up" in broken.description


def test_the_count_error_check_judges_the_expected_error_against_the_setting(database):
    missing = gold_count_error(MaxCountErrorConfig(), serving(), duckdb=database,
                               quality_bars=BARS)
    assert not missing.passed and missing.metadata["evaluated"].value is False
    sql(database, "CREATE TABLE silver.unlabelled_mix AS SELECT * FROM (VALUES "
                  "('Healthcare', 0.8, 0.1, 1.0, 0.2, 'PCC', 0.12, 'models:/m/1'), "
                  "('Sales', 0.2, 0.0, 0.9, 0.2, 'PCC', 0.12, 'models:/m/1')) AS t(category, "
                  "estimated_postings, estimated_low, estimated_high, share_error, method, "
                  "expected_share_error, model_version)")
    result = gold_count_error(MaxCountErrorConfig(), serving(), duckdb=database,
                              quality_bars=BARS)
    assert result.passed and result.severity.value == "WARN"
    assert result.description.startswith("PCC counts the 1 postings without a category with an "
                                          "expected L1 error of the category shares of 0.120")
    assert not gold_count_error(MaxCountErrorConfig(max_count_error=0.1), serving(),
                                duckdb=database, quality_bars=BARS).passed
    # A model that fails the gate: the error estimate means nothing (shuffled labels count the
    # labelled mix back with a small error).
    failing = gold_count_error(MaxCountErrorConfig(), serving(macro_f1=0.3), duckdb=database,
                               quality_bars=BARS)
    assert not failing.passed and failing.metadata["evaluated"].value is False
    assert "fails the quality gate" in failing.description


def test_duplicate_ids_and_unknown_names_fail_their_checks(database):
    assert silver_posting_id_unique(duckdb=database).passed
    sql(database, "INSERT INTO silver.silver_postings VALUES (1, ['Sales']), "
                  f"(4, ['{'Q' * 10_000}'])")
    duplicated = silver_posting_id_unique(duckdb=database)
    assert not duplicated.passed and duplicated.metadata["duplicated_posting_ids"].value == 1
    unknown = category_names_known(duckdb=database)
    assert not unknown.passed
    assert unknown.description.startswith(
        f"1 category names neither current nor mapped: {'Q' * 60}… (10,000 characters); map each "
        "to a current name (old_to_current) or add it to current in "
        "careerpulse_assets/review/muse_categories.yaml")
    # Spelling variants of a known name are that name.
    sql(database, "DELETE FROM silver.silver_postings WHERE posting_id = 4")
    sql(database, "INSERT INTO silver.silver_postings VALUES (5, ['data & analytics']), "
                  "(6, ['Data\u00a0 and  Analytics'])")
    assert category_names_known(duckdb=database).passed


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


def test_newest_posting_age_does_not_take_a_posting_dated_after_now_for_a_fresh_one(database):
    # Dated 2 days ahead (by its employer, or read by a clock that is behind): it passed the
    # check at "-2.0 days" although nothing came in for 5 days.
    check = build_newest_posting_age_check(max_age_days=3)
    sql(database, "CREATE OR REPLACE TABLE silver.silver_postings AS SELECT * FROM (VALUES "
                  "(1, now() - INTERVAL 5 DAY), (2, now() + INTERVAL 2 DAY)) "
                  "AS t(posting_id, publication_date)")
    stale = check(duckdb=database)
    assert not stale.passed and stale.metadata["age_days"].value == 5.0
    assert stale.metadata["postings_dated_after_now"].value == 1
    assert "1 postings are dated after now" in stale.description
    assert "dated ahead by their employers, or this machine's clock is behind" in stale.description


def test_written_precision_on_labels_compares_what_was_written_with_reviewers_labels(database):
    sql(database, "CREATE OR REPLACE TABLE silver.silver_postings AS SELECT posting_id, "
                  "CASE WHEN posting_id <= 16 THEN 'Sales' ELSE 'Healthcare' END AS category, "
                  "'label' AS category_source FROM range(1, 31) AS t(posting_id)")
    missing = written_precision_on_labels(duckdb=database, quality_bars=BARS)
    assert not missing.passed and missing.metadata["evaluated"].value is False
    # 30 postings written as Sales, then labelled: 16 Sales, 14 Healthcare.
    sql(database, "CREATE TABLE silver.written_categories AS SELECT posting_id, 'models:/m/1' AS "
                  "model_version, 'Sales' AS category, 0.9 AS confidence, now() AS written_at "
                  "FROM range(1, 31) AS t(posting_id)")
    bad = written_precision_on_labels(duckdb=database, quality_bars=BARS)
    assert not bad.passed and bad.metadata["evaluated"].value is True
    assert bad.description.startswith("reviewers' labels agreed with 16 of the 30 categories")
    # A later version wrote Healthcare on 14 of them before the labels: the latest one counts.
    sql(database, "INSERT INTO silver.written_categories SELECT posting_id, 'models:/m/2', "
                  "'Healthcare', 0.9, now() + INTERVAL 1 HOUR FROM range(17, 31) AS t(posting_id)")
    good = written_precision_on_labels(duckdb=database, quality_bars=BARS)
    assert good.passed and good.metadata["right"].value == 30
