"""The forecast on synthetic gold-shaped streams (seasonal, sparse, stale, partly unobserved, too
short) and on the shared postings' gold."""

from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from careerpulse_assets.series.forecast import (
    BACKTEST_COLUMNS,
    BASELINE,
    FORECAST_COLUMNS,
    HORIZON,
    _better,
    aligned_days,
    backtest_row,
    count_interval,
    forecast_categories,
    learning_series,
    overdispersion,
    pit_coverage,
    weekly_forecast,
    window_scores,
)


def seen(frame: pd.DataFrame) -> pd.DataFrame:
    """Gold's flags for a stream every day of which was seen whole."""
    return frame.assign(observed=True, complete=True)


def gold(days: int, seed: int = 0) -> pd.DataFrame:
    """A busy category with a weekly rhythm (weekends quiet) and a sparse one."""
    rng = np.random.default_rng(seed)
    start = date(2026, 1, 1)
    rows = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        weekly = 40 if day.weekday() < 5 else 8
        rows.append({"day": day, "category": "Software Engineering", "postings": rng.poisson(weekly)})
        rows.append({"day": day, "category": "Legal Services", "postings": int(rng.random() < 0.15)})
    return seen(pd.DataFrame(rows))


def dense(days: int, seed: int = 1) -> pd.DataFrame:
    """Five categories posted every day with a weekly rhythm and a slow trend."""
    rng = np.random.default_rng(seed)
    start = date(2026, 2, 1)
    rows = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        for n, category in enumerate(["Software Engineering", "Healthcare", "Sales",
                                      "Data and Analytics", "Education"]):
            level = (30 - 5 * n) * (1 + offset / 400) * (1.0 if day.weekday() < 5 else 0.3)
            rows.append({"day": day, "category": category, "postings": rng.poisson(level)})
    return seen(pd.DataFrame(rows))


def day_after(frame: pd.DataFrame) -> date:
    return max(frame["day"]) + timedelta(days=1)


@pytest.fixture(scope="module")
def result():
    stream = gold(120)
    return forecast_categories(stream, day_after(stream))


def test_every_category_gets_the_28_days_after_the_run_in_counts(result):
    assert result.skipped is None
    forecast = result.forecast
    assert list(forecast.columns) == FORECAST_COLUMNS
    assert forecast.groupby("category").size().to_dict() == {
        "Legal Services": HORIZON, "Software Engineering": HORIZON}
    run_day = date(2026, 1, 1) + timedelta(days=120)
    assert sorted(forecast["day"].unique()) == [run_day + timedelta(days=d) for d in range(1, HORIZON + 1)]
    assert (forecast["data_until"] == run_day - timedelta(days=1)).all()
    assert (forecast["data_age_days"] == 1).all()
    assert (forecast["lower"] <= forecast["upper"]).all()
    # A skewed count's 80 % interval need not hold its mean; a busy category's does.
    busy = forecast[forecast["category"] == "Software Engineering"]
    assert busy["forecast"].between(busy["lower"], busy["upper"]).all()
    assert (forecast[["forecast", "lower", "upper"]] >= 0).all().all()
    bounds = forecast[["lower", "upper"]].to_numpy()
    assert (bounds == np.round(bounds)).all()  # postings are counted, not measured


def test_a_stale_stream_is_forecast_from_the_day_after_the_run_and_says_how_old_it_is():
    stream = gold(120)  # up to 2026-04-30
    run_day = date(2026, 6, 15)
    stale = forecast_categories(stream, run_day)
    assert stale.forecast["day"].min() == date(2026, 6, 16)
    assert stale.forecast["day"].max() == date(2026, 6, 16) + timedelta(days=HORIZON - 1)
    assert set(stale.forecast["data_age_days"]) == {46}
    assert set(stale.backtest["data_until"]) == {date(2026, 4, 30)}


