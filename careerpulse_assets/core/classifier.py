"""The trained category classifier as the rest of the graph sees it, and imputation with it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from .knn import model_input


@dataclass(frozen=True)
class TrainedClassifier:
    """What `knn_classifier` hands downstream: the fitted model and how it scored."""

    model: Pipeline
    chosen: str
    holdout: dict[str, float]  # accuracy, macro_f1, weighted_f1 and their _ci_low / _ci_high
    n_holdout: int
    model_version: str
    mlflow_run_id: str
    training_fingerprint: str
    excluded_categories: dict[str, int] = field(default_factory=dict)
    reliability: list[dict] = field(default_factory=list)  # accuracy by confidence bucket
    most_confused: list[dict] = field(default_factory=list)
    confusion: pd.DataFrame | None = None  # hold-out confusion matrix, true × predicted
    confusion_png: bytes | None = None  # the same as a picture, drawn once when trained
    # The reference for drift: the category mix it learned, and the share of postings that had
    # no category when it was trained.
    training_counts: dict[str, int] = field(default_factory=dict)
    unlabelled_share: float | None = None
    retrained: bool = True
    retrain_reason: str | None = None  # set when trained although the labels were unchanged
    # Reused although some labelled postings changed since training (too few to retrain for).
    labelled_changes_since_training: int = 0
    # Learnable postings the hold-out and time-ordered evaluations ran on (all, or a sample).
    evaluated_postings: int | None = None


def impute_categories(
    silver: pd.DataFrame,
    model: Pipeline,
    model_version: str,
    earlier: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, int]:
    """Every silver posting, with a category: observed ones kept, missing ones predicted; and
    how many were predicted (the rest were observed or kept from `earlier`).

    `imputation_confidence` is the winning category's share of the (weighted, prior-corrected)
    neighbour votes; it and `model_version` are NULL on rows whose category was observed.
    `earlier` holds imputations this same model version made before (posting_id,
    bronze_row_id, category, imputation_confidence): a posting whose silver row is still the
    one imputed then keeps them, so a run predicts only what is new or changed.
    """
    imputed = silver.reset_index(drop=True)
    missing = imputed["category"].isna()
    imputed["is_imputed"] = missing
    imputed["imputation_confidence"] = np.nan
    imputed["model_version"] = None
    imputed.loc[missing, "model_version"] = model_version
    to_predict = missing
    if earlier is not None and len(earlier):
        keys = ["posting_id", "bronze_row_id"]
        known = imputed.loc[missing, keys].reset_index().merge(earlier, on=keys, how="inner")
        imputed.loc[known["index"], "category"] = known["category"].to_numpy()
        imputed.loc[known["index"], "imputation_confidence"] = known["imputation_confidence"].to_numpy()
        to_predict = missing & ~imputed.index.isin(known["index"])
    if to_predict.any():
        probabilities = model.predict_proba(model_input(imputed.loc[to_predict]))
        imputed.loc[to_predict, "category"] = model.classes_[probabilities.argmax(axis=1)]
        imputed.loc[to_predict, "imputation_confidence"] = probabilities.max(axis=1)
    return imputed, int(to_predict.sum())
