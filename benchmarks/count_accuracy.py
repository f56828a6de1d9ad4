"""How far are the counts of the postings without a category from the truth? (issue 26)

    .venv/bin/python -m benchmarks.count_accuracy ../shared/data/muse [--seeds 6] [--bags 3]

For each seed a random quarter of the labelled postings lose their category, as if the API had
sent none. The classifier is trained on the rest exactly as `knn_classifier` trains it
(`classification.training.train`) and calibrated as it is (`classification.serving.calibrate_model`). The
postings counted are drawn two ways:

- **random**: the hidden quarter as it is (its mix is the labelled postings');
- **shifted**: `--bags` samples of as many postings drawn with replacement from the hidden
  quarter at a category mix drawn from a flat Dirichlet over the learned categories in it (the
  artificial prevalence protocol; Forman 2008). Postings of categories too rare to learn are
  left out of these samples (their share would be drawn at random too).

On each draw, the L1 distance between estimated and true category shares (0 exact, 2 all
wrong; a category the model does not know counts fully as error) for: the **hard counts** gold
keeps in `postings` (the categories written per posting; the Unclassified attributed to nothing),
**CC** (the KNN's top class counted), **PCC**, **ACC**, **PACC** and **EMQ** (QuaPy, on the
calibrated probabilities), and the method the pipeline **chose** (`estimate_counts`: PCC, or PACC
where its shift test fires); the share of (category, draw) pairs whose true total lies in the
chosen method's 90 % interval (over the learned categories; and over every category present,
one the model does not know counting as a miss); per posting, the written categories' precision
and coverage. Per seed also the calibration out-of-fold: Brier score and calibration error of
the KNN's vote shares and of the calibrated probabilities.

Last (without `--no-all-labels`): the model trained on every labelled posting counts the postings
the API sent without a category (no truth: what `make run` shows).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from careerpulse_assets.classification.serving import calibrate_model
from careerpulse_assets.classification.evaluation import labelled_set
from careerpulse_assets.classification.knn import model_input
from careerpulse_assets.series.quantification import (
    METHODS,
    estimate_counts,
    prevalence,
    share_error,
)
from careerpulse_assets.classification.model_selection import KnnGrid
from careerpulse_assets.classification.training import train

from .classifier_comparison import silver_from_archive

HIDDEN_SHARE = 0.25
GOALS = ("the chosen method ≤ 0.5 × the hard counts' error on both kinds of draw and no worse "
         "than CC; the 90 % intervals hold ≥ 85 % of (category, draw) totals; written right ≥ "
         "0.90 on average at coverage ≥ 0.80 on the random draws")


def hidden_positions(silver: pd.DataFrame, seed: int) -> np.ndarray:
    """A random quarter of the labelled postings' positions (the same draw as every earlier
    version of this benchmark, gate_accuracy.py included)."""
    rng = np.random.default_rng(seed)
    labelled = silver.index[silver["category"].notna()].to_numpy()
    return rng.choice(labelled, size=round(len(labelled) * HIDDEN_SHARE), replace=False)


def shifted_draws(truth: np.ndarray, learned: np.ndarray, seed: int, bags: int
                  ) -> list[np.ndarray]:
    """`bags` samples (positions into `truth`, with replacement) of len(truth) postings of the
    learned categories at mixes drawn from a flat Dirichlet."""
    rng = np.random.default_rng(10_000 + seed)
    present = [c for c in learned if (truth == c).any()]
    out = []
    for _ in range(bags):
        counts = rng.multinomial(len(truth), rng.dirichlet(np.ones(len(present))))
        out.append(np.concatenate([rng.choice(np.flatnonzero(truth == c), size=k, replace=True)
                                   for c, k in zip(present, counts, strict=True) if k]))
    return out


def hard_shares(categories: np.ndarray, written: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Shares of `classes` among all postings counted by the category written (none for the
    ones left Unclassified)."""
    return np.array([((categories == c) & written).sum() for c in classes]) / len(categories)


