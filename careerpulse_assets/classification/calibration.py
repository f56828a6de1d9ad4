"""Calibrated class probabilities from the KNN's class scores, and how calibrated they are.

The KNN's class scores are shares of (weighted, prior-corrected) neighbour votes: a posting whose
5 neighbours all agree scores 1.0 although such postings are right about 93 % of the time, and
a category with no neighbour scores 0.0 although some such postings belong to it. Counting
postings by their probabilities (`series/quantification.py`) and writing a category only where it is
right often enough (`classification/per_posting_policy.py`) both need probabilities that mean what they say.

**Method.** scikit-learn's isotonic calibration (`CalibratedClassifierCV(method="isotonic")`:
one isotonic regression per category of "is this category" on its score, the results
normalised to sum to 1; Zadrozny and Elkan, KDD 2002), fitted on the **out-of-fold** class
scores of the labelled postings (`classification/out_of_fold.py`: each scored by a model that never saw it),
so the calibration learns how the model errs on postings it did not train on. The estimator it
calibrates is `ScoresAsFeatures`, which takes a row of class scores and returns it: the KNN's
scores are computed once (out-of-fold for fitting, by the deployed model for new postings) and
the library does the rest.

Measured on the shared postings (6 seeds, a quarter of the labels hidden; nested: each fold's
scores calibrated on the other folds; BENCHMARKS.md "Counts of the postings without a
category"): isotonic had the lowest Brier score and calibration error of scikit-learn's methods
and two hand-made ones; temperature scaling was worse than the raw scores (vote shares are
mostly exact 0s and 1s, whose logarithms it cannot scale sensibly).

No Dagster here: plain arrays in, plain arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss

RELIABILITY_BINS = 10


class ScoresAsFeatures(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose input rows are class scores (postings × `classes`) and whose
    `predict_proba` returns them unchanged: what `CalibratedClassifierCV` calibrates when the
    scores were computed elsewhere (out-of-fold)."""

    def __init__(self, classes=None):
        self.classes = classes

    def fit(self, X, y=None):
        return self

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes)

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict_proba(self, X) -> np.ndarray:
        return np.asarray(X, dtype=float)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.asarray(X).argmax(axis=1)]


def fit_calibration(scores: np.ndarray, labels: np.ndarray, classes: np.ndarray
                    ) -> CalibratedClassifierCV:
    """Isotonic calibration of class scores (postings × classes, rows summing to 1) fitted on
    `labels` (one of `classes` per row). Raises ValueError when `labels` hold fewer than 2 of
    the classes (nothing to calibrate)."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        raise ValueError("calibration needs postings of at least 2 categories")
    calibration = CalibratedClassifierCV(
        FrozenEstimator(ScoresAsFeatures(np.asarray(classes))), method="isotonic")
    return calibration.fit(np.asarray(scores, dtype=float), labels)


def calibrated(calibration: CalibratedClassifierCV | None, scores: np.ndarray) -> np.ndarray:
    """Calibrated probabilities (postings × classes, rows summing to 1) of class scores; the
    scores themselves without a calibration (a model too small to calibrate)."""
    scores = np.asarray(scores, dtype=float)
    if calibration is None or not len(scores):
        return scores
    return calibration.predict_proba(scores)


def brier_score(probabilities: np.ndarray, truth_codes: np.ndarray) -> float:
    """Multi-class Brier score: mean over postings of the squared distance between the
    probabilities and the one-hot truth (0 perfect, 2 worst; Brier, 1950). A truth code of -1
    (a category the model does not know) is all wrong."""
    onehot = np.zeros_like(probabilities)
    known = truth_codes >= 0
    onehot[np.flatnonzero(known), truth_codes[known]] = 1.0
    return float(((probabilities - onehot) ** 2).sum(axis=1).mean())


def expected_calibration_error(probabilities: np.ndarray, right: np.ndarray,
                               bins: int = RELIABILITY_BINS) -> float:
    """Top-label expected calibration error: the postings' mean |accuracy − confidence| over
    equal-width confidence bins, weighted by the bins' postings (Guo et al., ICML 2017)."""
    table = reliability(probabilities, right, bins)
    if not len(table):
        return float("nan")
    weights = table["postings"] / table["postings"].sum()
    return float((weights * (table["accuracy"] - table["mean_confidence"]).abs()).sum())


def reliability(probabilities: np.ndarray, right: np.ndarray,
                bins: int = RELIABILITY_BINS) -> pd.DataFrame:
    """Postings, accuracy and mean top probability per confidence bin (lo, hi]: the reliability
    diagram as a table (empty bins left out)."""
    confidence = probabilities.max(axis=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = index == b
        if inside.any():
            rows.append({"confidence": f"{edges[b]:.1f}–{edges[b + 1]:.1f}",
                         "postings": int(inside.sum()),
                         "accuracy": float(right[inside].mean()),
                         "mean_confidence": float(confidence[inside].mean())})
    return pd.DataFrame(rows, columns=["confidence", "postings", "accuracy", "mean_confidence"])


@dataclass(frozen=True)
class CalibrationReport:
    """How calibrated the class probabilities are out-of-fold, before (the KNN's vote shares)
    and after isotonic calibration: Brier score, log-loss and top-label calibration error, the
    calibrated ones scored nested (each fold calibrated on the other folds), and the calibrated
    reliability table."""

    brier_before: float
    brier_after: float
    log_loss_before: float
    log_loss_after: float
    ece_before: float
    ece_after: float
    postings: int
    reliability: pd.DataFrame

    def figures(self) -> dict[str, float]:
        return {"brier_before": self.brier_before, "brier_after": self.brier_after,
                "log_loss_before": self.log_loss_before, "log_loss_after": self.log_loss_after,
                "ece_before": self.ece_before, "ece_after": self.ece_after}

    def describe(self) -> str:
        return (f"Brier {self.brier_before:.3f} → {self.brier_after:.3f}, calibration error "
                f"{self.ece_before:.3f} → {self.ece_after:.3f} (out-of-fold, {self.postings:,} "
                "predictions)")


def calibration_report(scores: np.ndarray, calibrated_scores: np.ndarray, truth: np.ndarray,
                       classes: np.ndarray) -> CalibrationReport:
    """`scores` and `calibrated_scores` (predictions × classes) of the same postings, whose
    categories are `truth` (a category not in `classes` counts as wrong everywhere)."""
    codes = np.searchsorted(classes, truth)
    codes = np.where((codes < len(classes)) & (classes[np.minimum(codes, len(classes) - 1)]
                                               == truth), codes, -1)

    def loss(probabilities: np.ndarray) -> float:
        known = codes >= 0  # log-loss is undefined for a category the model does not know
        return float(log_loss(codes[known], probabilities[known], labels=np.arange(len(classes))))

    right_before = scores.argmax(axis=1) == codes
    right_after = calibrated_scores.argmax(axis=1) == codes
    return CalibrationReport(
        brier_before=brier_score(scores, codes), brier_after=brier_score(calibrated_scores, codes),
        log_loss_before=loss(scores), log_loss_after=loss(calibrated_scores),
        ece_before=expected_calibration_error(scores, right_before),
        ece_after=expected_calibration_error(calibrated_scores, right_after),
        postings=len(truth), reliability=reliability(calibrated_scores, right_after),
    )
