"""How right is the quality gate? Its estimate against the truth, on postings with a quarter of
their categories hidden.

    .venv/bin/python -m benchmarks.gate_accuracy ../shared/data/muse [--seeds 6] [--method M]

For each seed a random quarter of the labelled postings lose their category, as if the API had
sent none. The classifier is trained on the rest exactly as `knn_classifier` trains it, and the
gate's estimate of its accuracy and macro-F1 (what the blocking checks judge) is set against the
truth: the deployed model's imputations of the hidden postings scored against their hidden
categories. The decision is "pass" when accuracy ≥ 0.75 and macro-F1 ≥ 0.70 (the checks'
defaults), for the estimate and for the truth.

`--method holdout` is the protocol before issue 12 (a stratified 80/20 hold-out of a sample of at
most 20,000); `--method oof` (the default) is the one the classifier uses now (out-of-fold
predictions of repeated stratified k-fold over every labelled posting, settings chosen inside
each outer fold). Truth, as the gate measures: accuracy over every hidden posting, macro-F1 over
the hidden postings of the categories the model learned. Prints one markdown row per seed and the
means.

`--method selective` (the default) is selective imputation (issue 20): the classifier is trained
as `knn_classifier` trains it, the confidence threshold is chosen for the bars (accuracy ≥ 0.90,
macro-F1 ≥ 0.70 of what is written; `--bars A F` for others) and its written imputations are
estimated nested. The hidden postings are imputed by the deployed model, and those whose
confidence reaches the threshold are "written": per seed, their coverage, accuracy and macro-F1
on the hidden truth against the estimate. When the policy imputes nothing (no threshold holds up
nested), the columns "at the threshold" still show what the threshold chosen on all out-of-fold
predictions would have written, so the estimate can be checked either way.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from careerpulse_assets.core.evaluation import labelled_set
from careerpulse_assets.core.knn import model_input

from .classifier_comparison import silver_from_archive

MIN_ACCURACY, MIN_MACRO_F1 = 0.75, 0.70
HIDDEN_SHARE = 0.25


def gate_estimate(visible: pd.DataFrame, method: str):
    """(accuracy, macro-F1, their 95 % intervals, postings it rests on, the fitted model)."""
    from careerpulse_assets.core.evaluation import evaluate, evaluation_set, knn_method
    from careerpulse_assets.core.selection import KnnGrid, fit_knn

    labelled = labelled_set(visible)
    if method == "holdout":
        evaluated = evaluation_set(labelled)
        report = evaluate(evaluated, knn_method(KnnGrid()), "holdout")
        model = fit_knn(labelled.postings, labelled.labels, report.fitted.knn_params)
        return (report.metrics["accuracy"], report.metrics["macro_f1"],
                report.intervals["accuracy"], report.intervals["macro_f1"], report.n_test, model)
    from careerpulse_assets.core.out_of_fold import estimate, make_folds, nested_knn, out_of_fold
    from careerpulse_assets.core.selection import select_knn, selection_sample

    evaluated = evaluation_set(labelled)
    oof = out_of_fold(evaluated, make_folds(evaluated), nested_knn(KnnGrid()))
    gate = estimate(oof)
    sample = selection_sample(labelled.labels)
    best = select_knn(labelled.postings.iloc[sample], labelled.labels.iloc[sample], KnnGrid()).best
    model = fit_knn(labelled.postings, labelled.labels, best)
    return (gate.metrics["accuracy"], gate.metrics["macro_f1"], gate.intervals["accuracy"],
            gate.intervals["macro_f1"], gate.postings, model)


def passes(accuracy: float, macro_f1: float) -> bool:
    return accuracy >= MIN_ACCURACY and macro_f1 >= MIN_MACRO_F1


def one_seed(silver: pd.DataFrame, seed: int, method: str) -> dict:
    rng = np.random.default_rng(seed)
    labelled = silver.index[silver["category"].notna()].to_numpy()
    hidden = rng.choice(labelled, size=round(len(labelled) * HIDDEN_SHARE), replace=False)
    visible = silver.drop(index=hidden)
    started = time.monotonic()
    accuracy, macro_f1, acc_ci, f1_ci, n, model = gate_estimate(visible, method)
    seconds = time.monotonic() - started
    truth = silver.loc[hidden]
    predicted = model.predict(model_input(truth))
    # Accuracy over every hidden posting; the F1s, as the gate's, over the hidden postings of the
    # categories the model learned (a category too rare to learn has no F1 worth averaging).
    true_accuracy = accuracy_score(truth["category"], predicted)
    learned = truth["category"].isin(model.classes_).to_numpy()
    true_macro_f1 = f1_score(truth["category"][learned], predicted[learned], average="macro",
                             zero_division=0)
    # The truth is itself a sample: how much would it move over other hidden postings like these?
    from careerpulse_assets.core.evaluation import bootstrap_intervals

    truth_ci = bootstrap_intervals(truth["category"].to_numpy()[learned].astype(object),
                                   predicted[learned].astype(object))["macro_f1"]
    return {
        "seed": seed, "estimated on": n, "accuracy": accuracy, "accuracy 95% CI":
        f"{acc_ci[0]:.3f}–{acc_ci[1]:.3f}", "true accuracy": true_accuracy,
        "macro-F1": macro_f1, "macro-F1 95% CI": f"{f1_ci[0]:.3f}–{f1_ci[1]:.3f}",
        "true macro-F1": true_macro_f1, "true macro-F1 95% CI": f"{truth_ci[0]:.3f}–{truth_ci[1]:.3f}",
        "hidden": len(hidden),
        "decision": "pass" if passes(accuracy, macro_f1) else "block",
        "true decision": "pass" if passes(true_accuracy, true_macro_f1) else "block",
        "seconds": seconds,
        "_acc_width": acc_ci[1] - acc_ci[0], "_f1_width": f1_ci[1] - f1_ci[0],
        "_truth_f1_width": truth_ci[1] - truth_ci[0],
    }


def _hidden(silver: pd.DataFrame, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labelled = silver.index[silver["category"].notna()].to_numpy()
    return rng.choice(labelled, size=round(len(labelled) * HIDDEN_SHARE), replace=False)


def written_truth(truth: np.ndarray, predicted: np.ndarray, written: np.ndarray,
                  judged: tuple[str, ...]) -> dict[str, float]:
    """Coverage, accuracy and macro-F1 (over `judged`, as the gate measures) of the written
    imputations of the hidden postings, on their hidden categories."""
    from careerpulse_assets.core.out_of_fold import OutOfFold, point_metrics

    oof = OutOfFold(truth.astype(object), np.ones(len(truth), bool), predicted[None, :],
                    np.zeros((1, len(truth))), np.zeros((1, len(truth)), int))
    from careerpulse_assets.core import out_of_fold

    full = np.arange(len(truth))[None, :]
    metrics = out_of_fold._bootstrap_metrics(oof.truth, oof.predicted, full, list(judged),
                                             written[None, :])
    return {name: float(value[0]) for name, value in metrics.items()}


def selective_seed(silver: pd.DataFrame, seed: int, bars) -> dict:
    from careerpulse_assets.core.selective import (
        deployed_threshold,
        imputation_policy,
        nested_written,
    )
    from careerpulse_assets.core.out_of_fold import point_metrics
    from careerpulse_assets.core.selection import KnnGrid
    from careerpulse_assets.core.training import train

    hidden = _hidden(silver, seed)
    visible = silver.drop(index=hidden)
    started = time.monotonic()
    training = train(labelled_set(visible), KnnGrid())
    oof = training.challenger.oof
    policy = imputation_policy(oof, bars)
    seconds = time.monotonic() - started
    judged = training.challenger.estimate.judged
    # What the threshold chosen on every out-of-fold prediction writes, used or not.
    threshold = deployed_threshold(oof, bars, list(judged))
    nested = point_metrics(oof, nested_written(oof, bars, list(judged))) if threshold is not None else {}
    truth = silver.loc[hidden]
    probabilities = training.model.predict_proba(model_input(truth))
    predicted = training.model.classes_[probabilities.argmax(axis=1)].astype(object)
    confidence = probabilities.max(axis=1)
    at = written_truth(truth["category"].to_numpy(dtype=object), predicted,
                       confidence >= (threshold if threshold is not None else np.inf), judged)
    return {
        "seed": seed, "hidden": len(hidden), "estimated on": policy.postings,
        "threshold": "none" if threshold is None else f"{threshold:.2f}",
        "imputes": "yes" if policy.imputes else "no",
        "coverage (est.)": nested.get("coverage", np.nan), "coverage (true)": at["coverage"],
        "accuracy (est.)": nested.get("accuracy", np.nan), "accuracy (true)": at["accuracy"],
        "macro-F1 (est.)": nested.get("macro_f1", np.nan), "macro-F1 (true)": at["macro_f1"],
        "all: accuracy (true)": written_truth(truth["category"].to_numpy(dtype=object),
                                              predicted, np.ones(len(truth), bool),
                                              judged)["accuracy"],
        "seconds": seconds,
    }


def selective_main(silver: pd.DataFrame, seeds: int, bars) -> None:
    table = pd.DataFrame([selective_seed(silver, seed, bars) for seed in range(seeds)])
    print(f"selective imputation for {bars.describe()}: {len(silver)} postings, "
          f"{silver['category'].notna().sum()} labelled, a quarter of them hidden per seed\n")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    used = table[table["imputes"] == "yes"]
    error = table["accuracy (est.)"] - table["accuracy (true)"]
    f1_error = table["macro-F1 (est.)"] - table["macro-F1 (true)"]
    print()
    print(f"the policy imputes on {len(used)} of {len(table)} seeds; where it does: written right "
          f"{used['accuracy (true)'].mean():.3f} on average (lowest {used['accuracy (true)'].min():.3f}), "
          f"coverage {used['coverage (true)'].mean():.3f}")
    print(f"at the threshold (all seeds, used or not): written right {table['accuracy (true)'].mean():.3f} "
          f"(lowest {table['accuracy (true)'].min():.3f}), coverage {table['coverage (true)'].mean():.3f}, "
          f"macro-F1 {table['macro-F1 (true)'].mean():.3f}")
    print(f"estimate error: accuracy mean absolute {error.abs().mean():.3f} (signed {error.mean():+.3f}), "
          f"macro-F1 mean absolute {f1_error.abs().mean():.3f} (signed {f1_error.mean():+.3f}), "
          f"coverage signed {(table['coverage (est.)'] - table['coverage (true)']).mean():+.3f}")
    print(f"mean time {table['seconds'].mean():.1f} s a seed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--method", choices=["holdout", "oof", "selective"], default="selective")
    parser.add_argument("--bars", type=float, nargs=2, default=(0.90, 0.70),
                        metavar=("ACCURACY", "MACRO_F1"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    silver = silver_from_archive(Path(args.folder)).reset_index(drop=True)
    if args.method == "selective":
        from careerpulse_assets.core.decisions import Bars

        selective_main(silver, args.seeds, Bars(*args.bars))
        return
    rows = [one_seed(silver, seed, args.method) for seed in range(args.seeds)]
    table = pd.DataFrame(rows)
    acc_error = table["accuracy"] - table["true accuracy"]
    f1_error = table["macro-F1"] - table["true macro-F1"]
    shown = table[[c for c in table.columns if not c.startswith("_")]]
    print(f"method {args.method}: {len(silver)} postings, {silver['category'].notna().sum()} "
          f"labelled, a quarter of them hidden per seed\n")
    print(shown.to_markdown(index=False, floatfmt=".3f"))
    print()
    print(f"accuracy: mean absolute error {acc_error.abs().mean():.3f}, mean signed error "
          f"{acc_error.mean():+.3f}, mean 95 % interval width {table['_acc_width'].mean():.3f}")
    print(f"macro-F1: mean absolute error {f1_error.abs().mean():.3f}, mean signed error "
          f"{f1_error.mean():+.3f}, mean 95 % interval width {table['_f1_width'].mean():.3f}")
    print(f"the truth's own macro-F1 95 % interval (bootstrap over the hidden postings) is "
          f"{table['_truth_f1_width'].mean():.3f} wide on average: its noise floor")
    agree = (table["decision"] == table["true decision"]).sum()
    print(f"decision agrees with the truth in {agree} of {len(table)}; mean time "
          f"{table['seconds'].mean():.1f} s")


if __name__ == "__main__":
    main()
