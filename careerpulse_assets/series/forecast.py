"""The demand forecast: postings per category for the 28 days after the run, and how good it is.

**What it learns from.** Per category, the days gold marks `complete` (every posting of the day
seen) or, when fewer than MIN_HISTORY_DAYS of those lie in the last year, the days it marks
`observed`: a day nobody saw is not a day without demand. Of the HISTORY_DAYS up to the newest
such day, the other days are cut out, each stretch with up to 6 neighbouring days so that the
weekdays stay aligned (a weekly model must not learn Mondays as Tuesdays). The run's own day is
never learnt: it is not over.

**Dated from the run.** The first forecast day is the day after the run (UTC). When the newest
data is older than yesterday, the models forecast across the gap; the table says how old the
data is (`data_until`, `data_age_days`), and so does the backtest table.

**Models.** Seasonal naive (the same weekday last week) is the baseline. A category posted on at
least half of its learning days ("busy") is offered ETS (additive error and weekly season, no
trend) and a seasonal window average (the same weekday's mean over the last 4 weeks), chosen by
MASE; an intermittent one the intermittent-demand methods ADIDA and IMAPA (temporal
aggregation), TSB and Croston SBA, chosen by RMSSE, since on counts that are mostly 0 the
absolute error is smallest for a forecast of no posting at all (Kolassa, IJF 2016). A
rolling-origin backtest (8 origins a week apart, horizons 1..28 days) scores every model in every
window against the window's own history (`utilsforecast.losses.mase` / `rmsse`: the error over
the in-sample error of the weekly naive forecast). The score is nested: each category's model is
chosen on the 4 earlier windows and scored, with the baseline, on the 4 later ones; the forecast
uses the model chosen over all 8. A busy category keeps seasonal naive and an intermittent one
Croston SBA unless another model has a lower mean score *and* a lower score in most windows (on
intermittent series one window where last week's posting did not return would otherwise switch
models on noise); of several such, the lowest mean wins. A window whose history never changes
week to week has no score (scale 0) and is left out with the reason.

**The forecast is a mean.** Each day's `forecast` is the expected number of postings (what the
models estimate; they add up to weekly and monthly totals), not the most likely count: a
category posted every tenth day has a forecast of 0.1 a day, and 0 postings on most days.

**Intervals.** Counts of a few postings a day are not normal, and an interval of 0.88-1.12
around a forecast of 1 says nothing. The 80 % interval is the 10th to the 90th percentile of a
negative binomial distribution with the point forecast as its mean and an overdispersion
estimated from the model's own backtest errors (method of moments on Var = mean + alpha * mean^2;
alpha = 0 is Poisson; Cameron and Trivedi, Regression Analysis of Count Data, 2013, ch. 3.2),
widened to the next whole posting where the mean lies outside it (a mean of 0.1 has the
percentiles 0 and 0, and the interval 0 to 1): the forecast always lies inside its own interval,
which then holds more than 80 %. Its bounds are counts, never below 0, for any horizon. Its
coverage, the share of actual counts inside, is measured on the later windows with alpha
estimated on the earlier ones.

**How old the data is.** When the newest day learnt from is older than yesterday, `data_age`
says why: the days after it that nobody observed (no walk of a listing or archive covered them),
those observed but not learnt from, and the run's own day, learnt once it is over.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats


def _models():
    """statsforecast's models, imported when a forecast is first made: the import takes about a
    second, which the processes that forecast nothing (ingestion runs, code servers) need not
    pay."""
    import statsforecast.models

    return statsforecast.models

HORIZON = 28
SEASON = 7
MIN_HISTORY_DAYS = 56  # 8 weeks: fewer gives a clear skip, not a forecast
BACKTEST_ORIGINS = 8
HISTORY_DAYS = 365  # the forecast learns from the last year; older demand says little
BUSY_POSTED_SHARE = 0.5  # posted on at least this share of days: "busy", else intermittent
INTERVAL_LEVEL = 80
BASELINE = "SeasonalNaive"

CANDIDATES = {
    "busy": {
        # Additive error and weekly season, no trend: searching every ETS form took 24x as long
        # (35.9 s vs 1.5 s for the backtest of 10 one-year series) for MASE 0.867 vs 0.871, and
        # the multiplicative ones refuse days without postings anyway.
        "AutoETS": lambda: _models().AutoETS(season_length=SEASON, model="ANA"),
        "SeasonalWindowAverage": lambda: _models().SeasonalWindowAverage(
            season_length=SEASON, window_size=4, alias="SeasonalWindowAverage"),
    },
    "intermittent": {
        "ADIDA": lambda: _models().ADIDA(),
        "IMAPA": lambda: _models().IMAPA(),
        "TSB": lambda: _models().TSB(alpha_d=0.1, alpha_p=0.1),
        "CrostonSBA": lambda: _models().CrostonSBA(),
    },
}

FORECAST_COLUMNS = ["category", "day", "forecast", "lower", "upper", "model", "data_until",
                    "data_age_days"]
BACKTEST_COLUMNS = ["category", "learned_from", "learning_days", "posted_day_share",
                    "data_until", "candidates", "chosen_by", "chosen_on_earlier",
                    "scored_windows", "chosen_mase", "baseline_mase", "chosen_rmsse",
                    "baseline_rmsse", "interval_coverage", "pit_coverage", "alpha", "note"]


@dataclass(frozen=True)
class ForecastResult:
    skipped: str | None = None
    # Empty with their columns when skipped: the tables keep their shape.
    forecast: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FORECAST_COLUMNS))
    backtest: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=BACKTEST_COLUMNS))
    # Gold's rows of the forecast categories before the run's day (real dates), for plots.
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    # Per later-window day of the chosen models: category, day, y, forecast, lower, upper.
    later_windows: pd.DataFrame = field(default_factory=pd.DataFrame)
    # The overdispersion of each category's interval (negative binomial alpha).
    alphas: dict = field(default_factory=dict)

    @property
    def intermittent(self) -> set[str]:
        """Categories posted on fewer than half of their learning days."""
        return set(self.backtest.loc[self.backtest["posted_day_share"] < BUSY_POSTED_SHARE,
                                     "category"])

    def mean_mase(self, busy_only: bool = False) -> tuple[float, float] | None:
        """(chosen models, baseline) MASE on the later windows, averaged over the categories
        that could be scored (only those posted on most days, with `busy_only`)."""
        scored = self.backtest.dropna(subset=["chosen_mase", "baseline_mase"])
        if busy_only:
            scored = scored[scored["posted_day_share"] >= BUSY_POSTED_SHARE]
        if scored.empty:
            return None
        return float(scored["chosen_mase"].mean()), float(scored["baseline_mase"].mean())

    def coverage(self, busy_only: bool = False) -> float | None:
        """Share of actual counts inside the 80 % intervals on the later windows, over every
        category and day (only categories posted on most days, with `busy_only`)."""
        rows = self.later_windows
        if busy_only and len(rows):
            busy = self.backtest.loc[self.backtest["posted_day_share"] >= BUSY_POSTED_SHARE,
                                     "category"]
            rows = rows[rows["category"].isin(busy)]
        if rows.empty:
            return None
        return float(((rows["y"] >= rows["lower"]) & (rows["y"] <= rows["upper"])).mean())


def aligned_days(usable: np.ndarray) -> np.ndarray:
    """Which of a run of consecutive days to learn from, oldest first: the usable ones, less as
    few usable days as it takes for each day to keep its weekday once the others are cut out
    (walking back from the newest, a day is kept when as many days were kept after it as lie
    after it, modulo 7)."""
    keep = np.zeros(len(usable), dtype=bool)
    kept_after = 0
    for offset, index in enumerate(range(len(usable) - 1, -1, -1)):
        if usable[index] and (offset - kept_after) % SEASON == 0:
            keep[index] = True
            kept_after += 1
    return keep


def learning_series(gold: pd.DataFrame, today: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per category, the days to learn from (module docstring).

    `gold`: gold_daily_counts' columns (day, category, postings, observed, complete).
    Returns (series: unique_id, ds, y with ds consecutive days ending at the newest day learnt
    from; about: one row per category with learned_from, learning_days, posted_day_share,
    data_until, note). A category with fewer than MIN_HISTORY_DAYS such days has no series and
    its `note` says why."""
    frame = gold.assign(day=pd.to_datetime(gold["day"]))
    frame = frame[frame["day"] < pd.Timestamp(today)].sort_values(["category", "day"])
    series, about = [], []
    for category, days in frame.groupby("category", sort=True):
        row = {"category": category, "learned_from": None, "learning_days": 0,
               "posted_day_share": np.nan, "data_until": None, "note": ""}
        keep = np.zeros(0, dtype=bool)
        for basis in ("complete", "observed"):
            flagged = days[days[basis].astype(bool)]
            if flagged.empty:
                continue
            newest = flagged["day"].max()
            window = days[days["day"] > newest - pd.Timedelta(days=HISTORY_DAYS)]
            window = window[window["day"] <= newest]
            keep = aligned_days(window[basis].astype(bool).to_numpy())
            if keep.sum() >= MIN_HISTORY_DAYS:
                break
        else:
            row["learning_days"] = int(keep.sum())
            row["note"] = (f"not forecast: {int(keep.sum())} observed days in the last year, a "
                           f"forecast needs {MIN_HISTORY_DAYS}")
            about.append(row)
            continue
        y = window["postings"].to_numpy(dtype=float)[keep]
        series.append(pd.DataFrame({
            "unique_id": category, "ds": pd.date_range(end=newest, periods=len(y)), "y": y}))
        cut = len(window) - int(keep.sum())
        row |= {"learned_from": basis, "learning_days": len(y),
                "posted_day_share": float((y > 0).mean()), "data_until": newest.date(),
                "note": f"{cut} days of the last year cut out (not {basis})" if cut else ""}
        about.append(row)
    columns = ["unique_id", "ds", "y"]
    return (pd.concat(series, ignore_index=True) if series else pd.DataFrame(columns=columns),
            pd.DataFrame(about))


