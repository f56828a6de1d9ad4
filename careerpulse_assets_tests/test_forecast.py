"""The forecast on synthetic gold-shaped streams: seasonal, sparse, and too short."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from careerpulse_assets.core.forecast import (
    BACKTEST_COLUMNS,
    FORECAST_COLUMNS,
    HORIZON,
    forecast_categories,
)


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
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def result():
    return forecast_categories(gold(120))


def test_every_category_gets_the_next_28_days(result):
    assert result.skipped is None
    forecast = result.forecast
    assert forecast.groupby("category").size().to_dict() == {
        "Legal Services": HORIZON, "Software Engineering": HORIZON,
    }
    first = date(2026, 1, 1) + timedelta(days=120)
    assert sorted(forecast["day"].unique()) == [first + timedelta(days=d) for d in range(HORIZON)]
    assert (forecast["lower"] <= forecast["forecast"] + 1e-9).all()
    assert (forecast["forecast"] <= forecast["upper"] + 1e-9).all()
    assert (forecast[["forecast", "lower", "upper"]] >= 0).all().all()


def test_sparse_categories_are_offered_croston_and_busy_ones_ets(result):
    backtest = result.backtest.set_index("category")
    assert backtest["candidate"].to_dict() == {
        "Legal Services": "CrostonOptimized", "Software Engineering": "AutoETS"}
    models = set(result.forecast.groupby("category")["model"].first())
    assert models <= {"CrostonOptimized", "AutoETS", "SeasonalNaive"}


def test_ets_beats_the_weekly_naive_on_a_noisy_weekly_series(result):
    busy = result.backtest.set_index("category").loc["Software Engineering"]
    assert busy["chosen_on_earlier"] == "AutoETS"
    assert busy["chosen_mase"] < busy["baseline_mase"]
    assert busy["scored_windows"] == 4


def test_window_mase_equals_utilsforecast_on_each_window_by_hand():
    from careerpulse_assets.core.forecast import window_mase

    rng = np.random.default_rng(3)
    days = pd.date_range("2026-01-01", periods=60)
    history = pd.DataFrame({"unique_id": "a", "ds": days, "y": rng.poisson(5, 60).astype(float)})
    cutoff = days[39]
    window = history[(history["ds"] > cutoff) & (history["ds"] <= days[46])].assign(
        cutoff=cutoff, SeasonalNaive=4.0, AutoETS=5.0)
    scores = window_mase(window, history, "AutoETS")
    y = history.loc[history["ds"] <= cutoff, "y"].to_numpy()
    scale = np.abs(y[7:] - y[:-7]).mean()
    assert scores["AutoETS"].iloc[0] == pytest.approx(np.abs(window["y"] - 5.0).mean() / scale)


def test_a_window_whose_history_never_changes_is_left_out_with_the_reason():
    from careerpulse_assets.core.forecast import backtest_row

    cutoffs = pd.date_range("2026-01-07", periods=8, freq="7D")
    scores = pd.DataFrame({"unique_id": "x", "cutoff": cutoffs,
                           "SeasonalNaive": [np.inf] * 8, "CrostonOptimized": [np.inf] * 8})
    row = backtest_row("Legal Services", "CrostonOptimized", scores)
    assert np.isnan(row["chosen_mase"]) and np.isnan(row["baseline_mase"])
    assert row["note"].startswith("not scored: none of the 4 later windows")


def test_one_lucky_window_does_not_switch_a_category_off_the_baseline():
    from careerpulse_assets.core.forecast import backtest_row

    cutoffs = pd.date_range("2026-01-07", periods=8, freq="7D")
    # Croston's mean is lower only thanks to the window where last week's spike did not return.
    scores = pd.DataFrame({"unique_id": "x", "cutoff": cutoffs,
                           "SeasonalNaive": [41.1, 0.0, 0.0, 0.0, 5.8, 17.7, 0.0, 0.0],
                           "CrostonOptimized": [1.0, 0.5, 0.5, 0.5, 6.3, 18.2, 0.5, 0.5]})
    row = backtest_row("Human Resources and Recruitment", "CrostonOptimized", scores)
    assert row["chosen_on_earlier"] == "SeasonalNaive"
    assert row["chosen_mase"] == row["baseline_mase"]


def test_too_little_history_is_a_clear_skip():
    short = forecast_categories(gold(30))
    assert short.skipped == "30 days of history; a forecast needs at least 56"
    assert short.forecast.empty and short.mean_mase() is None
    # The asset writes these as its tables even when skipped: same columns as a forecast.
    assert list(short.forecast.columns) == FORECAST_COLUMNS
    assert list(short.backtest.columns) == BACKTEST_COLUMNS


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
    return pd.DataFrame(rows)


def test_a_dense_90_day_stream_scores_every_category_and_is_not_worse_than_naive():
    result = forecast_categories(dense(90))
    assert result.backtest["scored_windows"].eq(4).all()
    assert result.backtest["note"].eq("").all()
    chosen, baseline = result.mean_mase()
    assert np.isfinite(chosen) and chosen <= baseline


def test_on_the_shared_postings_no_category_scores_nan_or_zero_without_a_reason(shared_items):
    from careerpulse_assets.core.postings import silver_row

    from .test_gold import daily_counts

    silver = pd.DataFrame([silver_row(i) for i in shared_items])
    rows = zip(pd.to_datetime(silver["publication_date"], utc=True).dt.date,
               silver["category"].fillna("Unknown category"), [False] * len(silver), strict=True)
    result = forecast_categories(daily_counts(list(rows)))
    backtest = result.backtest
    unexplained = backtest[(backtest["chosen_mase"].isna() | (backtest["baseline_mase"] == 0))
                           & (backtest["note"] == "")]
    assert unexplained.empty
    chosen, baseline = result.mean_mase()
    assert chosen <= baseline
