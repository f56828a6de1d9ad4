"""Figures as PNG bytes, for MLflow artifacts and Dagster metadata."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd


def _pyplot():
    """matplotlib's pyplot, drawing to memory (no display). Imported when a figure is first
    drawn: it takes about a second, which the processes that draw nothing (ingestion runs, code
    servers, a `make run` refused at its start) need not pay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_png(confusion: pd.DataFrame, title: str = "Out-of-fold confusion matrix") -> bytes:
    """scikit-learn's ConfusionMatrixDisplay of a true × predicted table, as PNG bytes."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    size = max(5.0, 0.55 * len(confusion) + 2.5)
    figure, axes = plt.subplots(figsize=(size, size))
    labels = list(confusion.index)
    ConfusionMatrixDisplay(
        confusion.reindex(index=labels, columns=labels, fill_value=0).to_numpy(),
        display_labels=labels,
    ).plot(ax=axes, cmap="Blues", xticks_rotation=60, colorbar=False, values_format="d")
    axes.set_title(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


WEEK_STATUS_COLOURS = {"backfilled": ("#f6d7a7", "observed, not complete (backfilled)"),
                       "not observed": ("0.85", "not observed")}


def _week_start(days: pd.Series) -> pd.Series:
    return pd.to_datetime(days).dt.to_period("W").dt.start_time


def _png(figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    _pyplot().close(figure)
    return buffer.getvalue()


def weekly_status(gold: pd.DataFrame) -> pd.Series:
    """Per week (index: its Monday): "complete" when every day of it was complete for every
    category, "not observed" when no day was observed for any, else "backfilled"."""
    frame = gold.assign(week=_week_start(gold["day"]))
    weeks = frame.groupby("week").agg(complete=("complete", "all"), observed=("observed", "any"))
    return pd.Series(np.select([weeks["complete"], ~weeks["observed"]],
                               ["complete", "not observed"], "backfilled"), index=weeks.index)


def _shade(axis, status: pd.Series) -> None:
    """Background spans for runs of weeks that were not seen whole."""
    runs = (status != status.shift()).cumsum()
    for _, weeks in status.groupby(runs):
        if weeks.iloc[0] in WEEK_STATUS_COLOURS:
            axis.axvspan(weeks.index[0], weeks.index[-1] + pd.Timedelta(days=7),
                         color=WEEK_STATUS_COLOURS[weeks.iloc[0]][0], lw=0, zorder=0)


def daily_counts_png(gold: pd.DataFrame, top: int = 6) -> bytes:
    """Weekly postings of the busiest categories over gold's whole range (a category's line
    breaks in weeks nobody observed it; shaded weeks were not seen whole: backfilled or not
    observed at all), and the share of postings that was imputed."""
    frame = gold.assign(week=_week_start(gold["day"]))
    busiest = frame.groupby("category")["postings"].sum().nlargest(top).index
    weekly = frame.groupby(["week", "category"]).agg(postings=("postings", "sum"),
                                                     observed=("observed", "any"))
    weekly = weekly["postings"].where(weekly["observed"]).unstack("category")
    totals = frame.groupby("week")[["postings", "imputed_postings"]].sum()
    status = weekly_status(gold)
    plt = _pyplot()
    from matplotlib.patches import Patch

    figure, (counts_axis, share_axis) = plt.subplots(
        2, 1, figsize=(10, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for axis in (counts_axis, share_axis):
        _shade(axis, status)
    for category in busiest:
        counts_axis.plot(weekly.index, weekly[category], lw=1.1, label=category)
    handles = counts_axis.get_legend_handles_labels()[0] + [
        Patch(color=colour, label=label)
        for colour, label in WEEK_STATUS_COLOURS.values()]
    counts_axis.legend(handles=handles, fontsize=7, ncol=2)
    counts_axis.set_ylabel("postings / week")
    complete_weeks = int((status == "complete").sum())
    counts_axis.set_title(f"{top} busiest categories, weekly; {complete_weeks} of {len(status)} "
                          "weeks complete", fontsize=9)
    share = totals["imputed_postings"] / totals["postings"].where(totals["postings"] > 0)
    share_axis.plot(share.index, share * 100, color="tab:red", lw=1.1)
    share_axis.set_ylabel("imputed %")
    share_axis.set_ylim(0, 100)
    return _png(figure)


def forecast_png(history: pd.DataFrame, forecast: pd.DataFrame, categories: list[str],
                 intermittent: set[str], weekly_forecast: pd.DataFrame,
                 history_days: int = 182) -> bytes:
    """History and forecast of a few categories: daily with the 80 % band for busy ones, weekly
    totals for `intermittent` ones (`weekly_forecast`: category, week, forecast, lower, upper),
    which is what a count that is mostly 0 says. History: gold's observed days of the
    `history_days` before the newest one, weeks not seen whole shaded; the gap to the first
    forecast day is the data's age."""
    figure, axes = _pyplot().subplots(len(categories), 1, figsize=(9, 2.3 * len(categories)),
                                squeeze=False)
    for axis, category in zip(axes[:, 0], categories, strict=True):
        own = history[history["category"] == category].assign(
            day=lambda frame: pd.to_datetime(frame["day"]))
        newest = own.loc[own["observed"].astype(bool), "day"].max()
        own = own[own["day"] > newest - pd.Timedelta(days=history_days)]
        _shade(axis, weekly_status(own))
        past = own[own["observed"].astype(bool)]
        future = forecast[forecast["category"] == category]
        model = future["model"].iloc[0] if len(future) else ""
        if category in intermittent:
            weeks = past.groupby(_week_start(past["day"]))["postings"].sum()
            axis.bar(weeks.index, weeks.to_numpy(), width=6, color="0.55", label="postings / week")
            ahead = weekly_forecast[weekly_forecast["category"] == category]
            # A skewed count's 80 % interval need not hold its mean: drawn apart, not as error bars.
            axis.vlines(ahead["week"], ahead["lower"], ahead["upper"], color="tab:blue", lw=4,
                        alpha=0.3, label="80 % interval / week")
            axis.plot(ahead["week"], ahead["forecast"], "o", color="tab:blue",
                      label="forecast / week")
            axis.set_ylabel("per week", fontsize=8)
        else:
            # Broken where nobody looked: an unseen day is not a day without postings.
            axis.plot(own["day"], own["postings"].where(own["observed"].astype(bool)),
                      color="0.3", lw=1, label="postings")
            days = pd.to_datetime(future["day"])
            axis.plot(days, future["forecast"], color="tab:blue", lw=1.5, label="forecast")
            axis.fill_between(days, future["lower"], future["upper"], color="tab:blue",
                              alpha=0.2, label="80 % interval")
            axis.set_ylabel("per day", fontsize=8)
        age = f", data {int(future['data_age_days'].iloc[0])} days old" if len(future) else ""
        axis.set_title(f"{category} ({model}{age})", fontsize=9)
        axis.legend(fontsize=7, loc="upper left")
    return _png(figure)
