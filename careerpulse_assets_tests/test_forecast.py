"""The forecast on synthetic gold-shaped streams: seasonal, sparse, and too short."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from careerpulse_assets.core.forecast import HORIZON, forecast_categories


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


def test_sparse_categories_get_croston_and_busy_ones_ets(result):
    models = result.forecast.groupby("category")["model"].first().to_dict()
    assert models == {"Legal Services": "CrostonOptimized", "Software Engineering": "AutoETS"}


def test_ets_beats_the_weekly_naive_on_a_noisy_weekly_series(result):
    backtest = result.backtest.set_index("category")
    busy = backtest.loc["Software Engineering"]
    assert busy["model_mase"] < busy["baseline_mase"]
    assert backtest["baseline_mase"].notna().all()


def test_too_little_history_is_a_clear_skip():
    short = forecast_categories(gold(30))
    assert short.skipped == "30 days of history; a forecast needs at least 56"
    assert short.forecast.empty and short.mean_mase() is None
