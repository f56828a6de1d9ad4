"""How right is the quality gate? Its estimate against the truth, on postings with a quarter of
their categories hidden.

    .venv/bin/python -m benchmarks.gate_accuracy ../shared/data/muse [--seeds 6] [--method M]

For each seed a random quarter of the labelled postings lose their category, as if the API had
sent none. The classifier is trained on the rest exactly as `knn_classifier` trains it, and the
gate's estimate of its accuracy and macro-F1 (what the blocking checks judge) is set against the
truth: the deployed model's imputations of the hidden postings scored against their hidden
categories. With `--method holdout|oof` the decision is "pass" when accuracy ≥ 0.75 and
macro-F1 ≥ 0.70 (the checks' defaults before issue 20), for the estimate and for the truth.

`--method holdout` is the protocol before issue 12 (a stratified 80/20 hold-out of a sample of at
most 20,000); `--method oof` is the one the classifier used from issue 12 to 20 (out-of-fold
predictions of repeated stratified k-fold over every labelled posting, settings chosen inside
each outer fold). Truth, as the gate measures: accuracy over every hidden posting, macro-F1 over
the hidden postings of the categories the model learned. Prints one markdown row per seed and the
means.

`--method selective` (the default) is selective imputation (issue 20, `core/selective.py`): the
classifier is trained as `knn_classifier` trains it (`core.training.train`), the policy (a
confidence threshold and the categories it serves) is chosen for the bars (accuracy ≥ 0.90,
macro-F1 ≥ 0.70 of what is written; `--bars A F` for others) and what it writes is estimated
nested. The hidden postings are then imputed as `imputed_silver` imputes them
(`core.classifier.impute_categories`); those written (confidence ≥ the threshold, category
served) are scored on their hidden categories: per seed the categories judged, served and left
out, coverage, written accuracy and written macro-F1 (over the served judged categories) on the
hidden truth against the nested estimate, and per category its estimated F1 against its true
one. When the policy imputes nothing, the truth columns show what its candidate (the threshold
and categories chosen on every out-of-fold prediction) would have written. Last, the policy on
every labelled posting (what `make run` decides on these postings; `--no-all-labels` skips it)
and how many of the postings the API sent without a category it imputes.
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from careerpulse_assets.core.classifier import impute_categories
from careerpulse_assets.core.evaluation import labelled_set
from careerpulse_assets.core.knn import model_input
from careerpulse_assets.core.out_of_fold import OutOfFold, point_metrics
from careerpulse_assets.core.selection import KnnGrid
from careerpulse_assets.core.selective import imputation_policy, learned_categories
from careerpulse_assets.core.training import train

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


@dataclass(frozen=True)
class Written:
    """What a policy writes on postings whose categories are known: coverage, accuracy, each
    served category's F1 scored on the written postings (as the gate scores a served judged
    category's), their mean over the judged ones (`macro_f1`), and the accuracy had every
    posting been imputed."""

    coverage: float
    accuracy: float
    macro_f1: float
    f1: dict[str, float]
    every_posting_accuracy: float


def imputed(postings: pd.DataFrame, model, threshold: float | None,
            served: list[str]) -> pd.DataFrame:
    """`postings` imputed as `imputed_silver` imputes them, their categories removed as if the
    API had sent none."""
    return impute_categories(postings.assign(category=None), model, "benchmark", threshold,
                             served)[0]


def written_on(postings: pd.DataFrame, model, threshold: float | None,
               served: list[str], judged: list[str]) -> Written:
    """`postings` (silver rows with their true `category`) imputed with `threshold` and
    `served`, scored on their true categories; macro-F1 over `judged`."""
    truth = postings["category"].to_numpy(dtype=object)
    result = imputed(postings, model, threshold, served)
    predicted = result["predicted_category"].to_numpy(dtype=object)
    written = result["is_imputed"].to_numpy(dtype=bool)[None, :]
    as_oof = OutOfFold(truth, np.ones(len(truth), bool), predicted[None, :],
                       result["imputation_confidence"].to_numpy()[None, :],
                       np.zeros((1, len(truth)), int))
    f1 = {category: point_metrics(as_oof, written, [category])["macro_f1"]
          for category in served}
    figures = point_metrics(as_oof, written, judged)
    return Written(figures["coverage"], figures["accuracy"], figures["macro_f1"], f1,
                   float((truth == predicted).mean()))


def f1_at(postings: pd.DataFrame, model, threshold: float, categories) -> dict[str, float]:
    """Each of `categories`' F1 among `postings`' predictions with confidence ≥ `threshold`,
    every category written: how well a category left out would have been imputed."""
    everything = [str(c) for c in model.classes_]
    f1 = written_on(postings, model, threshold, everything, []).f1
    return {category: f1.get(category, np.nan) for category in categories}


def imputed_share(missing: pd.DataFrame, model, policy) -> float:
    """The share of `missing` (postings the API sent without a category) the policy imputes."""
    if not len(missing):
        return float("nan")
    return float(imputed(missing, model, policy.threshold,
                         policy.imputed_categories)["is_imputed"].mean())


def short(names) -> str:
    return ", ".join(sorted(names)) or "none"


def selective_seed(silver: pd.DataFrame, seed: int, bars) -> dict:
    """One seed: the policy chosen on the visible labelled postings, against the truth of the
    hidden quarter. When the policy imputes nothing, the `(true)` columns show what its
    candidate (the threshold and categories chosen on every out-of-fold prediction) would have
    written."""
    hidden = _hidden(silver, seed)
    visible = silver.drop(index=hidden)
    started = time.monotonic()
    training = train(labelled_set(visible), KnnGrid())
    trained = time.monotonic()
    policy = imputation_policy(training.challenger.oof, bars)
    seconds_policy = time.monotonic() - trained
    threshold = policy.threshold if policy.imputes else policy.candidate
    served_judged = [c for c in policy.judged_categories if c in policy.served]
    truth = silver.loc[hidden]
    written = written_on(truth, training.model, threshold, policy.served, served_judged)
    left_out_true = (f1_at(truth, training.model, threshold, list(policy.left_out))
                     if threshold is not None else {})
    estimate = policy.estimate
    missing = silver[silver["category"].isna()]
    return {
        "seed": seed, "hidden": len(hidden), "estimated on": policy.postings,
        "threshold": "none" if threshold is None else f"{threshold:.2f}",
        "imputes": "yes" if policy.imputes else f"no: {policy.reason}",
        "learned": learned_categories(training.challenger.oof),
        "judged": policy.judged_categories, "served": policy.served,
        "served judged": served_judged,
        "left out": {name: values["f1"] for name, values in policy.left_out.items()},
        "left out (true F1 at t)": left_out_true,
        "served F1 (est.)": policy.served_f1, "served F1 (true)": written.f1,
        "coverage (est.)": estimate.get("coverage", np.nan), "coverage (true)": written.coverage,
        "accuracy (est.)": estimate.get("accuracy", np.nan),
        "accuracy 95% CI": _ci(estimate, "accuracy"), "accuracy (true)": written.accuracy,
        "macro-F1 (est.)": estimate.get("macro_f1", np.nan),
        "macro-F1 95% CI": _ci(estimate, "macro_f1"), "macro-F1 (true)": written.macro_f1,
        "every posting imputed: accuracy (true)": written.every_posting_accuracy,
        "without a category: imputed": imputed_share(missing, training.model, policy),
        "seconds": time.monotonic() - started, "seconds (policy)": seconds_policy,
    }


def _ci(estimate: dict, name: str) -> str:
    if f"{name}_ci_low" not in estimate:
        return ""
    return f"{estimate[f'{name}_ci_low']:.3f}–{estimate[f'{name}_ci_high']:.3f}"


def all_labels(silver: pd.DataFrame, bars) -> dict:
    """The policy on every labelled posting (what `make run` on these postings decides), and
    what it writes on the postings the API sent without a category (no truth to score)."""
    started = time.monotonic()
    training = train(labelled_set(silver), KnnGrid())
    policy = imputation_policy(training.challenger.oof, bars)
    missing = imputed(silver[silver["category"].isna()], training.model, policy.threshold,
                      policy.imputed_categories)
    unclassified = missing[~missing["is_imputed"]]
    return {"policy": policy, "without a category": len(missing),
            "imputed": int(missing["is_imputed"].sum()),
            "unclassified by guess": unclassified["predicted_category"].value_counts().to_dict(),
            "seconds": time.monotonic() - started}


TABLE_COLUMNS = [
    "seed", "threshold", "imputes", "served", "coverage", "written accuracy", "written macro-F1",
    "every posting imputed: accuracy (true)", "without a category: imputed", "seconds"]


def _pair(row, name: str, bracket: bool) -> str:
    true = f"{row[f'{name} (true)']:.3f}"
    return f"{row[f'{name} (est.)']:.3f} / " + (f"({true})" if bracket else true)


def seeds_table(table: pd.DataFrame) -> pd.DataFrame:
    """est. / true per seed; the truth in brackets where the policy imputes nothing (what its
    candidate would have written)."""
    rows = []
    for _, row in table.iterrows():
        bracket = row["imputes"] != "yes"
        rows.append({
            "seed": row["seed"], "threshold": row["threshold"],
            "imputes": "yes" if not bracket else "**no**",
            "served": f"{len(row['served'])} of {len(row['learned'])} learned "
                      f"({len(row['served judged'])} of {len(row['judged'])} judged)",
            "coverage": _pair(row, "coverage", bracket),
            "written accuracy": _pair(row, "accuracy", bracket),
            "written macro-F1": _pair(row, "macro-F1", bracket),
            "every posting imputed: accuracy (true)":
                f"{row['every posting imputed: accuracy (true)']:.3f}",
            "without a category: imputed": f"{row['without a category: imputed']:.3f}",
            "seconds": f"{row['seconds']:.0f}",
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def categories_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per learned category over the seeds: on how many judged and served; where served, its
    F1 estimated nested (judged ones only) against its F1 on the hidden postings written; where
    left out, its out-of-fold F1 at the threshold against its true F1 among the hidden
    predictions at the threshold."""
    names = sorted({c for learned in table["learned"] for c in learned})

    def mean(rows: pd.DataFrame, column: str, name: str) -> str:
        values = rows[column].map(lambda f: f.get(name, np.nan))
        return "–" if values.isna().all() else f"{values.mean():.2f}"

    out_rows = []
    for name in names:
        learned = table[table["learned"].map(lambda c: name in c)]
        judged = table[table["judged"].map(lambda c: name in c)]
        served = table[table["served"].map(lambda c: name in c)]
        out = table[table["left out"].map(lambda c: name in c)]
        out_rows.append({
            "category": name, "learned on seeds": len(learned), "judged on seeds": len(judged),
            "served on seeds": len(served),
            "served: F1 est. / true": (f"{mean(served, 'served F1 (est.)', name)} / "
                                       f"{mean(served, 'served F1 (true)', name)}"
                                       if len(served) else ""),
            "left out: F1 at t est. / true": (f"{mean(out, 'left out', name)} / "
                                              f"{mean(out, 'left out (true F1 at t)', name)}"
                                              if len(out) else ""),
        })
    return pd.DataFrame(out_rows)