def overdispersion(actual: np.ndarray, mean: np.ndarray) -> float:
    """alpha of Var(y) = mean + alpha * mean^2, by the method of moments over forecasts `mean`
    (clipped at 0) and the counts `actual` that came: 0 (Poisson) when the errors are no larger
    than Poisson's or nothing was forecast."""
    mean = np.clip(np.asarray(mean, dtype=float), 0, None)
    actual = np.asarray(actual, dtype=float)
    scale = float((mean**2).sum())
    if scale == 0:
        return 0.0
    return max(0.0, float(((actual - mean) ** 2 - mean).sum()) / scale)


def count_interval(mean: np.ndarray, alpha: float, level: float = INTERVAL_LEVEL):
    """(lower, upper) integer bounds holding the central `level` % of a negative binomial with
    these means and overdispersion alpha (Poisson when alpha is 0) and the mean itself.

    The central interval of a skewed count need not hold its mean: a mean of 0.1 postings a day
    has 10th and 90th percentiles 0 and 0. Such a bound is widened to the whole number on the
    mean's side (0 to 1 there), so a forecast never lies outside its own interval; the interval
    then holds more than `level` %."""
    mean = np.clip(np.asarray(mean, dtype=float), 0, None)
    tail = (1 - level / 100) / 2
    if alpha <= 0:
        lower, upper = stats.poisson.ppf(tail, mean), stats.poisson.ppf(1 - tail, mean)
    else:
        size = 1 / alpha
        probability = size / (size + mean)
        lower = stats.nbinom.ppf(tail, size, probability)
        upper = stats.nbinom.ppf(1 - tail, size, probability)
    return np.minimum(lower, np.floor(mean)), np.maximum(upper, np.ceil(mean))


