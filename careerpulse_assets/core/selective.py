"""Selective imputation: the model imputes a posting only when its confidence reaches a
threshold chosen so that the imputations *written* meet the quality bars.

This is classification with a reject option (Chow, "On optimum recognition error and reject
tradeoff", 1970; as selective classification in Geifman and El-Yaniv, 2017): a posting whose
confidence (its winning category's share of the neighbour votes) is below the threshold keeps
no invented category; it is counted as `Unclassified`. *Coverage* is the share of postings
imputed; accuracy and macro-F1 are those of the imputed postings only (macro-F1 over the judged
categories, `evaluation.MIN_JUDGED_POSTINGS`).

- **The threshold** is the lowest confidence (the largest coverage) at which the written
  predictions meet both bars, chosen on every out-of-fold prediction (`out_of_fold.py`) of the
  model's recipe. When every prediction may be written (bars at 0, or a model good enough
  everywhere) it is 0: every posting is imputed. When no confidence gives written predictions
  that meet the bars there is none, and nothing is imputed.
- **Its estimate is nested**, as the settings' is: the threshold applied to outer fold f's
  postings is chosen on the out-of-fold predictions of the *other* folds only (made by models
  that never saw them), and fold f's written postings are then scored. So no posting is scored
  with a threshold chosen on it: the figures estimate what the deployed threshold will write,
  with 95 % bootstrap intervals over postings (`out_of_fold.estimate`).
- **The decision** (`decisions.imputation_decision`): impute at the threshold only when that
  nested estimate meets the bars; otherwise impute nothing, and say why.

Plain arrays in, plain values out; no Dagster, no MLflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .decisions import Bars, imputation_decision
from .evaluation import BOOTSTRAP_RESAMPLES, judged_categories
from .out_of_fold import OutOfFold, estimate


@dataclass(frozen=True)
class Curve:
    """Written predictions per threshold: imputing the postings whose confidence is at least
    `thresholds[i]` (descending) writes `coverage[i]` of them, at `accuracy[i]` and
    `macro_f1[i]` (NaN when none of the judged categories is among them)."""

    thresholds: np.ndarray
    coverage: np.ndarray
    accuracy: np.ndarray
    macro_f1: np.ndarray


def written_curve(
    truth: np.ndarray, predicted: np.ndarray, confidence: np.ndarray, judged: list[str]
) -> Curve:
    """Every threshold's written figures in one pass: postings sorted by confidence, running
    counts per judged category (tied confidences are written together)."""
    order = np.argsort(-confidence, kind="stable")
    sorted_confidence = confidence[order]
    truth, predicted = np.asarray(truth)[order], np.asarray(predicted)[order]
    ends = np.flatnonzero(np.r_[sorted_confidence[1:] != sorted_confidence[:-1], True])
    hit = truth == predicted
    written = ends + 1
    f1s = []
    for category in judged:
        is_true, is_predicted = truth == category, predicted == category
        true_positives = np.cumsum(hit & is_true)[ends]
        both = np.cumsum(is_true)[ends] + np.cumsum(is_predicted)[ends]
        f1s.append(np.where(both > 0, 2 * true_positives / np.maximum(both, 1), np.nan))
    if f1s:
        stacked = np.array(f1s)
        present = ~np.isnan(stacked)
        with np.errstate(invalid="ignore"):
            macro = np.nansum(stacked, axis=0) / present.sum(axis=0)
    else:
        macro = np.full(len(ends), np.nan)
    return Curve(
        thresholds=sorted_confidence[ends],
        coverage=written / len(confidence),
        accuracy=np.cumsum(hit)[ends] / written,
        macro_f1=macro,
    )


def lowest_threshold(curve: Curve, bars: Bars, macro_judged: bool = True) -> float | None:
    """The lowest threshold whose written predictions meet `bars` (0.0 when all of them may be
    written: every posting is imputed), or None when none does. Without judged categories
    (`macro_judged` False) macro-F1 cannot be estimated and accuracy alone decides."""
    meets = curve.accuracy >= bars.accuracy
    if macro_judged:
        meets &= curve.macro_f1 >= bars.macro_f1  # NaN (nothing judged written) fails
    if not meets.any():
        return None
    last = int(np.flatnonzero(meets)[-1])
    return 0.0 if last == len(curve.thresholds) - 1 else float(curve.thresholds[last])


def _written(confidence: np.ndarray, threshold: float | None) -> np.ndarray:
    if threshold is None:
        return np.zeros(len(confidence), dtype=bool)
    return confidence >= threshold


def nested_written(oof: OutOfFold, bars: Bars, judged: list[str]) -> np.ndarray:
    """Repeats × postings: which out-of-fold predictions a threshold chosen on the other outer
    folds (of the same repeat) writes."""
    written = np.zeros(oof.predicted.shape, dtype=bool)
    for r in range(oof.predicted.shape[0]):
        for f in np.unique(oof.fold[r]):
            inside, others = oof.fold[r] == f, oof.fold[r] != f
            curve = written_curve(oof.truth[others], oof.predicted[r, others],
                                  oof.confidence[r, others], judged)
            threshold = lowest_threshold(curve, bars, bool(judged))
            written[r, inside] = _written(oof.confidence[r, inside], threshold)
    return written


def deployed_threshold(oof: OutOfFold, bars: Bars, judged: list[str]) -> float | None:
    """The threshold chosen on every out-of-fold prediction (all repeats pooled)."""
    repeats = oof.predicted.shape[0]
    curve = written_curve(np.tile(oof.truth, repeats), oof.predicted.ravel(),
                          oof.confidence.ravel(), judged)
    return lowest_threshold(curve, bars, bool(judged))


@dataclass(frozen=True)
class ImputationPolicy:
    """Which postings the model in service may impute, and how good what it writes is.

    `candidate`: the threshold chosen on every out-of-fold prediction for `bars` (0: every
    posting; None: no confidence meets them); `estimate`: the nested estimate of what the
    candidate writes (accuracy, macro_f1, coverage, each with `_ci_low` / `_ci_high`, 95 %;
    empty without a candidate). `threshold`: the candidate when its estimate meets the bars,
    else None: nothing is imputed. `written`: the estimate of what is written (coverage 0 alone
    when nothing is)."""

    threshold: float | None
    bars: Bars
    reason: str
    candidate: float | None
    estimate: dict[str, float]
    postings: int
    judged_categories: list[str] = field(default_factory=list)

    @property
    def imputes(self) -> bool:
        return self.threshold is not None

    @property
    def written(self) -> dict[str, float]:
        return self.estimate if self.imputes else {"coverage": 0.0}

    def summary(self) -> dict:
        """As JSON (evaluation.json keeps it beside the model's figures)."""
        return asdict(self)

    @classmethod
    def from_summary(cls, summary: dict) -> ImputationPolicy:
        return cls(**{**summary, "bars": Bars(**summary["bars"])})


def _with_intervals(result) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in ("accuracy", "macro_f1", "coverage"):
        low, high = result.intervals[name]
        out |= {name: result.metrics[name], f"{name}_ci_low": low, f"{name}_ci_high": high}
    return out


def imputation_policy(
    oof: OutOfFold, bars: Bars, resamples: int = BOOTSTRAP_RESAMPLES
) -> ImputationPolicy:
    """The threshold for `bars` and the nested estimate of what it writes (see the module)."""
    judged = judged_categories(oof.truth)
    candidate = deployed_threshold(oof, bars, judged)
    nested = nested_written(oof, bars, judged) if candidate is not None else None
    figures = (_with_intervals(estimate(oof, resamples=resamples, written=nested))
               if nested is not None else {})
    decision = imputation_decision(bars, candidate, figures or None, bool(judged))
    return ImputationPolicy(decision.threshold, bars, decision.reason, candidate, figures,
                            len(oof.truth), judged)
