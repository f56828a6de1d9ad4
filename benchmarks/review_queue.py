"""Does labelling the review queue's first postings help more than labelling random ones?

    .venv/bin/python -m benchmarks.review_queue ../shared/data/muse [--seeds 6] [--labels 30]

For each seed a random quarter of the labelled shared postings lose their category (the hidden
postings: the only imputed postings whose truth is known). The classifier is chosen and fitted
as `knn_classifier` deploys it, the hidden postings are imputed, and the review queue is ordered
by each rule. Then, separately for each rule and for 30 hidden postings drawn at random, those
30 get their hidden category as reviewers' labels, the classifier (the settings chosen before,
so only the labels differ) is fitted again, and accuracy and macro-F1 are scored on the hidden postings that none of the ways labelled (the
same postings for all). The gain is the rule's score minus random's, per seed; the table gives
its mean and standard deviation. Beside the model's scores: how many of the 30 were wrong
guesses the labels corrected, and the accuracy a user sees in `imputed_silver` over every hidden
posting (a labelled one counts as right).
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from careerpulse_assets.classification.serving import calibrate_model, impute_categories
from careerpulse_assets.classification.evaluation import labelled_set
from careerpulse_assets.classification.knn import model_input
from careerpulse_assets.review.queue import RULES, recall_by_category, review_queue
from careerpulse_assets.classification.model_selection import KnnGrid, fit_knn, select_knn, selection_sample
from careerpulse_assets.classification.training import train

from .classifier_comparison import silver_from_archive


def chosen_settings(silver: pd.DataFrame):
    """The settings `knn_classifier` deploys: the grid's best by CV on the labelled postings."""
    labelled = labelled_set(silver)
    sample = selection_sample(labelled.labels)
    return select_knn(labelled.postings.iloc[sample], labelled.labels.iloc[sample], KnnGrid()).best


def fitted(silver: pd.DataFrame, settings):
    labelled = labelled_set(silver)
    return fit_knn(labelled.postings, labelled.labels, settings)


def scores(model, postings: pd.DataFrame) -> tuple[float, float]:
    predicted = model.predict(model_input(postings))
    truth = postings["category"]
    learned = truth.isin(model.classes_).to_numpy()
    return (accuracy_score(truth, predicted),
            f1_score(truth[learned], predicted[learned], average="macro", zero_division=0))


def one_seed(silver: pd.DataFrame, seed: int, n_labels: int) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(seed)
    labelled = silver.index[silver["category"].notna()].to_numpy()
    hidden = rng.choice(labelled, size=round(len(labelled) * 0.25), replace=False)
    visible = silver.copy()
    truth = silver.loc[hidden, "category"]
    visible.loc[hidden, "category"] = None
    settings = chosen_settings(visible)
    model = fitted(visible, settings)
    # The gate's out-of-fold confusion gives the recall the low_recall_margin rule weighs by;
    # its out-of-fold scores the calibration the queue's probabilities come from.
    training = train(labelled_set(visible), KnnGrid(ks=(5,), prior_alphas=(0.0,)), None)
    confusion = training.challenger.tables.confusion
    calibration = calibrate_model(training.challenger.oof)
    # Every guess written, as the queue orders guesses whether they are written or not.
    every_guess = dataclasses.replace(calibration, policy=dataclasses.replace(
        calibration.policy, threshold=0.0, withheld={}))
    candidates = visible.loc[hidden].assign(bronze_row_id=0, category_source=None)
    imputed = impute_categories(candidates, model, "v1", every_guess).frame
    imputed["text_key"] = imputed["title"].fillna("") + "\x1f" + imputed["description_text"].fillna("")
    picks = {rule: review_queue(imputed, rule, recall_by_category(confusion))["posting_id"]
             .head(n_labels).tolist() for rule in RULES}
    picks["random"] = rng.choice(imputed["posting_id"].to_numpy(), n_labels, replace=False).tolist()
    index_of = dict(zip(silver["posting_id"], silver.index, strict=True))
    chosen = {way: [index_of[pid] for pid in ids] for way, ids in picks.items()}
    scored_on = np.setdiff1d(hidden, np.concatenate(list(chosen.values())))
    results = {}
    for way, rows in chosen.items():
        relabelled = visible.copy()
        relabelled.loc[rows, "category"] = truth.loc[rows]
        # The settings stay those chosen before the labels: every way is scored with the same
        # model settings, so the difference is the 30 labels, not a different grid choice.
        refitted = fitted(relabelled, settings)
        accuracy, macro_f1 = scores(refitted, silver.loc[scored_on])
        # What a user sees in imputed_silver: a labelled posting is right, the rest as imputed.
        served = pd.Series(refitted.predict(model_input(silver.loc[hidden])), index=hidden)
        served.loc[rows] = truth.loc[rows]
        guessed = imputed.set_index("posting_id")["category"]
        fixed = sum(guessed[silver.at[i, "posting_id"]] != truth[i] for i in rows)
        results[way] = (accuracy, macro_f1, fixed, float((served == truth).mean()))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--labels", type=int, default=30)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    silver = silver_from_archive(Path(args.folder)).reset_index(drop=True)
    per_seed = [one_seed(silver, seed, args.labels) for seed in range(args.seeds)]
    rows = []
    for way in [*RULES, "random"]:
        accuracy = np.array([s[way][0] for s in per_seed])
        macro = np.array([s[way][1] for s in per_seed])
        gain_accuracy = accuracy - np.array([s["random"][0] for s in per_seed])
        gain_macro = macro - np.array([s["random"][1] for s in per_seed])
        rows.append({
            "labels from": way, "accuracy (mean)": accuracy.mean(), "macro-F1 (mean)": macro.mean(),
            "accuracy gain vs random": f"{gain_accuracy.mean():+.3f} ± {gain_accuracy.std(ddof=1):.3f}",
            "macro-F1 gain vs random": f"{gain_macro.mean():+.3f} ± {gain_macro.std(ddof=1):.3f}",
            "seeds where macro-F1 > / = / < random": "{} / {} / {}".format(
                int((gain_macro > 1e-9).sum()), int((abs(gain_macro) <= 1e-9).sum()),
                int((gain_macro < -1e-9).sum())),
            "wrong guesses corrected (mean)": np.mean([s[way][2] for s in per_seed]),
            "served accuracy on hidden (mean)": np.mean([s[way][3] for s in per_seed]),
            "served accuracy gain vs random": "{:+.3f} ± {:.3f}".format(
                np.mean(served := np.array([s[way][3] - s["random"][3] for s in per_seed])),
                served.std(ddof=1)),
        })
    print(f"{args.seeds} seeds, {args.labels} labels each, scored on the hidden postings no way "
          f"labelled (gain: mean ± standard deviation over seeds)\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))
    print("\nper seed, macro-F1:")
    print(pd.DataFrame([{way: round(s[way][1], 3) for way in s} for s in per_seed]).to_markdown())


if __name__ == "__main__":
    main()
