"""The demand forecast: the next 28 days of postings per category, and how good it is.

Each category has two candidates: SeasonalNaive(7) (same weekday last week: the baseline) and a
model picked by a stated rule, AutoETS with weekly seasonality where the category is posted on
most days, Croston (built for intermittent demand) where more than half the days have none. A
rolling-origin backtest (8 origins a week apart, horizons 1..28 days) scores both in each window
by MASE against that window's own training history (`utilsforecast.losses.mase`: the mean
absolute error scaled by the in-sample error of the weekly naive forecast up to the cutoff).

The score stays honest by nesting: each category's model is chosen on the 4 earlier windows and
both it and the baseline are scored on the 4 later ones. The forecast published uses the model
that did better over all 8 windows. "Better" needs a lower mean MASE and a lower MASE in most
windows: on intermittent series a mean alone switches models on one window of noise. A window whose training history never changes from one week
to the next (a category with no postings in it) has no MASE (its scale is 0): it is left out,
and a category left with no scorable later window is listed with that reason, not as 0 or nan.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import AutoETS, CrostonOptimized, SeasonalNaive
from statsforecast.utils import ConformalIntervals
from utilsforecast.losses import mase

HORIZON = 28
SEASON = 7
MIN_HISTORY_DAYS = 56  # 8 weeks: fewer gives a clear skip, not a forecast
BACKTEST_ORIGINS = 8
HISTORY_DAYS = 365  # the forecast learns from the last year; older demand says little
SPARSE_ZERO_SHARE = 0.5
INTERVAL_LEVEL = 80
BASELINE = "SeasonalNaive"


FORECAST_COLUMNS = ["category", "day", "forecast", "lower", "upper", "model"]
BACKTEST_COLUMNS = ["category", "candidate", "chosen_on_earlier", "scored_windows",
                    "chosen_mase", "baseline_mase", "note"]


@dataclass(frozen=True)
class ForecastResult:
    skipped: str | None = None
    # Empty with their columns when skipped: the tables keep their shape.
    forecast: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FORECAST_COLUMNS))
    backtest: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=BACKTEST_COLUMNS))
    history: pd.DataFrame = field(default_factory=pd.DataFrame)  # category, day, postings

    def mean_mase(self) -> tuple[float, float] | None:
        """(chosen models, baseline) MASE on the later windows, averaged over the categories
        that could be scored."""
        if self.backtest.empty:
            return None
        scored = self.backtest.dropna(subset=["chosen_mase", "baseline_mase"])
        if scored.empty:
            return None
        return float(scored["chosen_mase"].mean()), float(scored["baseline_mase"].mean())


def candidate_model(series: pd.Series) -> str:
    return "CrostonOptimized" if (series == 0).mean() > SPARSE_ZERO_SHARE else "AutoETS"


def _models(candidate: str):
    """The baseline and the candidate: each category is fitted with these two only."""
    models = {
        "AutoETS": lambda: AutoETS(season_length=SEASON),
        # Croston gives no interval of its own: conformal intervals from its past errors.
        "CrostonOptimized": lambda: CrostonOptimized(
            prediction_intervals=ConformalIntervals(h=HORIZON, n_windows=2)
        ),
    }
    return [SeasonalNaive(season_length=SEASON), models[candidate]()]


def window_mase(cv: pd.DataFrame, history: pd.DataFrame, candidate: str) -> pd.DataFrame:
    """MASE of the baseline and the candidate in each backtest window (unique_id, cutoff,
    SeasonalNaive, <candidate>), each against the history up to its own cutoff; inf where
    that history's weekly naive error is 0. `actual_postings`: the window's postings."""
    scores = mase(cv, [BASELINE, candidate], SEASON, history)
    actual = cv.groupby("cutoff", as_index=False)["y"].sum().rename(columns={"y": "actual_postings"})
    return scores.merge(actual, on="cutoff", how="left")


def _better(scores: pd.DataFrame, candidate: str) -> str:
    """The candidate when it has the lower mean MASE over the windows that have one *and* the
    lower MASE in most of them; else the baseline. On intermittent series one window where last
    week's posting did not come back again makes a mean alone switch models on noise."""
    finite = scores[np.isfinite(scores[BASELINE]) & np.isfinite(scores[candidate])]
    if finite.empty:
        return BASELINE
    wins = (finite[candidate] < finite[BASELINE]).sum()
    if finite[candidate].mean() < finite[BASELINE].mean() and wins * 2 > len(finite):
        return candidate
    return BASELINE


