"""Figures as PNG bytes, for MLflow artifacts and Dagster metadata."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: draw to memory
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402


def confusion_png(confusion: pd.DataFrame, title: str = "Out-of-fold confusion matrix") -> bytes:
    """scikit-learn's ConfusionMatrixDisplay of a true × predicted table, as PNG bytes."""
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


def forecast_png(
    history: pd.DataFrame, forecast: pd.DataFrame, categories: list[str], history_days: int = 90
) -> bytes:
    """Daily postings of a few categories (last `history_days`) and their forecast with band."""
    figure, axes = plt.subplots(
        len(categories), 1, figsize=(9, 2.2 * len(categories)), sharex=True, squeeze=False
    )
    start = pd.to_datetime(history["day"]).max() - pd.Timedelta(days=history_days)
    for axis, category in zip(axes[:, 0], categories, strict=True):
        past = history[(history["category"] == category) & (pd.to_datetime(history["day"]) > start)]
        future = forecast[forecast["category"] == category]
        axis.plot(pd.to_datetime(past["day"]), past["postings"], color="0.3", lw=1, label="postings")
        days = pd.to_datetime(future["day"])
        axis.plot(days, future["forecast"], color="tab:blue", lw=1.5, label="forecast")
        axis.fill_between(days, future["lower"], future["upper"], color="tab:blue", alpha=0.2,
                          label="80 % interval")
        axis.set_title(f"{category} ({future['model'].iloc[0] if len(future) else ''})", fontsize=9)
        axis.set_ylabel("per day", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()


def daily_counts_png(gold: pd.DataFrame, top: int = 6, weeks: int = 52) -> bytes:
    """Weekly postings of the busiest categories, and the share of them that was imputed."""
    frame = gold.assign(week=pd.to_datetime(gold["day"]).dt.to_period("W").dt.start_time)
    frame = frame[frame["week"] >= frame["week"].max() - pd.Timedelta(weeks=weeks)]
    busiest = frame.groupby("category")["postings"].sum().nlargest(top).index
    weekly = frame.pivot_table(index="week", columns="category", values="postings", aggfunc="sum")
    totals = frame.groupby("week")[["postings", "imputed_postings"]].sum()
    figure, (counts_axis, share_axis) = plt.subplots(
        2, 1, figsize=(9, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for category in busiest:
        counts_axis.plot(weekly.index, weekly[category], lw=1.2, label=category)
    counts_axis.set_ylabel("postings / week")
    counts_axis.legend(fontsize=7, ncol=2)
    counts_axis.set_title(f"Last {weeks} weeks, {top} busiest categories", fontsize=9)
    share = (totals["imputed_postings"] / totals["postings"].where(totals["postings"] > 0))
    share_axis.plot(share.index, share * 100, color="tab:red", lw=1.2)
    share_axis.set_ylabel("imputed %")
    share_axis.set_ylim(0, 100)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()
