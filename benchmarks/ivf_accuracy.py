"""Imputation through the IVF neighbour index against the exact search, on the same postings.

    .venv/bin/python -m benchmarks.ivf_accuracy ../shared/data/muse [N] [--unlabelled-share 0.7]
        [--rows-per-cluster 250] [--probes 8]

N postings (20,000 by default) replayed as `make bench` serves them (`benchmarks/replay.py`:
distinct texts, 70 % without a category at random, the true category kept). The classifier is
trained as knn_classifier trains it (`training.train`, the count model of its out-of-fold
predictions); its KNN then imputes the postings without a category twice: by the exact search
(`cosine_neighbors`, what imputation does up to IVF_MIN_TRAINING_ROWS labelled postings) and by
the IVF (`fit_neighbour_index` + `ivf_neighbors`, what it does above), here forced on whatever the
size, with labelled / `--rows-per-cluster` clusters. Printed: seconds of each (index fit
apart), accuracy against the true categories, the share of identical predictions, and the L1
error of the category shares counted by `estimate_counts` against the truth; the goals (loss ≤
0.5 point, count L1 worse by ≤ 0.01) with their verdict. Peak RSS is this process's; the load is
the machine's 1-minute load at the start and end of each search.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import warnings

import numpy as np
import pandas as pd

from benchmarks.replay import UNLABELLED_SHARE, ReplayedPostings, replay_sources, shared_items
from careerpulse_assets.classification.evaluation import labelled_set
from careerpulse_assets.classification.knn import (
    IMPUTE_SLICE_POSTINGS,
    IVF_PROBES,
    IVF_ROWS_PER_CLUSTER,
    class_scores,
    cosine_neighbors,
    fit_neighbour_index,
    ivf_neighbors,
    model_input,
)
from careerpulse_assets.classification.model_selection import KnnGrid
from careerpulse_assets.classification.serving import calibrate_model
from careerpulse_assets.classification.training import train
from careerpulse_assets.ingestion.postings import silver_row
from careerpulse_assets.series.quantification import estimate_counts, share_error

# The goals of issue 29 for an approximate search: what it may cost against the exact one.
MAX_ACCURACY_LOSS_POINTS = 0.5
MAX_COUNT_L1_INCREASE = 0.01


def replayed_silver(postings: ReplayedPostings) -> pd.DataFrame:
    """Silver rows of the replayed postings with `category` the current name where the API
    listed one (else None) and `true_category` for every posting."""
    frame = pd.DataFrame([silver_row(item) for item in postings])
    frame["true_category"] = postings.true_categories()["true_category"].to_numpy()
    frame["category"] = frame["true_category"].where(frame["category"].notna(), None)
    frame["category_source"] = np.where(frame["category"].isna(), None, "api")
    return frame


def searched(search, features: list, knn) -> tuple[np.ndarray, float, tuple[float, float]]:
    """(class scores of every slice's rows, seconds, load before and after) of one search."""
    load_before, started = os.getloadavg()[0], time.perf_counter()
    parts = []
    for part in features:
        distances, indices = search(part)
        parts.append(class_scores(knn.train_labels_[indices], distances, len(knn.classes_),
                                  knn.vote, knn.prior_alpha, knn.class_priors_))
    return (np.concatenate(parts), time.perf_counter() - started,
            (load_before, os.getloadavg()[0]))


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the shared postings, e.g. ../shared/data/muse")
    parser.add_argument("n", nargs="?", type=int, default=20_000)
    parser.add_argument("--unlabelled-share", type=float, default=UNLABELLED_SHARE)
    parser.add_argument("--rows-per-cluster", type=int, default=IVF_ROWS_PER_CLUSTER)
    parser.add_argument("--probes", type=int, default=IVF_PROBES)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    started = time.perf_counter()
    postings = ReplayedPostings(replay_sources(shared_items(args.folder)), args.n,
                                unlabelled_share=args.unlabelled_share)
    silver = replayed_silver(postings)
    print(f"replayed {len(silver):,} postings in {time.perf_counter() - started:.1f} s",
          flush=True)
    started = time.perf_counter()
    training = train(labelled_set(silver), KnnGrid())
    counting = calibrate_model(training.challenger.oof).counting
    print(f"trained ({training.chosen}) in {time.perf_counter() - started:.1f} s", flush=True)

    model, knn = training.model, training.model[-1]
    unlabelled = silver[silver["category"].isna()].reset_index(drop=True)
    truth = unlabelled["true_category"].to_numpy().astype(str)
    step = IMPUTE_SLICE_POSTINGS
    features = [model[:-1].transform(model_input(unlabelled.iloc[start : start + step]))
                for start in range(0, len(unlabelled), step)]
    rows = knn.training_matrix_.shape[0]
    clusters = max(1, rows // args.rows_per_cluster)
    started = time.perf_counter()
    centroids, members = fit_neighbour_index(knn.training_matrix_, clusters)
    index_seconds = time.perf_counter() - started
    k = knn.n_neighbors
    exact, exact_s, exact_load = searched(
        lambda part: cosine_neighbors(part, knn.training_matrix_, k), features, knn)
    ivf, ivf_s, ivf_load = searched(
        lambda part: ivf_neighbors(part, knn.training_matrix_, k, centroids, members,
                                   args.probes), features, knn)

    results = {}
    for name, scores in (("exact", exact), ("IVF", ivf)):
        predicted = knn.classes_[scores.argmax(axis=1)].astype(str)
        counts = estimate_counts(counting, scores)
        results[name] = (float(np.mean(predicted == truth)),
                         share_error(counts.counts / len(truth), counts.classes, truth),
                         counts.method, predicted)
    same = float(np.mean(results["exact"][3] == results["IVF"][3]))
    loss = (results["exact"][0] - results["IVF"][0]) * 100
    increase = results["IVF"][1] - results["exact"][1]
    print(f"\n{len(silver):,} postings: {rows:,} labelled (learnable) × {len(truth):,} to "
          f"impute; IVF {clusters:,} clusters (~{args.rows_per_cluster} rows each), "
          f"{min(args.probes, clusters)} probed, index fitted in {index_seconds:.1f} s; "
          f"peak RSS {peak_rss_gib():.2f} GiB\n")
    print("| search | seconds | load | accuracy | same predictions as exact | count method | "
          "count L1 vs truth |")
    print("|---|---|---|---|---|---|---|")
    for name, seconds, load in (("exact", exact_s, exact_load), ("IVF", ivf_s, ivf_load)):
        accuracy, l1, method, _ = results[name]
        print(f"| {name} | {seconds:.1f} | {load[0]:.1f}–{load[1]:.1f} | {accuracy:.4f} | "
              f"{1.0 if name == 'exact' else same:.4f} | {method} | {l1:.4f} |")
    met = loss <= MAX_ACCURACY_LOSS_POINTS and increase <= MAX_COUNT_L1_INCREASE
    print(f"\naccuracy loss {loss:+.2f} point (goal ≤ {MAX_ACCURACY_LOSS_POINTS}), count L1 "
          f"{increase:+.4f} (goal ≤ {MAX_COUNT_L1_INCREASE}): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
