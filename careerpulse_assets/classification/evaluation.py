"""One evaluation protocol for every category classifier.

The `knn_classifier` asset, its checks and the benchmark all score models here, the same way:

- the labelled postings, with reposts (identical title + description) removed first so that a
  repost cannot sit in training and test at once, and categories too rare to learn set aside;
- a stratified 80/20 hold-out (random_state 42) and a time-ordered split (train on the oldest
  80 %, test on the newest 20 %: imputation runs on new postings);
- per split: accuracy, macro-F1, weighted-F1 with bootstrap 95 % intervals, the same scored
  against "any listed label" (a posting listed under several categories counts as right when the
  prediction is any of them), per-class precision / recall / F1, the confusion matrix and its
  most-confused pairs, and a reliability table (accuracy by confidence bucket).

Model selection (CV) happens inside the training part of each split, so test postings never
choose a setting.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from ..ingestion.postings import TEXT_KEY_SQL
from .knn import make_vectorizer, model_input
from .model_selection import (
    RANDOM_STATE,
    SELECTION_MAX_POSTINGS,
    KnnGrid,
    KnnParams,
    NotEnoughLabels,
    fit_knn,
    select_knn,
    selection_sample,
)

HOLDOUT_FRACTION = 0.2
# A category needs this many labelled postings (after removing reposts) to be learned: the
# fewest that, after the stratified 80/20 hold-out (7 -> 5 train + 2 test), leave one posting
# per CV fold. Rarer categories keep their own label in silver but are not training classes, so
# the model never predicts them. Raising it drops the hardest classes and flatters macro-F1;
# it is not a knob for passing the quality checks.
MIN_POSTINGS_PER_CATEGORY = 7
# A category enters the macro-F1 the gate judges when the estimate holds at least this many of
# its labelled postings, whether the model learns it or not: an F1 needs postings to be
# estimated. With n postings a category's recall (and so its F1) has a binomial standard error
# of about sqrt(0.25 / n): 0.19 at 7, as wide as the gap between a weak category and a good one,
# 0.11 at 20. Rarer categories still count in accuracy, and their postings written under a
# judged category count against its precision. Not a knob for passing the gate.
MIN_JUDGED_POSTINGS = 20
BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE_BUCKETS = (0.0, 0.5, 0.7, 0.9, 1.0)


@dataclass(frozen=True)
class LabelledSet:
    """Learnable labelled postings: silver's columns (posting_id, title, description_text,
    category, categories, publication_date, ...), one row per distinct text."""

    postings: pd.DataFrame
    excluded_categories: dict[str, int] = field(default_factory=dict)
    reposts_removed: int = 0
    # Postings of the categories too rare to learn: never trained on, but scored by the gate
    # (a model cannot impute them right, and the estimate should say so).
    rare: pd.DataFrame | None = None

    @property
    def labels(self) -> pd.Series:
        return self.postings["category"]

    @cached_property
    def row_hashes(self) -> np.ndarray:
        """One 64-bit hash per distinct (text, category), sorted: what a model learned from.
        Equal exactly when the training data is (texts or labels), whatever the order."""
        return _row_hashes(self.postings)

    @cached_property
    def reviewer_row_hashes(self) -> np.ndarray:
        """`row_hashes` of the postings whose category a reviewer gave (`category_source`
        'label'): a hash a model was not trained on is a reviewer's label new to it."""
        sources = self.postings.get("category_source")
        if sources is None:
            return np.array([], dtype=np.uint64)
        return _row_hashes(self.postings[sources.to_numpy() == "label"])


def _row_hashes(postings: pd.DataFrame) -> np.ndarray:
    rows = postings[["text_key", "category"]].fillna("")
    return np.unique(pd.util.hash_pandas_object(rows, index=False).to_numpy())




def text_keys(postings: pd.DataFrame) -> pd.Series:
    """`TEXT_KEY_SQL` computed in Python (equal, tested), for frames not read from DuckDB."""
    joined = postings["title"].fillna("") + "\x1f" + postings["description_text"].fillna("")
    return joined.map(lambda text: hashlib.md5(text.encode()).hexdigest())