def test_the_run_day_is_not_learnt_it_is_not_over():
    stream = gold(120)
    last = max(stream["day"])
    series, about = learning_series(stream, last)  # run on the stream's last day
    assert pd.Timestamp(series["ds"].max()).date() == last - timedelta(days=1)
    assert set(about["data_until"]) == {last - timedelta(days=1)}


def test_busy_categories_are_offered_ets_and_a_window_average_sparse_ones_intermittent_models(result):
    backtest = result.backtest.set_index("category")
    assert list(result.backtest.columns) == BACKTEST_COLUMNS
    assert backtest.loc["Software Engineering", "candidates"] == "AutoETS, SeasonalWindowAverage"
    assert backtest.loc["Legal Services", "candidates"] == "ADIDA, IMAPA, TSB, CrostonSBA"
    assert backtest["chosen_by"].to_dict() == {"Legal Services": "RMSSE",
                                               "Software Engineering": "MASE"}


def test_a_model_beats_the_weekly_naive_on_a_noisy_weekly_series(result):
    busy = result.backtest.set_index("category").loc["Software Engineering"]
    assert busy["chosen_on_earlier"] in ("AutoETS", "SeasonalWindowAverage")
    assert busy["chosen_mase"] < busy["baseline_mase"]
    assert busy["scored_windows"] == 4


def test_days_nobody_saw_are_cut_out_in_whole_weeks():
    # Usable days with a 10-day hole: 4 more days go, so that 2 whole weeks are cut.
    usable = np.array([True] * 30 + [False] * 10 + [True] * 20)
    keep = aligned_days(usable)
    assert keep[40:].all() and not keep[26:40].any() and keep[:26].all()
    offsets = 60 - 1 - np.flatnonzero(keep)
    assert ((offsets - (keep.sum() - 1 - np.arange(keep.sum()))) % 7 == 0).all()
    # Two holes close together: each kept day is still on its own weekday.
    usable = np.array([True] * 20 + [False] * 2 + [True] + [False] * 3 + [True] * 30)
    keep = aligned_days(usable)
    offsets = len(usable) - 1 - np.flatnonzero(keep)
    assert ((offsets - (keep.sum() - 1 - np.arange(keep.sum()))) % 7 == 0).all()


def test_the_forecast_learns_from_complete_days_else_observed_and_never_from_unseen_ones():
    stream = gold(200)
    day = pd.to_datetime(stream["day"])
    hole = (day >= "2026-03-01") & (day < "2026-04-10")
    # Nobody looked for 40 days: gold has zeros there, which are not demand.
    stream.loc[hole, ["postings", "observed", "complete"]] = [0, False, False]
    series, about = learning_series(stream, day_after(stream))
    busy = about.set_index("category").loc["Software Engineering"]
    assert busy["learned_from"] == "complete"
    assert busy["learning_days"] == 200 - 42  # the 40 days and 2 to keep weekdays aligned
    assert "42 days of the last year cut out (not complete)" in busy["note"]
    learnt = series[series["unique_id"] == "Software Engineering"]
    assert (learnt["y"] > 0).mean() > 0.95  # the hole's zeros are gone
    # Only 50 complete days, the rest observed (backfilled): observed days are learnt from.
    backfilled = gold(200).assign(complete=lambda f: pd.to_datetime(f["day"]) >= "2026-06-01")
    _, about = learning_series(backfilled, day_after(backfilled))
    assert set(about["learned_from"]) == {"observed"}


def test_too_little_history_is_a_clear_skip():
    short = gold(30)
    skipped = forecast_categories(short, day_after(short))
    assert skipped.skipped == ("no category has 56 days to learn from: at most 30 observed days "
                               "in the last year")
    assert skipped.forecast.empty and skipped.mean_mase() is None
    # The asset writes these as its tables even when skipped: same columns as a forecast.
    assert list(skipped.forecast.columns) == FORECAST_COLUMNS
    assert list(skipped.backtest.columns) == BACKTEST_COLUMNS


