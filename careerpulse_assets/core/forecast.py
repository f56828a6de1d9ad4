"""The demand forecast: the next 28 days of postings per category, and how good it is.

Every category gets SeasonalNaive(7) (same weekday last week: the baseline) and a better model
chosen by a stated rule: AutoETS with weekly seasonality for categories posted on most days,
Croston (built for intermittent demand) for sparse ones, where more than half the days have no
posting. A rolling-origin backtest (8 origins a week apart, horizons 1..28 days) scores both by
MASE, the mean absolute error scaled by the in-sample error of the weekly naive forecast, so
< 1 beats "same as last week" in sample and the baseline's own MASE is the bar to clear.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import AutoETS, CrostonOptimized, SeasonalNaive
from statsforecast.utils import ConformalIntervals

HORIZON = 28
SEASON = 7
MIN_HISTORY_DAYS = 56  # 8 weeks: fewer gives a clear skip, not a forecast
BACKTEST_ORIGINS = 8
HISTORY_DAYS = 365  # the forecast learns from the last year; older demand says little
SPARSE_ZERO_SHARE = 0.5
INTERVAL_LEVEL = 80
BASELINE = "SeasonalNaive"


@dataclass(frozen=True)
class ForecastResult:
    skipped: str | None = None
    forecast: pd.DataFrame = field(default_factory=pd.DataFrame)  # category, day, forecast, lower, upper, model
    backtest: pd.DataFrame = field(default_factory=pd.DataFrame)  # category, model, baseline_mase, model_mase
    history: pd.DataFrame = field(default_factory=pd.DataFrame)  # category, day, postings

    def mean_mase(self) -> tuple[float, float] | None:
        """(chosen models, baseline) MASE averaged over the categories that could be scored."""
        if self.backtest.empty:
            return None
        scored = self.backtest.dropna(subset=["model_mase", "baseline_mase"])
        if scored.empty:
            return None
        return float(scored["model_mase"].mean()), float(scored["baseline_mase"].mean())


def chosen_model(series: pd.Series) -> str:
    return "CrostonOptimized" if (series == 0).mean() > SPARSE_ZERO_SHARE else "AutoETS"


def _models(chosen: str):
    """The baseline and the chosen model: each category is fitted with these two only."""
    models = {
        "AutoETS": lambda: AutoETS(season_length=SEASON),
        # Croston gives no interval of its own: conformal intervals from its past errors.
        "CrostonOptimized": lambda: CrostonOptimized(
            prediction_intervals=ConformalIntervals(h=HORIZON, n_windows=2)
        ),
    }
    return [SeasonalNaive(season_length=SEASON), models[chosen]()]


def _mase(errors: pd.Series, scale: float) -> float:
    return float(errors.abs().mean() / scale) if scale > 0 else np.nan


def forecast_categories(daily: pd.DataFrame, horizon: int = HORIZON) -> ForecastResult:
    """Forecast `postings` of a gold-shaped frame (day, category, postings) per category."""
    frame = pd.DataFrame(
        {
            "unique_id": daily["category"].astype(str),
            "ds": pd.to_datetime(daily["day"]),
            "y": daily["postings"].astype(float),
        }
    )
    last_day = frame["ds"].max()
    frame = frame[frame["ds"] > last_day - pd.Timedelta(days=HISTORY_DAYS)]
    days = frame["ds"].nunique()
    if days < MIN_HISTORY_DAYS:
        return ForecastResult(
            skipped=f"{days} days of history; a forecast needs at least {MIN_HISTORY_DAYS}"
        )
    history = frame.rename(columns={"unique_id": "category", "ds": "day", "y": "postings"})
    choice = frame.groupby("unique_id")["y"].apply(chosen_model)
    # Origins a week apart; before the first one at least two weeks to learn from.
    backtest_horizon = min(horizon, days - SEASON * (BACKTEST_ORIGINS - 1) - 2 * SEASON)
    predicted_parts, cv_parts = [], []
    # AutoETS only where it is the chosen model: fitting it on every category, sparse ones
    # included, was 12 of the 14 s this took at 20,000 postings.
    for model, categories in choice.groupby(choice).groups.items():
        group = frame[frame["unique_id"].isin(categories)]
        engine = StatsForecast(models=_models(model), freq="D", n_jobs=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predicted_parts.append(engine.forecast(df=group, h=horizon, level=[INTERVAL_LEVEL]))
            if backtest_horizon >= SEASON:
                cv_parts.append(engine.cross_validation(
                    df=group, h=backtest_horizon, n_windows=BACKTEST_ORIGINS, step_size=SEASON
                ))
    predicted = pd.concat(predicted_parts, ignore_index=True)
    cv = pd.concat(cv_parts, ignore_index=True) if cv_parts else None
    rows = []
    for category, model in choice.items():
        part = predicted[predicted["unique_id"] == category]
        rows.append(
            pd.DataFrame(
                {
                    "category": category,
                    "day": part["ds"].dt.date.to_numpy(),
                    # Counts cannot be negative, whatever a smooth model says.
                    "forecast": part[model].clip(lower=0).to_numpy(),
                    "lower": part[f"{model}-lo-{INTERVAL_LEVEL}"].clip(lower=0).to_numpy(),
                    "upper": part[f"{model}-hi-{INTERVAL_LEVEL}"].clip(lower=0).to_numpy(),
                    "model": model,
                }
            )
        )
    return ForecastResult(
        forecast=pd.concat(rows, ignore_index=True),
        backtest=_backtest_table(frame, cv, choice),
        history=history,
    )


def _backtest_table(frame: pd.DataFrame, cv: pd.DataFrame | None, choice: pd.Series):
    rows = []
    for category, model in choice.items():
        row = {"category": category, "model": model, "baseline_mase": np.nan, "model_mase": np.nan}
        if cv is not None:
            folds = cv[cv["unique_id"] == category]
            train = frame[(frame["unique_id"] == category) & (frame["ds"] <= folds["cutoff"].min())]
            y = train["y"].to_numpy()
            scale = np.abs(y[SEASON:] - y[:-SEASON]).mean() if len(y) > SEASON else 0.0
            row["baseline_mase"] = _mase(folds["y"] - folds[BASELINE], scale)
            row["model_mase"] = _mase(folds["y"] - folds[model], scale)
        rows.append(row)
    return pd.DataFrame(rows)