def weekly_forecast(forecast: pd.DataFrame, alphas: dict) -> pd.DataFrame:
    """The forecast summed over the weeks from its first day (category, week: its first day,
    forecast, lower, upper): a week's total is the sum of its days, its 80 % interval that of
    the negative binomial with the same mean and variance (sum of mean + alpha * mean^2 over
    the days; exact for the flat forecasts of the intermittent models)."""
    frame = forecast.assign(day=pd.to_datetime(forecast["day"]))
    frame["week"] = frame["day"].min() + pd.to_timedelta(
        (frame["day"] - frame["day"].min()).dt.days // SEASON * SEASON, unit="D")
    frame["squared"] = frame["forecast"] ** 2
    weeks = frame.groupby(["category", "week"], as_index=False)[["forecast", "squared"]].sum()
    lower, upper = [], []
    for row in weeks.itertuples(index=False):
        alpha = alphas.get(row.category, 0.0) * row.squared / row.forecast**2 if row.forecast else 0.0
        low, high = count_interval(np.array([row.forecast]), alpha)
        lower.append(float(low[0]))
        upper.append(float(high[0]))
    return weeks.drop(columns="squared").assign(lower=lower, upper=upper)


def window_scores(cv: pd.DataFrame, history: pd.DataFrame, models: list[str]) -> dict[str, pd.DataFrame]:
    """{"MASE": ..., "RMSSE": ...}: each model's score in each backtest window (unique_id,
    cutoff, one column per model), against the history up to the window's own cutoff
    (`utilsforecast.losses.mase` / `rmsse`); inf where that history's weekly naive error is 0."""
    from utilsforecast.losses import mase, rmsse

    return {"MASE": mase(cv, models, SEASON, history), "RMSSE": rmsse(cv, models, SEASON, history)}


def _better(scores: pd.DataFrame, incumbent: str, challengers: list[str]) -> str:
    """The challenger with the lowest mean score among those with a lower mean than the
    `incumbent` *and* a lower score in most windows, over the windows where all have one; else
    the incumbent (also when no window has a score). Most windows as well as the mean: on
    intermittent series one window where last week's posting did not return would otherwise
    switch models on noise."""
    finite = scores[np.isfinite(scores[[incumbent, *challengers]]).all(axis=1)]
    if finite.empty:
        return incumbent
    better = {
        name: finite[name].mean() for name in challengers
        if finite[name].mean() < finite[incumbent].mean()
        and (finite[name] < finite[incumbent]).sum() * 2 > len(finite)
    }
    return min(better, key=better.get) if better else incumbent


def pit_coverage(actual, mean, alpha: float, level: float = INTERVAL_LEVEL) -> float:
    """Coverage of the central `level` % of the predictive distribution with ties split: the
    mean over days of the share of [F(y-1), F(y)] inside [tail, 1 - tail], F the negative
    binomial's CDF (the non-randomised PIT of Czado, Gneiting and Held, Biometrics 2009). A
    calibrated forecast has `level` % however sparse the counts, where the share of counts inside
    integer bounds cannot fall below the chance of a day without postings."""
    actual = np.asarray(actual, dtype=float)
    mean = np.clip(np.asarray(mean, dtype=float), 0, None)
    if alpha <= 0:
        above, at = stats.poisson.cdf(actual - 1, mean), stats.poisson.cdf(actual, mean)
    else:
        size = 1 / alpha
        probability = size / (size + mean)
        above = stats.nbinom.cdf(actual - 1, size, probability)
        at = stats.nbinom.cdf(actual, size, probability)
    tail = (1 - level / 100) / 2
    overlap = np.clip(np.minimum(at, 1 - tail) - np.maximum(above, tail), 0, None)
    width = at - above
    share = np.where(width > 0, overlap / np.where(width > 0, width, 1),
                     (at >= tail) & (at <= 1 - tail))
    return float(share.mean()) if len(share) else float("nan")


SELECTION_METRIC = {"busy": "MASE", "intermittent": "RMSSE"}
# The model a category keeps unless another one does better in the backtest. For a category
# posted on a few days that is Croston SBA, the standard for intermittent demand (Syntetos and
# Boylan, IJF 2005), not seasonal naive, which would repeat last week's lone posting for ever.
INCUMBENT = {"busy": BASELINE, "intermittent": "CrostonSBA"}


def _challengers(group: str) -> list[str]:
    return [name for name in [BASELINE, *CANDIDATES[group]] if name != INCUMBENT[group]]


def backtest_row(category: str, group: str, scores: dict[str, pd.DataFrame],
                 cv: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """Choose on the earlier half of the windows by the group's metric (MASE for busy
    categories; RMSSE for intermittent ones, where MAE rewards forecasting no posting at all,
    the median of most days: Kolassa, IJF 2016), score on the later half: the row's fields, and
    the later windows' days with the chosen model's forecast and interval."""
    candidates = list(CANDIDATES[group])
    metric = SELECTION_METRIC[group]
    cutoffs = sorted(scores["MASE"]["cutoff"].unique())
    earlier_cutoffs = cutoffs[: len(cutoffs) // 2]
    chosen = _better(scores[metric][scores[metric]["cutoff"].isin(earlier_cutoffs)],
                     INCUMBENT[group], _challengers(group))
    earlier_days = cv[cv["cutoff"].isin(earlier_cutoffs)]
    later_days = cv[~cv["cutoff"].isin(earlier_cutoffs)]
    alpha = overdispersion(earlier_days["y"], earlier_days[chosen])
    lower, upper = count_interval(later_days[chosen], alpha)
    days = pd.DataFrame({"category": category, "day": later_days["ds"].to_numpy(),
                         "y": later_days["y"].to_numpy(),
                         "forecast": later_days[chosen].clip(lower=0).to_numpy(),
                         "lower": lower, "upper": upper})
    row = {"candidates": ", ".join(candidates), "chosen_by": metric, "chosen_on_earlier": chosen,
           "interval_coverage": float(days["y"].between(days["lower"], days["upper"]).mean()),
           "pit_coverage": pit_coverage(days["y"], days["forecast"], alpha), "alpha": alpha}
    later = {name: table[~table["cutoff"].isin(earlier_cutoffs)] for name, table in scores.items()}
    scorable = {name: table[np.isfinite(table[BASELINE])] for name, table in later.items()}
    row["scored_windows"] = len(scorable["MASE"])
    if scorable["MASE"].empty:
        row["note"] = (f"not scored: none of the {len(later['MASE'])} later windows has a history "
                       "that changes week to week (MASE scale 0)")
        return row, days
    for name, table in scorable.items():
        row[f"chosen_{name.lower()}"] = float(table[chosen].mean())
        row[f"baseline_{name.lower()}"] = float(table[BASELINE].mean())
    notes = []
    if len(scorable["MASE"]) < len(later["MASE"]):
        notes.append(f"{len(later['MASE']) - len(scorable['MASE'])} later windows left out: "
                     "MASE scale 0")
    if row["chosen_mase"] == 0 or row["baseline_mase"] == 0:
        notes.append("MASE 0: no postings in the later windows and none forecast")
    row["note"] = "; ".join(notes)
    return row, days


def data_age(gold: pd.DataFrame, today: date, data_until: date) -> str | None:
    """Why a forecast dated from `today` learnt from nothing newer than `data_until`: one
    sentence naming the days after it that nobody observed, those observed but not learnt from
    (not complete, where a category learns from complete days), and the postings of `today`,
    learnt once the day is over; None when `data_until` is yesterday or later.

    `gold`: gold_daily_counts' columns (day, category, postings, observed); a day missing from it
    was not observed."""
    age = (today - data_until).days
    if age <= 1:
        return None
    days = gold.assign(day=pd.to_datetime(gold["day"]).dt.date).groupby("day").agg(
        observed=("observed", "any"), postings=("postings", "sum"))
    first, last = data_until + timedelta(days=1), today - timedelta(days=1)
    between = age - 1
    observed = int(days.loc[(days.index >= first) & (days.index <= last), "observed"].sum())
    said = [f"the forecast runs {age} days past its data: the newest day it learnt from is "
            f"{data_until}"]
    span = f"from {first} to {last}" if between > 1 else f"{first}"
    if observed < between:
        share = "the" if observed == 0 else f"{between - observed} of the"
        said.append(f"{share} {between} days {span} were not observed (no walk of a listing "
                    "and no archive covered them)" if between > 1 else
                    f"{span} was not observed (no walk of a listing and no archive covered it)")
    if observed:
        said.append(f"{observed} days after it were observed but not learnt from (not complete, "
                    "and the category learns from complete days)")
    today_postings = int(days["postings"].get(today, 0))
    if today_postings:
        said.append(f"today's {today_postings} postings are learnt once the day is over (UTC)")
    return "; ".join(said)


def _join_notes(*notes: str) -> str:
    return "; ".join(note for note in notes if note)


# What the forecast is made with, this module's code and statsforecast's version included: a
# forecast made otherwise is made again.
FORECAST_SETTINGS = (
    f"horizon={HORIZON} season={SEASON} origins={BACKTEST_ORIGINS} history={HISTORY_DAYS} "
    f"min_history={MIN_HISTORY_DAYS} busy={BUSY_POSTED_SHARE} level={INTERVAL_LEVEL} "
    + " ".join(f"{group}={','.join(models)}" for group, models in CANDIDATES.items())
    + f" code={hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]}"
    f" statsforecast={version('statsforecast')}")
# A day's learnt count may move by this many postings, and the forecast in place still stands.
# Counts of postings without a category are re-estimated over all of them every run, so days
# long past move a little whenever any posting arrives: on a 400,000-posting home, 20 postings
# of the run's own day moved the learnt days of the year before by 0.005 postings on average
# (issue 29). 0.05 is a twentieth of the smallest change a real count can make.
REFIT_TOLERANCE = 0.05
FIT_INPUT_COLUMNS = ["category", "day", "learnt_postings", "fitted_for", "settings",
                     "fitted_in_run"]


def fit_inputs(series: pd.DataFrame, today: date, run_id: str) -> pd.DataFrame:
    """What a forecast made on `today` in run `run_id` learnt from (`learning_series`' series:
    unique_id, ds, y), as FIT_INPUT_COLUMNS rows: what `refit_reason` compares the next run's
    with."""
    return pd.DataFrame({
        "category": series["unique_id"].astype(str).to_numpy(),
        "day": pd.to_datetime(series["ds"]).dt.date.to_numpy(),
        "learnt_postings": series["y"].astype(float).to_numpy(),
        "fitted_for": today, "settings": FORECAST_SETTINGS, "fitted_in_run": run_id,
    }, columns=FIT_INPUT_COLUMNS)


def refit_reason(previous: pd.DataFrame | None, series: pd.DataFrame, today: date) -> str | None:
    """Why the forecast must be made again, or None when the one in place stands.

    `previous`: what the forecast in place learnt from (`fit_inputs`' rows; None or empty when
    there is none); `series`: what one made now would learn from (`learning_series`' unique_id,
    ds, y). It stands when it was made on `today` (its first day is the day after), with
    FORECAST_SETTINGS, from the same days of the same categories, each within REFIT_TOLERANCE
    postings of today's and posted on (> 0) exactly where today's is: the models would be
    fitted again on what they learnt from (ETS, window averages and the intermittent methods
    smooth what they learn from; whether a day was posted on at all is what the intermittent
    ones model)."""
    if series.empty:
        return "nothing to learn from"
    if previous is None or previous.empty:
        return "no forecast made before"
    made_on = set(pd.to_datetime(previous["fitted_for"]).dt.date)
    if made_on != {today}:
        return f"the forecast in place was made on {min(made_on)}, not today"
    if set(previous["settings"]) != {FORECAST_SETTINGS}:
        return "the forecast in place was made with other settings"
    now = pd.DataFrame({"category": series["unique_id"].astype(str).to_numpy(),
                        "day": pd.to_datetime(series["ds"]).dt.date.to_numpy(),
                        "y": series["y"].astype(float).to_numpy()})
    before = previous.assign(day=pd.to_datetime(previous["day"]).dt.date)
    both = before.merge(now, on=["category", "day"], how="outer", indicator=True)
    if (both["_merge"] != "both").any():
        return "the days it learns from changed"
    if both[["learnt_postings", "y"]].isna().any(axis=None):
        return "a day's learnt count is not a number"
    moved = (both["learnt_postings"] - both["y"]).abs()
    if moved.max() > REFIT_TOLERANCE:
        row = both.loc[moved.idxmax()]
        return (f"{row['category']} on {row['day']} moved by {moved.max():.2f} postings "
                f"(more than {REFIT_TOLERANCE})")
    if ((both["learnt_postings"] > 0) != (both["y"] > 0)).any():
        return "the days with a posting changed"
    return None


def forecast_categories(daily: pd.DataFrame, today: date, horizon: int = HORIZON) -> ForecastResult:
    """Forecast `postings` of a gold-shaped frame (day, category, postings, observed, complete)
    per category for the `horizon` days after `today` (the run's UTC day).

    Returns a ForecastResult: `forecast` (FORECAST_COLUMNS, counts per day with integer 80 %
    bounds), `backtest` (BACKTEST_COLUMNS, one row per category), or `skipped` with the reason
    when no category has MIN_HISTORY_DAYS days to learn from."""
    series, about = learning_series(daily, today)
    if series.empty:
        most = int(about["learning_days"].max()) if len(about) else 0
        return ForecastResult(skipped=(
            f"no category has {MIN_HISTORY_DAYS} days to learn from: at most {most} observed days "
            "in the last year"))
    about = about.set_index("category")
    history = daily.assign(day=pd.to_datetime(daily["day"]))
    history = history[history["category"].isin(series["unique_id"].unique())
                      & (history["day"] < pd.Timestamp(today))]
    first_day = pd.Timestamp(today + timedelta(days=1))
    last_day = pd.Timestamp(today + timedelta(days=horizon))
    group_of = about["posted_day_share"].map(
        lambda share: "busy" if share >= BUSY_POSTED_SHARE else "intermittent")
    forecasts, rows, later_parts, alphas = [], [], [], {}
    for group, categories in group_of.dropna().groupby(group_of.dropna()).groups.items():
        frame = series[series["unique_id"].isin(categories)]
        candidates = list(CANDIDATES[group])
        from statsforecast import StatsForecast

        engine = StatsForecast(
            models=[_models().SeasonalNaive(season_length=SEASON)] + [make() for make in CANDIDATES[group].values()],
            freq="D", n_jobs=1,
        )
        shortest = int(frame.groupby("unique_id").size().min())
        # Origins a week apart; before the first one at least two weeks to learn from.
        backtest_horizon = min(horizon, shortest - SEASON * (BACKTEST_ORIGINS - 1) - 2 * SEASON)
        # Each series is forecast from its own newest day: enough steps for the stalest.
        steps = int((last_day - frame.groupby("unique_id")["ds"].max().min()).days)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predicted = engine.forecast(df=frame, h=steps)
            cv = engine.cross_validation(
                df=frame, h=backtest_horizon, n_windows=BACKTEST_ORIGINS, step_size=SEASON
            ) if backtest_horizon >= SEASON else None
        scores = window_scores(cv, frame, [BASELINE, *candidates]) if cv is not None else None
        for category in categories:
            info = about.loc[category]
            model, alpha, row = BASELINE, 0.0, {}
            if cv is not None:
                own_cv = cv[cv["unique_id"] == category]
                own_scores = {name: table[table["unique_id"] == category]
                              for name, table in scores.items()}
                row, later_days = backtest_row(category, group, own_scores, own_cv)
                later_parts.append(later_days)
                model = _better(own_scores[SELECTION_METRIC[group]], INCUMBENT[group],
                                _challengers(group))
                alpha = overdispersion(own_cv["y"], own_cv[model])
            else:
                row = {"candidates": ", ".join(candidates), "note": (
                    f"not backtested: {int(info['learning_days'])} learning days are too few "
                    f"for {BACKTEST_ORIGINS} weekly origins")}
            rows.append({"category": category, **info.to_dict(), **row,
                         "note": _join_notes(info["note"], row.get("note", ""))})
            alphas[category] = alpha
            own = predicted[predicted["unique_id"] == category]
            own = own[(own["ds"] >= first_day) & (own["ds"] <= last_day)]
            lower, upper = count_interval(own[model], alpha)
            forecasts.append(pd.DataFrame({
                "category": category,
                "day": own["ds"].dt.date.to_numpy(),
                # Counts cannot be negative, whatever a smooth model says.
                "forecast": own[model].clip(lower=0).to_numpy(),
                "lower": lower, "upper": upper, "model": model,
                "data_until": info["data_until"],
                "data_age_days": (today - info["data_until"]).days,
            }))
    not_forecast = about[about["learned_from"].isna()].reset_index()
    backtest = pd.concat([pd.DataFrame(rows), not_forecast], ignore_index=True)
    return ForecastResult(
        forecast=pd.concat(forecasts, ignore_index=True)[FORECAST_COLUMNS],
        backtest=backtest.reindex(columns=BACKTEST_COLUMNS).sort_values("category",
                                                                         ignore_index=True),
        history=history,
        later_windows=pd.concat(later_parts, ignore_index=True) if later_parts else pd.DataFrame(),
        alphas=alphas,
    )
