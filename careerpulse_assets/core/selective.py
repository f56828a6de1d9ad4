"""Selective imputation: the model imputes what it knows and says what it does not.

This is classification with a reject option (Chow, "On optimum recognition error and reject
tradeoff", 1970; as selective classification in Geifman and El-Yaniv, 2017), decided per
category. The **policy** is a confidence threshold t and a set S of *served* categories: a
posting whose predicted category is c with confidence s (its share of the neighbour votes) is
imputed iff s ≥ t and c ∈ S; the others keep no invented category, they are `Unclassified`.
*Coverage* is the share of postings imputed; accuracy is over every posting imputed (*written*).

- **Which categories are served at t.** A *judged* category (one the estimate holds 20 postings
  of, `evaluation.MIN_JUDGED_POSTINGS`: enough to estimate an F1) is served only when its own F1
  among the predictions with confidence ≥ t meets the macro-F1 bar; a category not judged is
  served only when its own predictions with confidence ≥ t are right at least as often as the
  accuracy bar asks (its precision: a category learned from a few labels is not written on the
  strength of the others' accuracy; one never predicted out-of-fold is served only with the bar
  at 0). (Serving fewer categories only removes postings of a
  served category that were written under another one, so a served category's F1 over what is
  written is at least the F1 it was served on.)
- **The threshold** is the one whose written predictions (confidence ≥ t, category in S(t))
  have the largest coverage with accuracy ≥ the accuracy bar, chosen on every out-of-fold
  prediction (`out_of_fold.py`) of the model's recipe (0 when it is the lowest confidence: every
  posting of a served category). When no threshold reaches the accuracy bar there is none, and
  nothing is imputed. The macro-F1 of what is written is then the mean F1 of the served judged
  categories; a judged category left out is named with its F1 at t and its best F1 at any
  threshold: labelling its postings (`make review`) is what helps.
- **Its estimate is nested**, as the settings' is: the threshold and served categories applied
  to outer fold f's postings are chosen on the out-of-fold predictions of the *other* folds only
  (made by models that never saw them), and fold f's written postings are then scored. So no
  posting is scored with a policy chosen on it: accuracy and coverage over the written postings,
  macro-F1 the mean F1 of the deployed policy's served judged categories, with 95 % bootstrap
  intervals over postings (`out_of_fold.estimate`, `out_of_fold.category_f1s`). Each category's
  F1 is scored over the postings written by the fold policies that serve it: a fold policy that
  does not serve a category near the bar writes none of its hits but still writes its postings
  guessed as other categories, so scored over every fold it would score about 0 there: that
  measures whether the category is served rather than how well, and one unstable category
  would pull the mean under the bar and block every imputation.
- **The decision** (`decisions.imputation_decision`): impute with the policy only when that
  nested estimate meets the bars; otherwise impute nothing, and say why with the figures. A
  category served by the deployed policy but by none chosen without its postings has no nested
  F1: the macro-F1 is not estimated, and nothing is imputed.

On the shared postings (1,378 labelled postings, bars 0.90 / 0.70) every posting predicted in 6
of the 9 categories the model learns is imputed; Account Management, Business Operations and Data
and Analytics (F1 0.33, 0.48, 0.59) are not; nested: coverage 0.929, accuracy 0.911, macro-F1
0.891 (Education 0.83, Software Engineering 0.96). Plain arrays in, plain values out; no Dagster,
no MLflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .decisions import Bars, imputation_decision
from .evaluation import BOOTSTRAP_RESAMPLES, judged_categories
from .out_of_fold import OutOfFold, category_f1s, estimate


@dataclass(frozen=True)
class Curves:
    """What imputing every prediction with confidence ≥ `thresholds[i]` (descending, distinct)
    writes, per category `categories[c]` (sorted names): `predicted[c, i]` predictions of c,
    `right[c, i]` of them right, `true[c, i]` postings whose truth is c, whatever predicted;
    out of `postings` predictions."""

    thresholds: np.ndarray
    categories: np.ndarray
    predicted: np.ndarray
    right: np.ndarray
    true: np.ndarray
    postings: int

    def f1(self) -> np.ndarray:
        """Categories × thresholds: each category's F1 among every prediction written at the
        threshold, NaN where it is neither predicted nor true there."""
        both = self.true + self.predicted
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(both > 0, 2 * self.right / both, np.nan)

    def written(self, served: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Coverage and accuracy at each threshold when only the categories `served`
        (categories × thresholds booleans) are imputed; accuracy NaN where nothing is."""
        count = (self.predicted * served).sum(axis=0)
        right = (self.right * served).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return count / self.postings, right / count

    def precision(self) -> np.ndarray:
        """Categories × thresholds: the share of each category's predictions written at the
        threshold that are right, NaN where it is not predicted there."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.predicted > 0, self.right / self.predicted, np.nan)


def category_curves(truth: np.ndarray, predicted: np.ndarray, confidence: np.ndarray) -> Curves:
    """Every threshold's written counts in one pass: the predictions sorted by confidence,
    running counts per category (tied confidences are written together)."""
    order = np.argsort(-confidence, kind="stable")
    sorted_confidence = confidence[order]
    ends = np.flatnonzero(np.r_[sorted_confidence[1:] != sorted_confidence[:-1], True])
    n = len(confidence)
    categories, codes = np.unique(
        np.concatenate([np.asarray(truth)[order], np.asarray(predicted)[order]]).astype(str),
        return_inverse=True,
    )
    true_codes, predicted_codes = codes[:n], codes[n:]

    def running(category_codes: np.ndarray, counted: np.ndarray) -> np.ndarray:
        counts = np.zeros((len(categories), n), dtype=np.int64)
        counts[category_codes, np.arange(n)] = counted
        return np.cumsum(counts, axis=1)[:, ends]

    everything = np.ones(n, dtype=np.int64)
    return Curves(
        thresholds=sorted_confidence[ends],
        categories=categories,
        predicted=running(predicted_codes, everything),
        right=running(predicted_codes, (true_codes == predicted_codes).astype(np.int64)),
        true=running(true_codes, everything),
        postings=n,
    )


@dataclass(frozen=True)
class Service:
    """Impute a prediction iff its confidence is ≥ `threshold` and its category is `served`."""

    threshold: float
    served: tuple[str, ...]

    def writes(self, predicted: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        return (confidence >= self.threshold) & np.isin(np.asarray(predicted).astype(str),
                                                        self.served)


def served_categories(curves: Curves, learned, judged, bars: Bars) -> np.ndarray:
    """Categories × thresholds: served at that threshold. A learned category is served when it
    is judged and its F1 there meets the macro-F1 bar, or, too rare to judge, when its
    predictions there are right at least as often as the accuracy bar asks (a category never
    predicted out-of-fold has shown nothing and is served only with the bar at 0): a category
    learned from three labels must not be written on the strength of the others' accuracy."""
    is_judged = np.isin(curves.categories, judged)[:, None]
    is_learned = np.isin(curves.categories, learned)[:, None]
    precise = np.nan_to_num(curves.precision(), nan=0.0) >= bars.accuracy
    return is_learned & np.where(is_judged, curves.f1() >= bars.macro_f1, precise)