def one_draw(kind: str, truth: np.ndarray, scores: np.ndarray, calibration, classes) -> dict:
    counting = calibration.counting
    estimate = estimate_counts(counting, scores)
    probabilities = estimate.probabilities
    counted = estimate.classes
    predicted = counted[probabilities.argmax(axis=1)]
    written = calibration.policy.rule.writes(predicted, probabilities.max(axis=1))
    calibrated = counting.calibration.predict_proba(scores)
    row = {"kind": kind, "postings": len(truth), "chosen method": estimate.method,
           "shift statistic": estimate.shift.statistic, "shift critical": estimate.shift.critical,
           "hard counts": share_error(hard_shares(predicted, written, classes), classes, truth),
           "CC": share_error(hard_shares(classes[scores.argmax(axis=1)],
                                         np.ones(len(truth), bool), classes), classes, truth)}
    for method in METHODS:
        if method != "CC":
            row[method] = share_error(prevalence(method, classes, counting.reference,
                                                 counting.reference_labels, calibrated),
                                      classes, truth)
    row["chosen"] = share_error(estimate.counts / len(truth), counted, truth)
    true_counts = np.array([(truth == c).sum() for c in counted])
    inside = (estimate.low - 1e-9 <= true_counts) & (true_counts <= estimate.high + 1e-9)
    learned = np.isin(counted, classes)
    unknown_present = len(set(truth) - set(counted))
    direct = (probabilities.max(axis=1) >= calibration.policy.min_precision) & ~np.isin(
        predicted, list(calibration.policy.withheld))
    row |= {"direct written": int(direct.sum()),
            "direct right": int((predicted[direct] == truth[direct]).sum())}
    row |= {"inside": int(inside[learned].sum()), "intervals": int(learned.sum()),
            "inside (all)": int(inside.sum()), "intervals (all)": len(counted) + unknown_present,
            "interval width": float((estimate.high - estimate.low).mean()),
            "written": int(written.sum()),
            "written right": int((predicted[written] == truth[written]).sum()),
            "expected error": estimate.expected_l1}
    return row


def seed_rows(silver: pd.DataFrame, seed: int, bags: int) -> tuple[list[dict], dict]:
    hidden = hidden_positions(silver, seed)
    visible = silver.drop(index=hidden)
    started = time.monotonic()
    training = train(labelled_set(visible), KnnGrid())
    calibration = calibrate_model(training.challenger.oof)
    seconds = time.monotonic() - started
    classes = np.asarray(training.model.classes_)
    truth_frame = silver.loc[hidden]
    truth = truth_frame["category"].to_numpy(dtype=object).astype(str)
    scores = training.model.predict_proba(model_input(truth_frame))
    rows = [one_draw("random", truth, scores, calibration, classes)]
    for positions in shifted_draws(truth, classes, seed, bags):
        rows.append(one_draw("shifted", truth[positions], scores[positions], calibration,
                             classes))
    report = calibration.report
    about = {"seed": seed, "hidden": len(hidden), "learned": len(classes),
             "seconds": seconds, **report.figures(),
             "threshold": calibration.policy.threshold,
             "withheld": ", ".join(calibration.policy.withheld) or "none",
             "nested precision": calibration.policy.estimate["precision"],
             "nested coverage": calibration.policy.estimate["coverage"]}
    return [{"seed": seed, **row} for row in rows], about