# Above this many learnable postings the hold-out and time-ordered evaluations (selection, fit,
# scoring) run on a stratified sample of them: their neighbour queries grow with the square of
# the postings, 40 minutes at 85,000. The deployed model is fitted on every posting, and a KNN
# with more neighbours to choose from errs less, so the sample's scores are a conservative
# estimate of it.
EVALUATION_MAX_POSTINGS = 20_000


def evaluation_set(labelled: LabelledSet, max_postings: int = EVALUATION_MAX_POSTINGS) -> LabelledSet:
    """`labelled`, or a stratified sample of it when it holds more than `max_postings`."""
    sample = selection_sample(labelled.labels, max_postings)
    if len(sample) == len(labelled.postings):
        return labelled
    rare = labelled.rare
    if rare is not None and len(rare):
        rare = rare.sample(n=min(len(rare), max(1, round(len(rare) * len(sample) / len(labelled.postings)))),
                           random_state=RANDOM_STATE).sort_values("posting_id", kind="stable")
    return LabelledSet(
        postings=labelled.postings.iloc[sample].reset_index(drop=True),
        excluded_categories=labelled.excluded_categories,
        reposts_removed=labelled.reposts_removed,
        rare=rare,
    )


def judged_categories(truth, min_postings: int = MIN_JUDGED_POSTINGS) -> list[str]:
    """The categories whose F1 the judged macro-F1 averages: those `truth` (the categories of
    the postings an estimate rests on) holds at least `min_postings` times, sorted."""
    names, counts = np.unique(np.asarray(truth).astype(str), return_counts=True)
    return [str(name) for name in names[counts >= min_postings]]


def labelled_changes(trained_on: np.ndarray, now: np.ndarray) -> tuple[int, float]:
    """Labelled postings new, changed or gone since a model was trained, and their share of
    what it was trained on (a relabelled posting counts twice: its old row went, a new came)."""
    changed = int(np.setxor1d(trained_on, now, assume_unique=True).size)
    return changed, changed / max(1, len(trained_on))


def labelled_set(
    silver: pd.DataFrame, min_postings: int = MIN_POSTINGS_PER_CATEGORY
) -> LabelledSet:
    """The learnable labelled postings of `silver` (posting_id, category, category_source and
    `text_key`, or the texts it is computed from; the texts too when a model is to be fit),
    reposts removed; NotEnoughLabels when fewer than 2 categories are learnable."""
    # Sorted by id, so splits and the repost kept do not depend on the order rows were read in;
    # of reposts, one a reviewer labelled is kept (a reviewer's label is the one to learn).
    labelled = silver[silver["category"].notna()].sort_values("posting_id", kind="stable")
    if "text_key" not in labelled:
        labelled = labelled.assign(text_key=text_keys(labelled))
    by_reviewer = (labelled["category_source"] == "label" if "category_source" in labelled
                   else pd.Series(False, index=labelled.index))
    unique = (labelled.assign(_api=~by_reviewer).sort_values("_api", kind="stable")
              .drop_duplicates("text_key", keep="first")
              .sort_values("posting_id", kind="stable").drop(columns="_api"))
    counts = unique["category"].value_counts()
    learnable = counts[counts >= min_postings].index
    kept = unique[unique["category"].isin(learnable)].reset_index(drop=True)
    n_classes = kept["category"].nunique()
    if n_classes < 2:
        raise NotEnoughLabels(
            f"need at least 2 categories with {min_postings}+ labelled postings, found "
            f"{n_classes} ({len(kept)} postings); too rare to learn: "
            f"{ {str(k): int(v) for k, v in counts[counts < min_postings].items()} }"
        )
    return LabelledSet(
        postings=kept,
        excluded_categories={str(k): int(v) for k, v in counts[counts < min_postings].items()},
        reposts_removed=len(labelled) - len(unique),
        rare=unique[~unique["category"].isin(learnable)].reset_index(drop=True),
    )


# --- methods: fit on training postings, return a fitted model and what was chosen -----------

@dataclass(frozen=True)
class Fitted:
    model: Pipeline
    chosen: str
    knn_params: KnnParams | None = None
    cv_macro_f1: float | None = None


Method = Callable[[pd.DataFrame, pd.Series], Fitted]