def selective_main(silver: pd.DataFrame, seeds: int, bars, with_all_labels: bool) -> None:
    table = pd.DataFrame([selective_seed(silver, seed, bars) for seed in range(seeds)])
    print(f"selective imputation for {bars.describe()}: {len(silver)} postings, "
          f"{silver['category'].notna().sum()} labelled, a quarter of them hidden per seed\n")
    print(seeds_table(table).to_markdown(index=False))
    print()
    print(categories_table(table).to_markdown(index=False))
    print()
    for _, row in table.iterrows():
        left = ", ".join(f"{name} {f1:.2f}" for name, f1 in row["left out"].items()) or "none"
        print(f"seed {row['seed']}: accuracy 95 % CI {row['accuracy 95% CI']}, macro-F1 95 % CI "
              f"{row['macro-F1 95% CI']}; left out (F1 at t): {left}; not judged, served: "
              f"{short(set(row['served']) - set(row['judged']))}")
        if row["imputes"] != "yes":
            print(f"  {row['imputes']}")
    used = table["imputes"] == "yes"
    coverage_all = table["coverage (true)"].where(used, 0.0)
    right = table.loc[used, "accuracy (true)"]
    error = table["accuracy (est.)"] - table["accuracy (true)"]
    f1_error = table["macro-F1 (est.)"] - table["macro-F1 (true)"]
    print()
    print(f"the policy imputes on {used.sum()} of {len(table)} seeds; written right "
          f"{right.mean():.3f} on average over those (lowest {right.min():.3f}); coverage "
          f"{table.loc[used, 'coverage (true)'].mean():.3f} where it imputes, "
          f"{coverage_all.mean():.3f} over all {len(table)} (a seed imputing nothing counts 0)")
    print(f"at the candidate threshold (all seeds, used or not): written right "
          f"{table['accuracy (true)'].mean():.3f} (lowest {table['accuracy (true)'].min():.3f}), "
          f"coverage {table['coverage (true)'].mean():.3f}, macro-F1 "
          f"{table['macro-F1 (true)'].mean():.3f}")
    print(f"estimate error: accuracy mean absolute {error.abs().mean():.3f} (signed "
          f"{error.mean():+.3f}), macro-F1 mean absolute {f1_error.abs().mean():.3f} (signed "
          f"{f1_error.mean():+.3f}), coverage signed "
          f"{(table['coverage (est.)'] - table['coverage (true)']).mean():+.3f}")
    print(f"mean time {table['seconds'].mean():.1f} s a seed (choosing the policy and its nested "
          f"estimate: {table['seconds (policy)'].mean():.2f} s of it)")
    if not with_all_labels:
        return
    result = all_labels(silver, bars)
    policy = result["policy"]
    print()
    print(f"all {silver['category'].notna().sum()} labelled postings ({result['seconds']:.0f} s): "
          f"threshold {policy.threshold} (candidate {policy.candidate}); judged: "
          f"{short(policy.judged_categories)}; served: {short(policy.served)}; left out (F1 at "
          f"t, best F1 at any t): " + (", ".join(
              f"{name} {v['f1']:.2f} (best {v['best_f1']:.2f} at {v['best_threshold']:.2f})"
              for name, v in policy.left_out.items()) or "none"))
    print(f"  nested estimate: " + ", ".join(
        f"{name} {policy.estimate[name]:.3f} [{_ci(policy.estimate, name)}]"
        for name in ("coverage", "accuracy", "macro_f1") if name in policy.estimate))
    print(f"  served judged categories' F1: " + ", ".join(
        f"{name} {f1:.2f}" for name, f1 in policy.served_f1.items()))
    print(f"  {policy.reason}")
    print(f"  postings the API sent without a category: {result['without a category']}, "
          f"imputed {result['imputed']} ({result['imputed'] / max(1, result['without a category']):.1%}); "
          f"Unclassified by the model's guess: {result['unclassified by guess']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--method", choices=["holdout", "oof", "selective"], default="selective")
    parser.add_argument("--bars", type=float, nargs=2, default=(0.90, 0.70),
                        metavar=("ACCURACY", "MACRO_F1"))
    parser.add_argument("--no-all-labels", action="store_true",
                        help="skip the policy on every labelled posting (selective only)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    silver = silver_from_archive(Path(args.folder)).reset_index(drop=True)
    if args.method == "selective":
        from careerpulse_assets.core.decisions import Bars

        selective_main(silver, args.seeds, Bars(*args.bars), not args.no_all_labels)
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