def summary(draws: pd.DataFrame) -> pd.DataFrame:
    """Mean L1 error per method and kind of draw, and the interval and per-posting figures."""
    methods = ["hard counts", "CC", "PCC", "ACC", "PACC", "EMQ", "chosen"]
    rows = []
    for kind, group in draws.groupby("kind", sort=False):
        row = {"draw": f"{kind} ({len(group)})"}
        row |= {method: f"{group[method].mean():.3f}" for method in methods}
        row["chosen: PCC / PACC"] = (f"{(group['chosen method'] == 'PCC').sum()} / "
                                     f"{(group['chosen method'] == 'PACC').sum()}")
        row["90 % intervals hold"] = (f"{group['inside'].sum() / group['intervals'].sum():.3f} "
                                      f"({group['inside (all)'].sum() / group['intervals (all)'].sum():.3f} all)")
        row["written right"] = f"{group['written right'].sum() / max(1, group['written'].sum()):.3f}"
        row["coverage"] = f"{group['written'].sum() / group['postings'].sum():.3f}"
        row["written if p ≥ bar"] = (f"{group['direct right'].sum() / max(1, group['direct written'].sum()):.3f} at "
                         f"{group['direct written'].sum() / group['postings'].sum():.3f}")
        row["expected error"] = f"{group['expected error'].mean():.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def goals(draws: pd.DataFrame) -> list[str]:
    lines = []
    for kind, group in draws.groupby("kind", sort=False):
        chosen, hard, cc = group["chosen"].mean(), group["hard counts"].mean(), group["CC"].mean()
        lines.append(f"{kind}: chosen {chosen:.3f} = {chosen / hard:.2f} × hard counts "
                     f"({hard:.3f}; goal ≤ 0.5), {'≤' if chosen <= cc else '>'} CC {cc:.3f}")
    inside = draws["inside"].sum() / draws["intervals"].sum()
    inside_all = draws["inside (all)"].sum() / draws["intervals (all)"].sum()
    lines.append(f"90 % intervals hold {inside:.3f} of (learned category, draw) totals, "
                 f"{inside_all:.3f} counting categories the model does not know (goal ≥ 0.85)")
    random = draws[draws["kind"] == "random"]
    precision = random["written right"] / random["written"].clip(lower=1)
    coverage = random["written"] / random["postings"]
    lines.append(f"random draws: written right {precision.mean():.3f} on average (lowest "
                 f"{precision.min():.3f}) at coverage {coverage.mean():.3f} (goal ≥ 0.90 at ≥ 0.80)")
    return lines


def all_labels(silver: pd.DataFrame) -> list[str]:
    """The model trained on every labelled posting, counting the postings without a category."""
    training = train(labelled_set(silver), KnnGrid())
    calibration = calibrate_model(training.challenger.oof)
    missing = silver[silver["category"].isna()]
    scores = training.model.predict_proba(model_input(missing))
    estimate = estimate_counts(calibration.counting, scores)
    classes = estimate.classes
    predicted = classes[estimate.probabilities.argmax(axis=1)]
    written = calibration.policy.rule.writes(predicted, estimate.probabilities.max(axis=1))
    lines = [f"every labelled posting: {estimate.describe()}",
             f"  per posting: {calibration.policy.reason}; written on {written.sum()} of "
             f"{len(missing)} postings without a category "
             f"({pd.Series(predicted[written]).value_counts().to_dict()})",
             f"  calibration: {calibration.report.describe()}"]
    order = np.argsort(-estimate.counts)
    lines += [f"  {classes[i]}: {estimate.counts[i]:.1f} [{estimate.low[i]:.1f}, "
              f"{estimate.high[i]:.1f}]" for i in order if estimate.high[i] > 0.05]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--bags", type=int, default=3, help="shifted draws per seed")
    parser.add_argument("--no-all-labels", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    silver = silver_from_archive(Path(args.folder)).reset_index(drop=True)
    draws, seeds = [], []
    for seed in range(args.seeds):
        rows, about = seed_rows(silver, seed, args.bags)
        draws += rows
        seeds.append(about)
    draws = pd.DataFrame(draws)
    print(f"{len(silver)} postings, {silver['category'].notna().sum()} labelled, a quarter of "
          f"them hidden per seed; {args.seeds} seeds × (1 random + {args.bags} shifted draws)\n")
    print(summary(draws).to_markdown(index=False))
    print()
    print(pd.DataFrame(seeds).to_markdown(index=False, floatfmt=".3f"))
    print()
    for line in goals(draws):
        print(line)
    print(f"goals: {GOALS}")
    if not args.no_all_labels:
        print()
        for line in all_labels(silver):
            print(line)


if __name__ == "__main__":
    main()
