"""The category classifier: TF-IDF + cosine KNN over title and description (the seed's method).

Plain functions over lists and DataFrames; the `knn_classifier` asset wires them to MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

SEED_K_GRID = (3, 5, 7, 10, 15)
CV_FOLDS = 5
HOLDOUT_FRACTION = 0.2
RANDOM_STATE = 42
MAX_FEATURES = 10_000
# A category needs this many labelled postings to be learned: the fewest that, after the
# stratified 80/20 hold-out (7 -> 5 train + 2 test), leave one posting per CV fold. Rarer
# categories keep their own label in silver but are not training classes, so the model never
# predicts them. (Raising it removes the hardest classes and flatters macro-F1: on the shared
# postings the seed scores 0.62 at 7, 0.71 at 10. Do not tune it to pass the check.)
MIN_POSTINGS_PER_CATEGORY = 7


class NotEnoughLabels(ValueError):
    """Too few labelled postings to train and evaluate a classifier."""


def model_input(postings: pd.DataFrame) -> pd.DataFrame:
    """What the model reads: a `text` column of title + " " + description text.

    A named column (rather than a bare list of strings) is what MLflow's signature and
    serving pass through unchanged, so the registered model scores the same input as here.
    """
    text = postings["title"].fillna("") + " " + postings["description_text"].fillna("")
    return pd.DataFrame({"text": text}).reset_index(drop=True)


def seed_pipeline(k: int = 5) -> Pipeline:
    tfidf = TfidfVectorizer(max_features=MAX_FEATURES, stop_words="english", sublinear_tf=True)
    return Pipeline(
        [
            ("features", ColumnTransformer([("tfidf", tfidf, "text")])),
            ("knn", KNeighborsClassifier(n_neighbors=k, metric="cosine")),
        ]
    )


@dataclass(frozen=True)
class TrainingSet:
    features: pd.DataFrame
    labels: pd.Series
    excluded_categories: dict[str, int] = field(default_factory=dict)


def training_set(
    silver: pd.DataFrame, min_postings: int = MIN_POSTINGS_PER_CATEGORY
) -> TrainingSet:
    """Labelled postings of the categories common enough to learn; the rest reported."""
    labelled = silver[silver["category"].notna()]
    counts = labelled["category"].value_counts()
    learnable = counts[counts >= min_postings].index
    kept = labelled[labelled["category"].isin(learnable)]
    return TrainingSet(
        features=model_input(kept),
        labels=kept["category"].reset_index(drop=True),
        excluded_categories={
            str(name): int(n) for name, n in counts[counts < min_postings].items()
        },
    )


@dataclass(frozen=True)
class Evaluation:
    k: int
    cv_macro_f1_by_k: dict[int, float]
    accuracy: float
    macro_f1: float
    weighted_f1: float
    n_train: int
    n_holdout: int
    classes: list[str]


def _usable_k_grid(k_grid: tuple[int, ...], n_train: int) -> list[int]:
    smallest_fold_train = n_train - int(np.ceil(n_train / CV_FOLDS))
    usable = [k for k in k_grid if k <= smallest_fold_train]
    if not usable:
        raise NotEnoughLabels(
            f"{n_train} training postings leave CV folds too small for any k in {k_grid}"
        )
    return usable


def evaluate_seed_knn(training: TrainingSet, k_grid: tuple[int, ...] = SEED_K_GRID) -> Evaluation:
    """Choose k by stratified 5-fold CV on macro-F1, then score it on a stratified 80/20 hold-out."""
    n_classes = training.labels.nunique()
    if n_classes < 2:
        raise NotEnoughLabels(
            f"need at least 2 categories with {MIN_POSTINGS_PER_CATEGORY}+ labelled postings, "
            f"found {n_classes} ({len(training.labels)} postings); "
            f"too rare to learn: {training.excluded_categories}"
        )
    x_train, x_test, y_train, y_test = train_test_split(
        training.features,
        training.labels,
        test_size=HOLDOUT_FRACTION,
        stratify=training.labels,
        random_state=RANDOM_STATE,
    )
    ks = _usable_k_grid(k_grid, len(x_train))
    search = GridSearchCV(
        seed_pipeline(),
        {"knn__n_neighbors": ks},
        cv=StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=RANDOM_STATE),
        scoring="f1_macro",
    )
    search.fit(x_train, y_train)
    predicted = search.best_estimator_.predict(x_test)
    return Evaluation(
        k=int(search.best_params_["knn__n_neighbors"]),
        cv_macro_f1_by_k={
            int(k): float(score)
            for k, score in zip(ks, search.cv_results_["mean_test_score"], strict=True)
        },
        accuracy=float(accuracy_score(y_test, predicted)),
        macro_f1=float(f1_score(y_test, predicted, average="macro")),
        weighted_f1=float(f1_score(y_test, predicted, average="weighted")),
        n_train=len(x_train),
        n_holdout=len(x_test),
        classes=sorted(training.labels.unique().tolist()),
    )


def fit_seed_knn(training: TrainingSet, k: int) -> Pipeline:
    """The model used for imputation: the chosen k, refitted on every learnable posting."""
    return seed_pipeline(k).fit(training.features, training.labels)


def impute_categories(
    silver: pd.DataFrame, model: Pipeline, model_version: str
) -> pd.DataFrame:
    """Every silver posting, with a category: observed ones kept, missing ones predicted.

    `imputation_confidence` is the share of the k neighbours that voted for the predicted
    category; it and `model_version` are NULL on rows whose category was observed.
    """
    imputed = silver.copy()
    missing = imputed["category"].isna()
    imputed["is_imputed"] = missing
    imputed["imputation_confidence"] = np.nan
    imputed["model_version"] = None
    if missing.any():
        probabilities = model.predict_proba(model_input(imputed.loc[missing]))
        best = probabilities.argmax(axis=1)
        imputed.loc[missing, "category"] = model.classes_[best]
        imputed.loc[missing, "imputation_confidence"] = probabilities.max(axis=1)
        imputed.loc[missing, "model_version"] = model_version
    return imputed


@dataclass(frozen=True)
class TrainedClassifier:
    """What `knn_classifier` hands downstream: the fitted model and how it scored."""

    model: Pipeline
    evaluation: Evaluation
    model_version: str
    mlflow_run_id: str
    excluded_categories: dict[str, int]
