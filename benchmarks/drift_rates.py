"""`category_drift`'s false alarms and detection, and its verdict on the shared postings.

    .venv/bin/python -m benchmarks.drift_rates [../shared/data/muse] [--windows 1000]

1. Windows of 500 postings drawn from a 10-category mix (55 % Software Engineering down to 2 %)
   against a reference of 20,000, unchanged and with 5-, 10- and 20-point shifts between the two
   biggest categories: the share of windows called drift (p < 0.01 and Jensen–Shannon ≥ 0.08).
2. On the shared postings, as the check sees them after a run: the model trained as
   `knn_classifier` trains it, the postings without a category imputed, and the window the check
   takes (the newest 500 postings, or the last 7 days when those are more).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from careerpulse_assets.checks import RECENT_WINDOW_SQL
from careerpulse_assets.ops.duckdb_file import declared_table
from careerpulse_assets.series.drift import (
    DEFAULT_MIN_POSTINGS,
    DEFAULT_WINDOW_DAYS,
    category_drift,
)
from careerpulse_assets.classification.evaluation import labelled_set
from careerpulse_assets.classification.knn import model_input
from careerpulse_assets.classification.model_selection import KnnGrid, fit_knn, select_knn, selection_sample

CATEGORIES = ["Software Engineering", "Data and Analytics", "Business Operations", "Education",
              "Account Management", "Customer Service", "Design and UX", "Healthcare", "Sales",
              "Human Resources and Recruitment"]
MIX = np.array([0.55, 0.12, 0.08, 0.06, 0.05, 0.04, 0.03, 0.03, 0.02, 0.02])


def rate(mix: np.ndarray, windows: int, seed: int = 1) -> float:
    rng = np.random.default_rng(seed)

    def counts(m, n):
        return dict(zip(CATEGORIES, rng.multinomial(n, m / m.sum()).tolist(), strict=True))

    reference = counts(MIX, 20_000)
    return float(np.mean([category_drift(reference, counts(mix, 500)).drifted
                          for _ in range(windows)]))


def shared_verdict(folder: Path) -> str:
    from .classifier_comparison import silver_from_archive

    silver = silver_from_archive(folder)
    labelled = labelled_set(silver)
    sample = selection_sample(labelled.labels)
    best = select_knn(labelled.postings.iloc[sample], labelled.labels.iloc[sample], KnnGrid()).best
    model = fit_knn(labelled.postings, labelled.labels, best)
    imputed = silver.assign(is_imputed=silver["category"].isna())
    imputed.loc[imputed["is_imputed"], "category"] = model.predict(
        model_input(imputed[imputed["is_imputed"]]))
    imputed["category_source"] = imputed["is_imputed"].map({True: "imputed", False: "api"})
    imputed["publication_date"] = pd.to_datetime(imputed["publication_date"], utc=True)
    # The window as the check takes it: its own SQL over a table shaped like imputed_silver.
    with duckdb.connect() as connection:
        connection.execute("CREATE SCHEMA silver")
        connection.register("frame", declared_table(
            imputed[["posting_id", "category", "is_imputed", "category_source",
                     "publication_date"]],
            {"posting_id": pa.int64(), "category": pa.string(), "is_imputed": pa.bool_(),
             "category_source": pa.string(), "publication_date": pa.timestamp("us", tz="UTC")}))
        connection.execute("CREATE TABLE silver.imputed_silver AS SELECT * FROM frame")
        window = connection.execute(RECENT_WINDOW_SQL, {"days": DEFAULT_WINDOW_DAYS,
                                                        "min_postings": DEFAULT_MIN_POSTINGS}).fetchdf()
    dates = imputed["publication_date"]
    last_week = int((dates > dates.max() - pd.Timedelta(days=DEFAULT_WINDOW_DAYS)).sum())
    result = category_drift(
        {str(k): int(v) for k, v in labelled.labels.value_counts().items()},
        dict(zip(window["category"], window["postings"].astype(int), strict=True)),
    )
    shares = result.shares.head(5).to_markdown(index=False, floatfmt=".3f") if result.shares is not None else ""
    return (f"last 7 days alone: {last_week} postings; the check's window: "
            f"{int(window['postings'].sum())} postings, {window['first_day'].iloc[0].date()} to "
            f"{window['last_day'].iloc[0].date()}\n"
            f"verdict: {result.summary()}\n\n{shares}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="../shared/data/muse")
    parser.add_argument("--windows", type=int, default=1000)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    rows = [{"mix": "unchanged", "windows called drift": rate(MIX, args.windows)}]
    for shift in (0.05, 0.10, 0.20):
        shifted = MIX.copy()
        shifted[0] -= shift
        shifted[1] += shift
        rows.append({"mix": f"{shift * 100:.0f}-point shift",
                     "windows called drift": rate(shifted, args.windows)})
    print(f"{args.windows} windows of 500 postings each:\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))
    if Path(args.folder).is_dir():
        print(f"\nshared postings ({args.folder}):")
        print(shared_verdict(Path(args.folder)))


if __name__ == "__main__":
    main()