def test_window_scores_equal_utilsforecast_on_each_window_by_hand():
    rng = np.random.default_rng(3)
    days = pd.date_range("2026-01-01", periods=60)
    history = pd.DataFrame({"unique_id": "a", "ds": days, "y": rng.poisson(5, 60).astype(float)})
    cutoff = days[39]
    window = history[(history["ds"] > cutoff) & (history["ds"] <= days[46])].assign(
        cutoff=cutoff, SeasonalNaive=4.0, AutoETS=5.0)
    scores = window_scores(window, history, [BASELINE, "AutoETS"])
    y = history.loc[history["ds"] <= cutoff, "y"].to_numpy()
    error = window["y"].to_numpy() - 5.0
    assert scores["MASE"]["AutoETS"].iloc[0] == pytest.approx(
        np.abs(error).mean() / np.abs(y[7:] - y[:-7]).mean())
    assert scores["RMSSE"]["AutoETS"].iloc[0] == pytest.approx(
        np.sqrt((error**2).mean() / ((y[7:] - y[:-7]) ** 2).mean()))


def test_a_window_whose_history_never_changes_is_left_out_with_the_reason():
    cutoffs = pd.date_range("2026-01-07", periods=8, freq="7D")
    models = [BASELINE, "ADIDA", "IMAPA", "TSB", "CrostonSBA"]
    scores = pd.DataFrame({"unique_id": "x", "cutoff": cutoffs, **{m: [np.inf] * 8 for m in models}})
    cv = pd.DataFrame({"unique_id": "x", "ds": cutoffs + pd.Timedelta(days=1), "cutoff": cutoffs,
                       "y": 0.0, **{m: 0.0 for m in models}})
    row, _ = backtest_row("Legal Services", "intermittent", {"MASE": scores, "RMSSE": scores}, cv)
    assert "chosen_mase" not in row
    assert row["note"].startswith("not scored: none of the 4 later windows")
    # Nothing to judge by: the intermittent default, not last week's lone posting again.
    assert row["chosen_on_earlier"] == "CrostonSBA"


def test_one_lucky_window_does_not_switch_a_category_off_the_baseline():
    cutoffs = pd.date_range("2026-01-07", periods=4, freq="7D")
    # Croston's mean is lower only thanks to the window where last week's spike did not return.
    scores = pd.DataFrame({"unique_id": "x", "cutoff": cutoffs,
                           "SeasonalNaive": [41.1, 0.0, 0.0, 0.0],
                           "CrostonSBA": [1.0, 0.5, 0.5, 0.5]})
    assert _better(scores, BASELINE, ["CrostonSBA"]) == BASELINE
    scores["IMAPA"] = [30.0, 0.0, 0.0, 0.0]  # lower in no window: not better either
    assert _better(scores, BASELINE, ["CrostonSBA", "IMAPA"]) == BASELINE
    # Lower in most windows and on average: the lowest mean of those wins.
    scores["ADIDA"] = [20.0, 0.0, 0.0, 0.0]
    scores["TSB"] = [1.0, 0.0, 0.0, 0.0]
    assert _better(scores, "CrostonSBA", [BASELINE, "ADIDA", "TSB"]) == "TSB"


def test_count_intervals_are_poisson_without_overdispersion_and_widen_with_it():
    lower, upper = count_interval(np.array([0.0, 0.1, 4.0]), alpha=0.0)
    # Poisson 10th and 90th percentiles; 0.1 (percentiles 0 and 0) widened to hold the mean.
    assert lower.tolist() == [0, 0, 2] and upper.tolist() == [0, 1, 7]
    wide_lower, wide_upper = count_interval(np.array([4.0]), alpha=0.5)
    size = 2.0
    assert wide_upper[0] == stats.nbinom.ppf(0.9, size, size / (size + 4.0)) > 7


