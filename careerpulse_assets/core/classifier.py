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
    # The reference for drift: the category mix it learned, and the share of postings that had
    # no category when it was trained.
    training_counts: dict[str, int] = field(default_factory=dict)
    unlabelled_share: float | None = None
    retrained: bool = True
    retrain_reason: str | None = None  # set when trained although the labels were unchanged


def impute_categories(
    silver: pd.DataFrame, model: Pipeline, model_version: str
) -> pd.DataFrame:
    """Every silver posting, with a category: observed ones kept, missing ones predicted.

    `imputation_confidence` is the winning category's share of the (weighted, prior-corrected)
    neighbour votes; it and `model_version` are NULL on rows whose category was observed.
    """
    imputed = silver.copy()
    missing = imputed["category"].isna()
    imputed["is_imputed"] = missing
    imputed["imputation_confidence"] = np.nan
    imputed["model_version"] = None
    if missing.any():
        probabilities = model.predict_proba(model_input(imputed.loc[missing]))
        imputed.loc[missing, "category"] = model.classes_[probabilities.argmax(axis=1)]
        imputed.loc[missing, "imputation_confidence"] = probabilities.max(axis=1)
        imputed.loc[missing, "model_version"] = model_version
    return imputed
