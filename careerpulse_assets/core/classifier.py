"""The trained category classifier as the rest of the graph sees it, and imputation with it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from .knn import model_input
from .selective import ImputationPolicy

# The category of a posting without one that the model in service may not impute: counted in
# gold like any category, so gold still sums to silver and every series stays gap-free.
UNCLASSIFIED = "Unclassified"


@dataclass(frozen=True)
class Evaluation:
    """How a model scored: what the quality gate, the summary and the UI read."""

    chosen: str  # its settings, in words
    # accuracy, macro_f1, weighted_f1, each with _ci_low / _ci_high (95 %)
    estimate: dict[str, float]
    postings: int  # labelled postings the estimate rests on
    method: str  # how it was estimated, in words
    excluded_categories: dict[str, int] = field(default_factory=dict)  # too rare to learn
    reliability: list[dict] = field(default_factory=list)  # accuracy by confidence bucket
    most_confused: list[dict] = field(default_factory=list)
    confusion: pd.DataFrame | None = None  # true × predicted
    confusion_png: bytes | None = None  # the same, drawn once


@dataclass(frozen=True)
class DriftReference:
    """What a model learned from: the category mix (the drift check's reference), the share of
    postings without a category then, and how many of its labels reviewers gave."""

    training_counts: dict[str, int] = field(default_factory=dict)
    unlabelled_share: float | None = None
    reviewer_labels: int = 0


# evaluation.json: what a stored model's Evaluation and DriftReference are read back from (the
# confusion matrix and its picture are artifacts of their own).
# (`reviewer_labels` came later: a summary without it counts none.)
SUMMARY_KEYS = ("chosen", "estimate", "postings", "method", "excluded_categories",
                "reliability", "most_confused", "training_counts", "unlabelled_share")


def summary_of(evaluation: Evaluation, reference: DriftReference) -> dict:
    return {
        "chosen": evaluation.chosen, "estimate": evaluation.estimate,
        "postings": evaluation.postings, "method": evaluation.method,
        "excluded_categories": evaluation.excluded_categories,
        "reliability": evaluation.reliability, "most_confused": evaluation.most_confused,
        "training_counts": reference.training_counts,
        "unlabelled_share": reference.unlabelled_share,
        "reviewer_labels": reference.reviewer_labels,
    }


def from_summary(
    summary: dict, confusion: pd.DataFrame, confusion_png: bytes
) -> tuple[Evaluation, DriftReference]:
    """summary_of's inverse; KeyError when a key is missing (written by older code)."""
    evaluation = Evaluation(
        chosen=summary["chosen"], estimate=summary["estimate"], postings=summary["postings"],
        method=summary["method"], excluded_categories=summary["excluded_categories"],
        reliability=summary["reliability"], most_confused=summary["most_confused"],
        confusion=confusion, confusion_png=confusion_png,
    )
    reference = DriftReference(summary["training_counts"], summary["unlabelled_share"],
                               summary.get("reviewer_labels", 0))
    return evaluation, reference


@dataclass(frozen=True)
class Outcome:
    """What this run decided about the classifier, and why."""

    retrained: bool
    reason: str
    labelled_changes: int = 0  # since the model in service was trained
    challenger_version: str | None = None  # trained in this run
    promotion: str | None = None  # why the challenger was or was not promoted
    comparison: dict[str, float] = field(default_factory=dict)  # champion vs challenger figures


@dataclass(frozen=True)
class ServingClassifier:
    """What `knn_classifier` hands downstream: the model in service after this run, and what
    it may impute (`policy`: the confidence threshold, the categories served and the estimate of
    what it writes)."""

    model: Pipeline
    version: str  # models:/careerpulse-knn-category/N
    run_id: str  # its MLflow run
    evaluation: Evaluation
    reference: DriftReference
    outcome: Outcome
    policy: ImputationPolicy
    # Not champion yet: imputed_silver (which runs only when the blocking checks passed) sets
    # the MLflow alias `champion` on it.
    becomes_champion: bool = False


# What the model says of a posting without a category, written or not; `earlier` predictions
# carry the same.
PREDICTION_COLUMNS = ["predicted_category", "imputation_confidence", "runner_up_category",
                      "runner_up_share"]


def impute_categories(
    silver: pd.DataFrame,
    model: Pipeline | None,
    model_version: str | None,
    threshold: float | None,
    served: Collection[str],
    earlier: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, int]:
    """Every silver posting, with a category: observed ones kept (`category_source` `api` or
    `label`); missing ones imputed (`imputed`, `is_imputed`) when the model's confidence is at
    least `threshold` and its guess is one of the `served` categories, else `Unclassified`
    (`unclassified`; `threshold` None: every one, as without a model). Returns the frame and how
    many postings were predicted in this call (the rest were observed or kept from `earlier`).

    On every posting the model judged (imputed or not): `predicted_category` (its guess),
    `imputation_confidence` (the guess's share of the weighted, prior-corrected neighbour
    votes), `runner_up_category` / `runner_up_share` (the next one's) and `model_version`; NULL
    on observed rows. `earlier` holds predictions this same model version made before
    (posting_id, bronze_row_id and the columns above): a posting whose silver row is still the
    one predicted then keeps them, so a run predicts only what is new or changed, and a changed
    threshold re-sorts them without predicting again.
    """
    imputed = silver.reset_index(drop=True)
    missing = imputed["category"].isna()
    imputed["is_imputed"] = False
    imputed["predicted_category"] = None
    imputed["imputation_confidence"] = np.nan
    imputed["runner_up_category"] = None
    imputed["runner_up_share"] = np.nan
    imputed["model_version"] = None
    to_predict = missing & (model is not None)
    if model is not None:
        imputed.loc[missing, "model_version"] = model_version
    if model is not None and earlier is not None and len(earlier):
        keys = ["posting_id", "bronze_row_id"]
        known = imputed.loc[missing, keys].reset_index().merge(earlier, on=keys, how="inner")
        for column in PREDICTION_COLUMNS:
            imputed.loc[known["index"], column] = known[column].to_numpy()
        to_predict = to_predict & ~imputed.index.isin(known["index"])
    if to_predict.any():
        probabilities = model.predict_proba(model_input(imputed.loc[to_predict]))
        order = np.argsort(-probabilities, axis=1, kind="stable")
        rows = np.arange(len(probabilities))
        imputed.loc[to_predict, "predicted_category"] = model.classes_[order[:, 0]]
        imputed.loc[to_predict, "imputation_confidence"] = probabilities[rows, order[:, 0]]
        if probabilities.shape[1] > 1:
            second = probabilities[rows, order[:, 1]]
            imputed.loc[to_predict, "runner_up_category"] = np.where(
                second > 0, model.classes_[order[:, 1]], None)
            imputed.loc[to_predict, "runner_up_share"] = second
    written = missing & (imputed["imputation_confidence"] >= (
        np.inf if threshold is None else threshold)) & imputed["predicted_category"].isin(
        list(served))
    imputed.loc[written, "category"] = imputed.loc[written, "predicted_category"]
    imputed.loc[written, "category_source"] = "imputed"
    imputed.loc[written, "is_imputed"] = True
    unclassified = missing & ~written
    imputed.loc[unclassified, "category"] = UNCLASSIFIED
    imputed.loc[unclassified, "category_source"] = "unclassified"
    return imputed, int(to_predict.sum())