def test_the_forecast_lies_inside_its_own_interval_however_sparse_the_category():
    """Issue 27: on the shared postings the point forecast (a mean) lay outside its interval
    (the 10th to 90th percentile, 0 to 0 for a mean under 0.1) in 420 of 700 rows."""
    rng = np.random.default_rng(5)
    stream = gold(120)
    rare = stream[stream["category"] == "Legal Services"].assign(
        category="Animal Care", postings=lambda f: (rng.random(len(f)) < 0.05).astype(int))
    stream = pd.concat([stream, rare], ignore_index=True)
    result = forecast_categories(stream, day_after(stream))
    forecast = result.forecast
    sparse = forecast[forecast["category"] == "Animal Care"]  # posted on 5 % of days
    assert (sparse["forecast"] > 0).all() and (sparse["forecast"] < 0.1).all()
    inside = forecast["forecast"].between(forecast["lower"], forecast["upper"])
    assert inside.all()
    assert (sparse["upper"] == 1).all() and (sparse["lower"] == 0).all()
    weeks = weekly_forecast(forecast, result.alphas)
    assert ((weeks["forecast"] >= weeks["lower"]) & (weeks["forecast"] <= weeks["upper"])).all()
    # Widening only adds: each bound is still a bound of the central 80 % or the mean's integer.
    lower, upper = count_interval(forecast["forecast"], 0.0)
    central = stats.poisson.ppf([[0.1], [0.9]], forecast["forecast"].to_numpy())
    assert (lower <= central[0]).all() and (upper >= central[1]).all()


def test_a_forecast_past_its_data_says_which_days_nobody_saw_and_that_today_is_not_over():
    """Issue 27: after the sensor stored postings published today, the forecast said only that
    it ran 154 days past its data (594 on the day the issue was filed)."""
    from careerpulse_assets.series.forecast import data_age

    stream = gold(120)  # observed and complete up to 2026-04-30
    today = date(2026, 6, 15)
    unseen = pd.DataFrame([{"day": date(2026, 5, 1) + timedelta(days=n), "category": c,
                            "postings": 0, "observed": False, "complete": False}
                           for n in range(45) for c in ("Software Engineering", "Legal Services")])
    fresh = pd.DataFrame([{"day": today, "category": "Software Engineering", "postings": 20,
                           "observed": True, "complete": False}])
    daily = pd.concat([stream, unseen, fresh], ignore_index=True)
    forecast = forecast_categories(daily, today).forecast
    assert set(forecast["data_until"]) == {date(2026, 4, 30)}
    assert data_age(daily, today, date(2026, 4, 30)) == (
        "the forecast runs 46 days past its data: the newest day it learnt from is 2026-04-30; "
        "the 45 days from 2026-05-01 to 2026-06-14 were not observed (no walk of a listing and "
        "no archive covered them); today's 20 postings are learnt once the day is over (UTC)")
    # Observed days it did not learn from are named as such; from yesterday on it says nothing.
    some_seen = daily.assign(observed=daily["observed"] | (daily["day"] >= date(2026, 6, 1)))
    assert "31 of the 45 days from 2026-05-01 to 2026-06-14 were not observed" in data_age(
        some_seen, today, date(2026, 4, 30))
    assert "14 days after it were observed but not learnt from" in data_age(
        some_seen, today, date(2026, 4, 30))
    assert data_age(daily, today, today - timedelta(days=1)) is None


def test_overdispersion_recovers_the_negative_binomials_alpha():
    rng = np.random.default_rng(0)
    mean = rng.uniform(1, 10, 20_000)
    size = 1 / 0.3
    actual = rng.negative_binomial(size, size / (size + mean))
    assert overdispersion(actual, mean) == pytest.approx(0.3, abs=0.02)
    assert overdispersion(rng.poisson(mean), mean) == pytest.approx(0.0, abs=0.01)
    assert overdispersion(np.array([0, 1]), np.zeros(2)) == 0.0  # nothing forecast


