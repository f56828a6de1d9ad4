"""Seed KNN vs the chosen KNN variant vs class-weighted logistic regression, on saved postings.

    .venv/bin/python -m benchmarks.classifier_comparison ../shared/data/muse

Prints a markdown table (random hold-out and time-ordered split, bootstrap 95 % intervals) and
the model-selection speed of the fast CV against the seed's GridSearchCV on the same folds.
A benchmark, not a test: it prints figures and asserts nothing but the equality of choices.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from careerpulse_assets.classification.evaluation import (
    MIN_POSTINGS_PER_CATEGORY,
    evaluate,
    holdout_split,
    knn_method,
    labelled_set,
    logistic_regression_method,
)
from careerpulse_assets.ingestion.postings import InvalidPosting, check_item, silver_row
from careerpulse_assets.classification.model_selection import SEED_GRID, select_knn

from .baselines import gridsearch_seed, seed_method
from careerpulse_assets.review.taxonomy import category_names, load_taxonomy
from careerpulse_assets.ingestion.archive import iter_archive_pages


def silver_from_items(items: Iterable[dict]) -> pd.DataFrame:
    """Silver as the pipeline builds it: latest payload per id, categories under the names they
    are counted under (current names; spellings compared as `review.taxonomy.name_key` does)."""
    rows = {}
    for item in items:
        try:
            check_item(item)
        except InvalidPosting:
            continue
        row = silver_row(item)
        rows[row["posting_id"]] = row
    silver = pd.DataFrame(list(rows.values()))
    names = category_names(load_taxonomy(), silver["categories"].explode().value_counts().to_dict())
    silver["category"] = [names.counted_as(c) if c is not None else None for c in silver["category"]]
    return silver


def silver_from_archive(folder: Path) -> pd.DataFrame:
    return silver_from_items(item for page in iter_archive_pages(folder) for item in page.items)


def fmt(report, name):
    low, high = report.intervals[name]
    return f"{report.metrics[name]:.3f} [{low:.3f}–{high:.3f}]"


def main(folder: str) -> None:
    warnings.filterwarnings("ignore")
    silver = silver_from_archive(Path(folder))
    labelled = labelled_set(silver, MIN_POSTINGS_PER_CATEGORY)
    print(f"{len(silver)} postings, {len(labelled.postings)} learnable labelled "
          f"({labelled.reposts_removed} reposts removed, {labelled.labels.nunique()} classes; "
          f"too rare: {labelled.excluded_categories})\n")

    methods = {"seed KNN": seed_method, "chosen KNN": knn_method(),
               "logistic regression": logistic_regression_method}
    print("| method | split | chosen | CV macro-F1 (train part) | accuracy [95% CI] | macro-F1 [95% CI] | weighted-F1 [95% CI] "
          "| any-label acc. | any-label macro-F1 | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    reports = {}
    for name, method in methods.items():
        for split in ("holdout", "time"):
            started = time.perf_counter()
            report = evaluate(labelled, method, split)
            seconds = time.perf_counter() - started
            reports[(name, split)] = report
            cv = report.fitted.cv_macro_f1
            print(f"| {name} | {split} | {report.chosen} | {'–' if cv is None else f'{cv:.3f}'} | "
                  f"{fmt(report, 'accuracy')} | "
                  f"{fmt(report, 'macro_f1')} | {fmt(report, 'weighted_f1')} | "
                  f"{report.any_label_metrics['accuracy']:.3f} | "
                  f"{report.any_label_metrics['macro_f1']:.3f} | {seconds:.1f} |")

    chosen = reports[("chosen KNN", "holdout")]
    print("\nchosen KNN, hold-out, per class:\n")
    print(chosen.per_class.to_markdown(index=False, floatfmt=".3f"))
    print("\nmost confused pairs:", json.dumps(chosen.most_confused))
    print("\nreliability (hold-out):\n")
    print(chosen.reliability.to_markdown(index=False, floatfmt=".3f"))

    train_idx, _ = holdout_split(labelled)
    train = labelled.postings.iloc[train_idx]
    started = time.perf_counter()
    search = gridsearch_seed(train, train["category"])
    grid_seconds = time.perf_counter() - started
    started = time.perf_counter()
    fast = select_knn(train, train["category"], SEED_GRID)
    fast_seconds = time.perf_counter() - started
    same = search.best_params_["knn__n_neighbors"] == fast.best.k and np.allclose(
        search.cv_results_["mean_test_score"], list(fast.cv_macro_f1.values())
    )
    print(f"\nmodel selection on the seed grid ({len(train)} postings, 5 folds, 5 k): "
          f"GridSearchCV {grid_seconds:.2f} s, one neighbour query per fold {fast_seconds:.2f} s, "
          f"{grid_seconds / fast_seconds:.1f}x faster; same k ({fast.best.k}) and same CV scores: {same}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/muse")