def backtest_row(category: str, candidate: str, scores: pd.DataFrame) -> dict:
    """Choose on the earlier half of the windows, score on the later half."""
    cutoffs = sorted(scores["cutoff"].unique())
    earlier = scores[scores["cutoff"].isin(cutoffs[: len(cutoffs) // 2])]
    later = scores[scores["cutoff"].isin(cutoffs[len(cutoffs) // 2 :])]
    chosen = _better(earlier, candidate)
    scorable = later[np.isfinite(later[BASELINE])]
    row = {"category": category, "candidate": candidate, "chosen_on_earlier": chosen,
           "scored_windows": len(scorable), "chosen_mase": np.nan, "baseline_mase": np.nan,
           "note": ""}
    if scorable.empty:
        row["note"] = (f"not scored: none of the {len(later)} later windows has a history that "
                       "changes week to week (MASE scale 0)")
        return row
    row["chosen_mase"] = float(scorable[chosen].mean())
    row["baseline_mase"] = float(scorable[BASELINE].mean())
    notes = []
    if len(scorable) < len(later):
        notes.append(f"{len(later) - len(scorable)} later windows left out: MASE scale 0")
    if row["chosen_mase"] == 0 or row["baseline_mase"] == 0:
        notes.append("MASE 0: no postings in the later windows and none forecast")
    row["note"] = "; ".join(notes)
    return row


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
    frame = frame.sort_values(["unique_id", "ds"], ignore_index=True)
    days = frame["ds"].nunique()
    if days < MIN_HISTORY_DAYS:
        return ForecastResult(
            skipped=f"{days} days of history; a forecast needs at least {MIN_HISTORY_DAYS}"
        )
    history = frame.rename(columns={"unique_id": "category", "ds": "day", "y": "postings"})
    candidates = frame.groupby("unique_id")["y"].apply(candidate_model)
    # Origins a week apart; before the first one at least two weeks to learn from.
    backtest_horizon = min(horizon, days - SEASON * (BACKTEST_ORIGINS - 1) - 2 * SEASON)
    predicted_parts, rows, deployed = [], [], {}
    # AutoETS only where it is the candidate: fitting it on every category, sparse ones
    # included, was 12 of the 14 s this took at 20,000 postings.
    for candidate, categories in candidates.groupby(candidates).groups.items():
        group = frame[frame["unique_id"].isin(categories)]
        engine = StatsForecast(models=_models(candidate), freq="D", n_jobs=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predicted_parts.append(engine.forecast(df=group, h=horizon, level=[INTERVAL_LEVEL]))
            cv = engine.cross_validation(
                df=group, h=backtest_horizon, n_windows=BACKTEST_ORIGINS, step_size=SEASON
            ) if backtest_horizon >= SEASON else None
        for category in categories:
            if cv is None:
                deployed[category] = BASELINE
                continue
            scores = window_mase(cv[cv["unique_id"] == category], group[group["unique_id"] == category],
                                 candidate)
            deployed[category] = _better(scores, candidate)
            rows.append(backtest_row(category, candidate, scores))
    predicted = pd.concat(predicted_parts, ignore_index=True)
    parts = []
    for category, model in deployed.items():
        part = predicted[predicted["unique_id"] == category]
        parts.append(
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
        forecast=pd.concat(parts, ignore_index=True),
        backtest=pd.DataFrame(rows, columns=BACKTEST_COLUMNS),
        history=history,
    )