def knn_method(grid: KnnGrid = KnnGrid(), max_selection: int = SELECTION_MAX_POSTINGS) -> Method:
    """The KNN with every variant of `grid` chosen among by 5-fold CV on macro-F1 (on a
    stratified sample of at most `max_selection` postings)."""

    def fit(postings: pd.DataFrame, labels: pd.Series) -> Fitted:
        sample = selection_sample(labels, max_selection)
        selection = select_knn(postings.iloc[sample], labels.iloc[sample], grid)
        chosen = selection.best.describe()
        if len(sample) < len(labels):
            chosen += f" (chosen on a sample of {len(sample):,} of {len(labels):,})"
        return Fitted(fit_knn(postings, labels, selection.best), chosen,
                      selection.best, selection.best_score)

    return fit


def logistic_regression_method(postings: pd.DataFrame, labels: pd.Series) -> Fitted:
    """The seed's comparison: class-weighted logistic regression on the same TF-IDF text."""
    model = Pipeline(
        [
            ("features", make_vectorizer(None)),
            ("logreg", LogisticRegression(class_weight="balanced", max_iter=2000)),
        ]
    )
    return Fitted(model.fit(model_input(postings), np.asarray(labels)),
                  "class-weighted logistic regression, C=1")


# --- scoring ---------------------------------------------------------------------------------

def _metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, average="macro", zero_division=0),
        "weighted_f1": f1_score(y_true, y_pred, average="weighted", zero_division=0),
    }