def test_on_sparse_counts_the_share_inside_cannot_be_80_percent_but_the_pit_coverage_is():
    rng = np.random.default_rng(1)
    mean = np.full(5_000, 0.1)  # a posting every ten days
    actual = rng.poisson(mean)
    lower, upper = count_interval(mean, 0.0)
    inside = ((actual >= lower) & (actual <= upper)).mean()
    assert inside == pytest.approx(stats.poisson.cdf(1, 0.1), abs=0.01)  # [0, 1]: 99.5 %
    assert pit_coverage(actual, mean, 0.0) == pytest.approx(0.80, abs=0.01)
    # A forecast far too low is not calibrated, and the PIT coverage shows it.
    daily = rng.poisson(np.ones(5_000))
    assert pit_coverage(daily, np.ones(5_000), 0.0) == pytest.approx(0.80, abs=0.02)
    assert pit_coverage(daily, np.full(5_000, 0.1), 0.0) < 0.4


def test_weekly_totals_of_a_flat_forecast_are_the_negative_binomial_of_the_sum():
    days = [date(2026, 12, 1) + timedelta(days=n) for n in range(14)]
    forecast = pd.DataFrame({"category": "Legal Services", "day": days, "forecast": 0.2})
    weeks = weekly_forecast(forecast, {"Legal Services": 0.8})
    assert weeks["week"].tolist() == [pd.Timestamp("2026-12-01"), pd.Timestamp("2026-12-08")]
    assert weeks["forecast"].tolist() == pytest.approx([1.4, 1.4])
    size = 7 / 0.8  # the sum of 7 such days: size 7 r, the same p
    probability = (1 / 0.8) / (1 / 0.8 + 0.2)
    assert weeks["upper"].iloc[0] == stats.nbinom.ppf(0.9, size, probability)


def test_a_dense_120_day_stream_beats_naive_with_intervals_that_cover_about_80_percent():
    stream = dense(120)
    dense_result = forecast_categories(stream, day_after(stream))
    assert dense_result.backtest["scored_windows"].eq(4).all()
    assert dense_result.backtest["note"].fillna("").eq("").all()
    chosen, baseline = dense_result.mean_mase(busy_only=True)
    assert chosen < baseline
    assert 0.7 <= dense_result.coverage() <= 0.9


def test_on_the_shared_postings_the_forecast_is_dated_from_the_run_and_learns_observed_days(
        shared_gold):
    run_day = date(2026, 11, 30)
    shared = forecast_categories(shared_gold, run_day)
    forecast, backtest = shared.forecast, shared.backtest
    assert forecast["day"].min() == date(2026, 12, 1)
    assert set(forecast["data_until"]) == {date(2026, 7, 6)}  # the newest posting's day
    assert set(forecast["data_age_days"]) == {147}
    assert set(backtest["learned_from"]) == {"observed"}  # archives are never complete
    # Four silent weeks in 2026 (March 17 to May 26) are not learnt as days without demand.
    assert "cut out (not observed)" in backtest["note"].iloc[0]
    unexplained = backtest[(backtest["chosen_mase"].isna() | (backtest["baseline_mase"] == 0))
                           & (backtest["note"].fillna("") == "")]
    assert unexplained.empty
    # Intermittent categories keep Croston SBA unless a backtest showed better: never last
    # week's lone posting repeated for want of a judgement.
    unjudged = backtest[backtest["scored_windows"].fillna(0) == 0]["category"]
    assert len(unjudged) > 10
    assert set(forecast[forecast["category"].isin(unjudged)]["model"]) == {"CrostonSBA"}


