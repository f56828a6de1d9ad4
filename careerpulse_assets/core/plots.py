"""Figures as PNG bytes, for MLflow artifacts and Dagster metadata."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: draw to memory
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def confusion_png(confusion: pd.DataFrame, title: str = "Hold-out confusion matrix") -> bytes:
    size = max(5.0, 0.55 * len(confusion) + 2.5)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(confusion.to_numpy(), cmap="Blues")
    axes.set_xticks(range(len(confusion.columns)), confusion.columns, rotation=60, ha="right")
    axes.set_yticks(range(len(confusion.index)), confusion.index)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    peak = confusion.to_numpy().max() or 1
    for row, true in enumerate(confusion.index):
        for column, predicted in enumerate(confusion.columns):
            value = int(confusion.loc[true, predicted])
            if value:
                axes.text(column, row, value, ha="center", va="center",
                          color="white" if value > peak / 2 else "black", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()