def choose_service(curves: Curves, learned, judged, bars: Bars) -> Service | None:
    """The threshold (with its served categories) whose written predictions have the largest
    coverage at accuracy ≥ `bars.accuracy`; 0 when that is the lowest confidence (every
    posting of a served category); None when none reaches the bar. Equal coverage: the higher
    threshold."""
    served = served_categories(curves, learned, judged, bars)
    coverage, accuracy = curves.written(served)
    meets = accuracy >= bars.accuracy  # NaN (nothing written) fails
    if not meets.any():
        return None
    best = int(np.argmax(np.where(meets, coverage, -1.0)))
    threshold = 0.0 if best == len(curves.thresholds) - 1 else float(curves.thresholds[best])
    return Service(threshold, tuple(str(c) for c in curves.categories[served[:, best]]))


def learned_categories(oof: OutOfFold) -> list[str]:
    return sorted({str(c) for c in oof.truth[oof.learnable]})


def pooled_curves(oof: OutOfFold) -> Curves:
    """The curves of every out-of-fold prediction, all repeats pooled."""
    repeats = oof.predicted.shape[0]
    return category_curves(np.tile(oof.truth, repeats), oof.predicted.ravel(),
                           oof.confidence.ravel())


def deployed_service(oof: OutOfFold, bars: Bars, judged: list[str]) -> Service | None:
    """The policy chosen on every out-of-fold prediction (all repeats pooled)."""
    return choose_service(pooled_curves(oof), learned_categories(oof), judged, bars)


@dataclass(frozen=True)
class Nested:
    """Repeats × postings: which out-of-fold predictions the policy chosen on the other outer
    folds (of the same repeat) writes, and, per learned category, whether that policy serves
    it."""

    written: np.ndarray
    serves: dict[str, np.ndarray]

    def written_when_served(self, category: str) -> np.ndarray:
        """The predictions written by the policies that serve `category`, which its F1 is
        scored over: a policy that does not serve it writes none of its hits but may write its
        postings under other categories, which would count as its misses."""
        return self.written & self.serves[category]