def test_a_forecast_is_made_again_only_when_what_it_learns_from_moved(tmp_path):
    """Runs every few minutes re-estimate the counts of days long past by a few thousandths of a
    posting: the forecast made today stands (materialised again with the figures it was made
    with); a day moved by more than REFIT_TOLERANCE, or another day, makes it again."""
    from dagster import DagsterInstance, materialize

    from careerpulse_assets.assets.gold import gold_category_forecast, gold_daily_counts
    from careerpulse_assets.io_managers import DuckDBTables
    from careerpulse_assets.resources import CareerPulseDuckDB
    from careerpulse_assets.series.forecast import REFIT_TOLERANCE

    database = str(tmp_path / "careerpulse.duckdb")
    today = date.today()
    stream = dense(120)
    stream["day"] = stream["day"] + (today - timedelta(days=1) - stream["day"].max())
    stream["estimated_postings"] = stream["postings"].astype(float)
    instance = DagsterInstance.ephemeral()

    def run(counts: pd.DataFrame):
        with duckdb.connect(database) as connection:
            connection.execute("CREATE SCHEMA IF NOT EXISTS gold")
            connection.register("counts", counts)
            connection.execute("CREATE OR REPLACE TABLE gold.gold_daily_counts AS "
                               "SELECT * FROM counts")
        result = materialize(
            [gold_category_forecast, gold_daily_counts.to_source_asset()],
            selection=[gold_category_forecast.key], instance=instance,
            resources={"io_manager": DuckDBTables(database=database),
                       "duckdb": CareerPulseDuckDB(database=database)})
        assert result.success
        [event] = result.get_asset_materialization_events()
        with duckdb.connect(database) as connection:
            table = connection.sql("SELECT * FROM gold.gold_category_forecast "
                                   "ORDER BY category, day").df()
        return event.materialization.metadata, table

    first, made = run(stream)
    assert first["made"].value == "in this run: no forecast made before"
    nudged = stream.assign(estimated_postings=stream["estimated_postings"] + 0.004)
    second, kept = run(nudged)
    assert second["made"].value.startswith(f"kept from run {first['made_in_run'].value[:8]}")
    pd.testing.assert_frame_equal(kept, made)
    assert second["history_and_forecast"] == first["history_and_forecast"]
    assert second["dagster/row_count"].value == len(made)
    moved = nudged.copy()
    moved.loc[moved.index[-3], "estimated_postings"] += 2 * REFIT_TOLERANCE
    third, _ = run(moved)
    assert third["made"].value.startswith("in this run: ")
    assert "moved by 0.10 postings" in third["made"].value
    fourth, _ = run(moved)
    assert fourth["made"].value.startswith(f"kept from run {third['made_in_run'].value[:8]}")
    longer = pd.concat([moved, moved[moved["day"] == moved["day"].max()].assign(
        day=today)])  # today's postings are not learnt: the forecast stands
    assert run(longer)[0]["made"].value.startswith("kept from run")
    with duckdb.connect(database) as connection:  # a table another version wrote: made again
        connection.execute("ALTER TABLE gold.gold_forecast_inputs DROP COLUMN settings")
    assert run(moved)[0]["made"].value == "in this run: no forecast made before"
    instance = DagsterInstance.ephemeral()  # the materialisations lost, the tables kept
    assert run(moved)[0]["made"].value == ("in this run: the latest materialisation is not the "
                                           "one that made the forecast in place")


def test_refit_reasons_name_what_changed():
    from careerpulse_assets.series.forecast import fit_inputs, refit_reason

    today = date(2026, 12, 7)
    series, _ = learning_series(gold(90), today)  # Legal Services: a posting every 7th day
    made = fit_inputs(series, today, "run-1")
    assert refit_reason(made, series, today) is None
    assert refit_reason(None, series, today) == "no forecast made before"
    assert refit_reason(made, series.iloc[:0], today) == "nothing to learn from"
    assert refit_reason(made, series, today + timedelta(days=1)) == (
        "the forecast in place was made on 2026-12-07, not today")
    assert refit_reason(made.assign(settings="horizon=14"), series, today) == (
        "the forecast in place was made with other settings")
    assert refit_reason(made, series.iloc[1:], today) == "the days it learns from changed"
    zero = series["y"].eq(0).idxmax()
    assert series.loc[zero, "y"] == 0
    posted = series.copy()
    posted.loc[zero, "y"] = 0.01  # within the tolerance, but a day with a posting now
    assert refit_reason(made, posted, today) == "the days with a posting changed"
    unknown = series.copy()
    unknown.loc[zero, "y"] = np.nan
    assert refit_reason(made, unknown, today) == "a day's learnt count is not a number"
    assert " code=" in made["settings"][0] and " statsforecast=" in made["settings"][0]