def metrics_from_confusions(
    confusions: np.ndarray, judged: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1 and weighted-F1 of a stack of confusion matrices (B × C × C, rows the
    truth).

    The same definitions as scikit-learn's: macro averages over the classes that occur in the
    truth or the predictions, weighted averages by true support, 0 where a ratio is undefined.
    `judged` (C booleans) restricts both F1 averages to those classes; their precision still
    counts every prediction of the class, whatever the truth. Accuracy is over every row. NaN
    where nothing is left to average (no postings, no judged class present).
    """
    true_positives = np.diagonal(confusions, axis1=1, axis2=2).astype(float)
    support = confusions.sum(axis=2)
    predicted = confusions.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positives / predicted, 0.0)
        recall = np.where(support > 0, true_positives / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        present = (support + predicted) > 0
        weighted_support = support
        if judged is not None:
            present = present & judged
            weighted_support = support * judged
        return {
            "accuracy": true_positives.sum(axis=1) / support.sum(axis=1),
            "macro_f1": (f1 * present).sum(axis=1) / present.sum(axis=1),
            "weighted_f1": (f1 * weighted_support).sum(axis=1) / weighted_support.sum(axis=1),
        }


def bootstrap_intervals(
    y_true: np.ndarray, y_pred: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES
) -> dict[str, tuple[float, float]]:
    """95 % percentile intervals of each metric over test sets resampled with replacement.

    Each resample is reduced to its confusion matrix at once (one bincount for all of them), so
    a thousand resamples cost about as much as one scikit-learn metric call per resample would
    cost for ten.
    """
    classes, codes = np.unique(np.concatenate([y_true, y_pred]).astype(str), return_inverse=True)
    n, c = len(y_true), len(classes)
    true_codes, pred_codes = codes[:n], codes[n:]
    picks = np.random.default_rng(RANDOM_STATE).integers(0, n, (resamples, n))
    cells = true_codes[picks] * c + pred_codes[picks] + (np.arange(resamples) * c * c)[:, None]
    confusions = np.bincount(cells.ravel(), minlength=resamples * c * c).reshape(resamples, c, c)
    return {
        name: (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))
        for name, values in metrics_from_confusions(confusions).items()
    }


def any_listed_label(y_true: np.ndarray, y_pred: np.ndarray, listed: pd.Series) -> np.ndarray:
    """The truth as "any listed label": the prediction where it is one of the listed ones."""
    return np.array(
        [pred if pred in (cats if cats is not None else ()) else true
         for true, pred, cats in zip(y_true, y_pred, listed, strict=True)],
        dtype=object,
    )


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    labels = sorted(set(y_true) | set(y_pred))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return pd.DataFrame(
        {"category": labels, "precision": precision, "recall": recall, "f1": f1,
         "support": support}
    )


def confusion_table(y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    labels = sorted(set(y_true) | set(y_pred))
    return pd.DataFrame(
        confusion_matrix(y_true, y_pred, labels=labels), index=labels, columns=labels
    ).rename_axis(index="true", columns="predicted")


def most_confused_pairs(confusion: pd.DataFrame, top: int = 5) -> list[dict]:
    """The largest off-diagonal cells, either direction counted together."""
    pairs: dict[tuple[str, str], int] = {}
    for true in confusion.index:
        for predicted in confusion.columns:
            if true != predicted and confusion.loc[true, predicted]:
                key = tuple(sorted((true, predicted)))
                pairs[key] = pairs.get(key, 0) + int(confusion.loc[true, predicted])
    ranked = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [{"pair": f"{a} / {b}", "errors": n} for (a, b), n in ranked]


def reliability_table(
    y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray,
    edges: tuple[float, ...] = CONFIDENCE_BUCKETS,
) -> pd.DataFrame:
    """Accuracy of the predictions in each confidence bucket [lo, hi) (the last one closed)."""
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence >= lo) & ((confidence < hi) | (hi == edges[-1]))
        n = int(inside.sum())
        rows.append(
            {
                "confidence": f"{lo:.1f}–{hi:.1f}",
                "postings": n,
                "accuracy": float((y_true[inside] == y_pred[inside]).mean()) if n else None,
                "mean_confidence": float(confidence[inside].mean()) if n else None,
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class SplitReport:
    split: str
    chosen: str
    n_train: int
    n_test: int
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    any_label_metrics: dict[str, float]
    per_class: pd.DataFrame
    confusion: pd.DataFrame
    most_confused: list[dict]
    reliability: pd.DataFrame
    fitted: Fitted | None = field(default=None, repr=False)

    def flat_metrics(self, prefix: str = "") -> dict[str, float]:
        """Every number, named for MLflow: holdout_macro_f1, holdout_macro_f1_ci_low, ..."""
        out = {}
        for name, value in self.metrics.items():
            low, high = self.intervals[name]
            out |= {f"{prefix}{self.split}_{name}": value,
                    f"{prefix}{self.split}_{name}_ci_low": low,
                    f"{prefix}{self.split}_{name}_ci_high": high}
        for name, value in self.any_label_metrics.items():
            out[f"{prefix}{self.split}_any_label_{name}"] = value
        return out


def holdout_split(labelled: LabelledSet) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(len(labelled.postings))
    return train_test_split(
        index, test_size=HOLDOUT_FRACTION, stratify=labelled.labels, random_state=RANDOM_STATE
    )


def time_split(labelled: LabelledSet) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(
        pd.to_datetime(labelled.postings["publication_date"], utc=True).to_numpy(), kind="stable"
    )
    n_test = int(np.ceil(len(order) * HOLDOUT_FRACTION))
    return order[:-n_test], order[-n_test:]


SPLITS = {"holdout": holdout_split, "time": time_split}


def split_report(
    split: str, chosen: str, n_train: int, test: pd.DataFrame, y_pred: np.ndarray,
    confidence: np.ndarray, fitted: Fitted | None = None,
) -> SplitReport:
    """Every figure of one split from the test postings and their predictions."""
    y_pred = np.asarray(y_pred, dtype=object)
    y_true = test["category"].to_numpy(dtype=object)
    confusion = confusion_table(y_true, y_pred)
    return SplitReport(
        split=split,
        chosen=chosen,
        n_train=n_train,
        n_test=len(test),
        metrics=_metrics(y_true, y_pred),
        intervals=bootstrap_intervals(y_true, y_pred),
        any_label_metrics=_metrics(any_listed_label(y_true, y_pred, test["categories"]), y_pred),
        per_class=per_class_table(y_true, y_pred),
        confusion=confusion,
        most_confused=most_confused_pairs(confusion),
        reliability=reliability_table(y_true, y_pred, confidence),
        fitted=fitted,
    )


def evaluate(labelled: LabelledSet, method: Method, split: str = "holdout") -> SplitReport:
    train_idx, test_idx = SPLITS[split](labelled)
    train, test = labelled.postings.iloc[train_idx], labelled.postings.iloc[test_idx]
    if train["category"].nunique() < 2:
        raise NotEnoughLabels(f"the {split} split leaves fewer than 2 categories to train on")
    fitted = method(train, train["category"])
    probabilities = fitted.model.predict_proba(model_input(test))
    y_pred = fitted.model.classes_[probabilities.argmax(axis=1)]
    return split_report(split, fitted.chosen, len(train), test, y_pred,
                        probabilities.max(axis=1), fitted)