def nested_policies(oof: OutOfFold, bars: Bars, judged: list[str]) -> Nested:
    """Each outer fold's policy chosen on the out-of-fold predictions of the other folds (of the
    same repeat), applied to its own postings."""
    learned = learned_categories(oof)
    written = np.zeros(oof.predicted.shape, dtype=bool)
    serves = {category: np.zeros(oof.predicted.shape, dtype=bool) for category in learned}
    for r in range(oof.predicted.shape[0]):
        for f in np.unique(oof.fold[r]):
            inside, others = oof.fold[r] == f, oof.fold[r] != f
            curves = category_curves(oof.truth[others], oof.predicted[r, others],
                                     oof.confidence[r, others])
            service = choose_service(curves, learned, judged, bars)
            if service is None:
                continue
            written[r, inside] = service.writes(oof.predicted[r, inside],
                                                oof.confidence[r, inside])
            for category in service.served:
                serves[category][r, inside] = True
    return Nested(written, serves)


def left_out(curves: Curves, service: Service, judged: list[str]) -> dict[str, dict[str, float]]:
    """The judged categories `service` does not serve: their F1 at its threshold, and their
    best F1 at any threshold with that threshold (where several tie, the highest)."""
    f1 = curves.f1()
    at = np.flatnonzero(curves.thresholds >= service.threshold)[-1]
    out = {}
    for category in judged:
        if category in service.served:
            continue
        row = f1[np.flatnonzero(curves.categories == category)[0]]
        best = int(np.nanargmax(row)) if not np.isnan(row).all() else at
        out[category] = {"f1": float(row[at]), "best_f1": float(row[best]),
                         "best_threshold": float(curves.thresholds[best])}
    return out


@dataclass(frozen=True)
class ImputationPolicy:
    """Which postings the model in service may impute, and how good what it writes is.

    `candidate` and `served`: the threshold and the categories chosen on every out-of-fold
    prediction for `bars` (0: every posting of a served category; None: no threshold reaches
    the accuracy bar); `estimate`: the nested estimate of what they write (accuracy, macro_f1
    over the served judged categories, coverage, each with `_ci_low` / `_ci_high`, 95 %; empty
    without a candidate); `served_f1`: each served judged category's nested F1 (its mean is
    macro_f1); `left_out`: the
    judged categories not served, with their F1 at the candidate and their best F1
    (`best_f1`, at `best_threshold`). `threshold`: the candidate when its estimate meets the
    bars, else None: nothing is imputed. `written`: the estimate of what is written (coverage
    0 alone when nothing is)."""

    threshold: float | None
    bars: Bars
    reason: str
    candidate: float | None
    estimate: dict[str, float]
    postings: int
    judged_categories: list[str] = field(default_factory=list)
    served: list[str] = field(default_factory=list)
    served_f1: dict[str, float] = field(default_factory=dict)
    left_out: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def imputes(self) -> bool:
        return self.threshold is not None

    @property
    def imputed_categories(self) -> list[str]:
        """The categories imputed: the served ones when the policy is in use, else none."""
        return self.served if self.imputes else []

    @property
    def written(self) -> dict[str, float]:
        return self.estimate if self.imputes else {"coverage": 0.0}

    def summary(self) -> dict:
        """As JSON (evaluation.json keeps it beside the model's figures)."""
        return asdict(self)

    @classmethod
    def from_summary(cls, summary: dict) -> ImputationPolicy | None:
        """`summary`'s policy; None when it was chosen by the rule before categories were
        served one by one (it must be chosen again from the out-of-fold predictions)."""
        if "served" not in summary:
            return None
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
    """The threshold and served categories for `bars`, and the nested estimate of what they
    write (see the module)."""
    judged = judged_categories(oof.truth)
    curves = pooled_curves(oof)
    candidate = choose_service(curves, learned_categories(oof), judged, bars)
    if candidate is None:
        decision = imputation_decision(bars, None, None)
        return ImputationPolicy(None, bars, decision.reason, None, {}, len(oof.truth), judged)
    nested = nested_policies(oof, bars, judged)
    served_judged = [c for c in judged if c in candidate.served]
    figures = _with_intervals(estimate(oof, resamples=resamples, written=nested.written,
                                       judged=[]))
    f1s = category_f1s(oof, {c: nested.written_when_served(c) for c in served_judged},
                       resamples)
    figures |= {"macro_f1": f1s.macro_f1, "macro_f1_ci_low": f1s.interval[0],
                "macro_f1_ci_high": f1s.interval[1]}
    served_f1 = f1s.f1
    dropped = left_out(curves, candidate, judged)
    decision = imputation_decision(
        bars, candidate.threshold, figures, len(candidate.served),
        {name: values["f1"] for name, values in dropped.items()}, bool(served_judged),
    )
    return ImputationPolicy(decision.threshold, bars, decision.reason, candidate.threshold,
                            figures, len(oof.truth), judged, list(candidate.served), served_f1,
                            dropped)
