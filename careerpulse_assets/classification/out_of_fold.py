"""The quality gate's estimate, and champion against challenger on the same postings.

Every learnable labelled posting is predicted, once per repeat, by a model that never saw it:
repeated stratified 5-fold CV (scikit-learn's RepeatedStratifiedKFold). Inside each outer fold
the settings are chosen by the same 5-fold selection the deployed model goes through, on the
outer fold's training part only (nested CV), so no posting is scored by a model tuned on it.
Postings of categories too rare to learn are predicted too (by one outer fold's model each):
no model can impute them right, and the estimate says so in accuracy.

- accuracy: over every scored posting, the too-rare ones included;
- macro-F1 and weighted-F1: averaged over the *judged* categories, those the scored postings
  hold at least 20 times (`evaluation.MIN_JUDGED_POSTINGS`: enough to estimate an F1), learned
  or not; a judged category's precision counts every prediction of it, whatever the truth;
- each averaged over the repeats, with a 95 % bootstrap interval over postings (the same
  resampled postings for every repeat).

`estimate(oof, written, judged=...)` scores only the predictions a selective imputation would
write (`classification/per_posting_policy.py`), macro-F1 over the judged categories it serves, and adds their coverage.

Against a hold-out of a fifth of the postings, the estimate rests on five times as many, so its
interval is about sqrt(5) = 2.2 times narrower; and the outer training parts hold 80 % of the
postings, as the hold-out's did.

A comparison of two models' recipes (the challenger's selection, the champion's fixed
settings) runs both on the very same folds and resamples, so their difference is paired.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import RepeatedStratifiedKFold

from .evaluation import (
    BOOTSTRAP_RESAMPLES,
    MIN_JUDGED_POSTINGS,
    LabelledSet,
    confusion_table,
    judged_categories,
    metrics_from_confusions,
    most_confused_pairs,
    per_class_table,
    reliability_table,
)
from .knn import TextCounts, fold_scores, model_input
from .model_selection import RANDOM_STATE, KnnGrid, KnnParams, select_knn, selection_sample

OUTER_FOLDS = 5
# Repeats of the outer folds while there are at most REPEAT_UP_TO learnable postings; above, the
# estimate rests on enough postings that one repeat's variance is small, and each repeat costs
# five selections.
REPEATS = 3
REPEAT_UP_TO = 5_000
# Each outer fold's selection runs on a stratified sample of at most this many postings (the
# deployed model's selection takes up to SELECTION_MAX_POSTINGS): five selections at 100,000
# postings must not cost five times one. A smaller sample can only choose worse, so the estimate
# stays on the conservative side.
NESTED_SELECTION_MAX_POSTINGS = 4_000
BOOTSTRAP_CHUNK = 100

# A recipe chooses a model's settings from its training rows (positions in the shared counts).
Recipe = Callable[[TextCounts, np.ndarray, np.ndarray], KnnParams]


def nested_knn(grid: KnnGrid, max_selection: int = NESTED_SELECTION_MAX_POSTINGS) -> Recipe:
    """The challenger's recipe: choose among `grid` by 5-fold CV on (a stratified sample of) the
    training rows."""

    def choose(counts: TextCounts, rows: np.ndarray, labels: np.ndarray) -> KnnParams:
        sample = selection_sample(pd.Series(labels), max_selection)
        return select_knn(counts.features.iloc[rows[sample]], labels[sample], grid,
                          counts=counts, rows=rows[sample]).best

    return choose


def fixed_knn(params: KnnParams) -> Recipe:
    """The champion's recipe: its settings as they are."""
    return lambda counts, rows, labels: params


def predict_scores(
    counts: TextCounts, params: KnnParams, train_rows: np.ndarray, train_labels: np.ndarray,
    query_rows: np.ndarray, classes: np.ndarray,
) -> np.ndarray:
    """Class scores (query rows × `classes`, rows summing to 1) of the KNN with `params` fitted on
    the training rows: `fit_knn(...).predict_proba`, from the shared counts, its columns placed
    under `classes` (sorted names; a class the training rows lack scores 0)."""
    fold_classes, scores = fold_scores(
        counts, params.title_weight, params.ngrams, params.k, params.vote, params.prior_alpha,
        train_rows, train_labels, query_rows,
    )
    out = np.zeros((len(query_rows), len(classes)))
    out[:, np.searchsorted(classes, fold_classes)] = scores
    return out


def predict_rows(
    counts: TextCounts, params: KnnParams, train_rows: np.ndarray, train_labels: np.ndarray,
    query_rows: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(predicted category, confidence) of the query rows by the KNN with `params` fitted on the
    training rows: `fit_knn(...).predict_proba`, from the shared counts."""
    classes = np.unique(np.asarray(train_labels))
    scores = predict_scores(counts, params, train_rows, train_labels, query_rows, classes)
    return classes[scores.argmax(axis=1)], scores.max(axis=1)


@dataclass(frozen=True)
class Folds:
    """Per repeat, per outer fold: learnable training and test positions, and the positions of
    too-rare postings that fold's model predicts."""

    splits: list[list[tuple[np.ndarray, np.ndarray]]]
    rare: list[list[np.ndarray]]

    @property
    def repeats(self) -> int:
        return len(self.splits)


def make_folds(labelled: LabelledSet, repeats: int | None = None) -> Folds:
    labels = labelled.labels.to_numpy()
    if repeats is None:
        repeats = REPEATS if len(labels) <= REPEAT_UP_TO else 1
    folds = min(OUTER_FOLDS, int(labelled.labels.value_counts().min()))
    if folds < 2:
        raise ValueError("every category needs 2 postings for out-of-fold predictions")
    splitter = RepeatedStratifiedKFold(
        n_splits=folds, n_repeats=repeats, random_state=RANDOM_STATE
    )
    pairs = list(splitter.split(np.zeros(len(labels)), labels))
    n_rare = 0 if labelled.rare is None else len(labelled.rare)
    rng = np.random.default_rng(RANDOM_STATE)
    return Folds(
        splits=[pairs[r * folds : (r + 1) * folds] for r in range(repeats)],
        rare=[np.array_split(rng.permutation(n_rare), folds) for _ in range(repeats)],
    )


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold predictions: `truth` holds the learnable postings' labels, then the rare
    ones'; `scores` (repeats × postings × `classes`, the learned categories sorted) the class
    scores of the model of the outer fold that did not see the posting (`fold`, repeats ×
    postings); `predicted` and `confidence` (repeats × postings) the top class and its score."""

    truth: np.ndarray
    learnable: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    fold: np.ndarray
    chosen: list[KnnParams] = ()
    classes: np.ndarray | None = None
    scores: np.ndarray | None = None

    @classmethod
    def from_scores(cls, truth: np.ndarray, learnable: np.ndarray, classes: np.ndarray,
                    scores: np.ndarray, fold: np.ndarray, chosen: list[KnnParams] = ()
                    ) -> OutOfFold:
        classes = np.asarray(classes)
        return cls(np.asarray(truth, dtype=object), np.asarray(learnable),
                   classes[scores.argmax(axis=2)].astype(object), scores.max(axis=2),
                   np.asarray(fold), chosen, classes, np.asarray(scores, dtype=float))

    def arrays(self) -> dict[str, np.ndarray]:
        """What `from_arrays` reads back (an MLflow artifact: the calibration, the count model
        and the imputation threshold are derived from it again when a model is reused)."""
        arrays = {"truth": self.truth.astype(str), "learnable": self.learnable,
                  "predicted": self.predicted.astype(str), "confidence": self.confidence,
                  "fold": self.fold}
        if self.scores is not None:
            arrays |= {"classes": np.asarray(self.classes).astype(str), "scores": self.scores}
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> OutOfFold:
        """KeyError when the arrays lack the class scores (saved by code before calibration)."""
        return cls.from_scores(np.asarray(arrays["truth"], dtype=object),
                               np.asarray(arrays["learnable"]),
                               np.asarray(arrays["classes"], dtype=object),
                               np.asarray(arrays["scores"]), np.asarray(arrays["fold"]))

    @property
    def learnable_truth(self) -> np.ndarray:
        return self.truth[self.learnable]


def scored_postings(labelled: LabelledSet) -> pd.DataFrame:
    """The postings an out-of-fold estimate predicts: the learnable ones, then the too-rare."""
    rare = labelled.rare if labelled.rare is not None else labelled.postings.iloc[:0]
    return pd.concat([labelled.postings, rare], ignore_index=True)


def out_of_fold(
    labelled: LabelledSet, folds: Folds, recipe: Recipe, counts: TextCounts | None = None,
    progress: Callable[[str], None] | None = None,
) -> OutOfFold:
    """`counts` must be `TextCounts(model_input(scored_postings(labelled)))`; pass it to share
    tokenised texts between estimates over the same postings."""
    postings = scored_postings(labelled)
    counts = counts or TextCounts(model_input(postings))
    n_learnable, n = len(labelled.postings), len(postings)
    labels = postings["category"].to_numpy(dtype=object)
    classes = np.unique(labels[:n_learnable].astype(str)).astype(object)
    scores = np.zeros((folds.repeats, n, len(classes)))
    fold = np.full((folds.repeats, n), -1)
    chosen = []
    for r, (splits, rare_parts) in enumerate(zip(folds.splits, folds.rare, strict=True)):
        for f, ((train, test), rare_part) in enumerate(zip(splits, rare_parts, strict=True)):
            params = recipe(counts, train, labels[train])
            chosen.append(params)
            where = np.concatenate([test, n_learnable + rare_part])
            scores[r, where] = predict_scores(counts, params, train, labels[train], where,
                                              classes)
            fold[r, where] = f
            if progress:
                progress(f"out-of-fold repeat {r + 1}/{folds.repeats}, fold {f + 1}/"
                         f"{len(splits)}: {params.describe()}")
    learnable = np.arange(n) < n_learnable
    return OutOfFold.from_scores(labels, learnable, classes, scores, fold, chosen)


def _bootstrap_metrics(
    truth: np.ndarray, predicted: np.ndarray, picks: np.ndarray, judged: list[str],
    written: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Metrics of each resample (rows of `picks`), averaged over the repeats (rows of
    `predicted`): accuracy over the picked postings, the F1s over the `judged` categories; with
    `written` (repeats × postings), over the written predictions only, and their coverage."""
    classes, codes = np.unique(
        np.concatenate([truth, predicted.ravel()]).astype(str), return_inverse=True
    )
    c, n = len(classes), len(truth)
    judged_classes = np.isin(classes, judged)
    true_codes = codes[:n]
    offsets = (np.arange(len(picks)) * c * c)[:, None]
    out: dict[str, list[np.ndarray]] = {"accuracy": [], "macro_f1": [], "weighted_f1": []}
    if written is not None:
        out["coverage"] = []
    for r in range(predicted.shape[0]):
        pred_codes = codes[n + r * n : n + (r + 1) * n]
        cells = (true_codes[picks] * c + pred_codes[picks] + offsets).ravel()
        weights = None if written is None else written[r][picks].ravel().astype(float)
        confusions = np.bincount(cells, weights=weights, minlength=len(picks) * c * c)
        metrics = metrics_from_confusions(confusions.reshape(len(picks), c, c), judged_classes)
        for name in ("accuracy", "macro_f1", "weighted_f1"):
            out[name].append(metrics[name])
        if written is not None:
            out["coverage"].append(written[r][picks].mean(axis=1))
    return {name: np.mean(values, axis=0) for name, values in out.items()}


def _resamples(n: int, resamples: int) -> list[np.ndarray]:
    """Bootstrap picks in chunks (a thousand resamples of 20,000 postings at once is 160 MB)."""
    rng = np.random.default_rng(RANDOM_STATE)
    return [rng.integers(0, n, (min(BOOTSTRAP_CHUNK, resamples - start), n))
            for start in range(0, resamples, BOOTSTRAP_CHUNK)]


def _interval(values: np.ndarray) -> tuple[float, float]:
    # A resample with nothing written (or no judged category) has no figure: left out.
    if np.isnan(values).all():
        return float("nan"), float("nan")
    return float(np.nanpercentile(values, 2.5)), float(np.nanpercentile(values, 97.5))


@dataclass(frozen=True)
class Estimate:
    """Out-of-fold figures with their 95 % intervals: accuracy, macro_f1, weighted_f1, and
    coverage for an estimate of written predictions. A figure is NaN where there is nothing to
    average (macro-F1 when no category is judged)."""

    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    postings: int
    rare_postings: int
    repeats: int
    folds: int
    judged: tuple[str, ...] = ()  # the categories macro-F1 averages over

    def flat(self, prefix: str = "oof") -> dict[str, float]:
        """Named for MLflow: oof_macro_f1, oof_macro_f1_ci_low, ..."""
        out: dict[str, float] = {}
        for name, value in self.metrics.items():
            low, high = self.intervals[name]
            out |= {f"{prefix}_{name}": value, f"{prefix}_{name}_ci_low": low,
                    f"{prefix}_{name}_ci_high": high}
        return out

    def describe(self) -> str:
        rare = f", {self.rare_postings} of them in categories too rare to learn" if self.rare_postings else ""
        return (f"out-of-fold over {self.postings:,} labelled postings{rare} "
                f"({self.repeats} × {self.folds}-fold, settings chosen inside each fold)")


def point_metrics(
    oof: OutOfFold, written: np.ndarray | None = None, judged: Sequence[str] | None = None
) -> dict[str, float]:
    """`estimate(oof, written, judged=judged).metrics` without the intervals."""
    full = np.arange(len(oof.truth))[None, :]
    judged = judged_categories(oof.truth) if judged is None else list(judged)
    point = _bootstrap_metrics(oof.truth, oof.predicted, full, judged, written)
    return {name: float(value[0]) for name, value in point.items()}


def estimate(
    oof: OutOfFold, resamples: int = BOOTSTRAP_RESAMPLES, written: np.ndarray | None = None,
    judged_min: int = MIN_JUDGED_POSTINGS, judged: Sequence[str] | None = None,
) -> Estimate:
    """The figures of `oof`'s predictions, or with `written` (repeats × postings) of the
    predictions written only; macro-F1 over `judged`, by default the categories with
    `judged_min` postings (NaN when none is)."""
    judged = judged_categories(oof.truth, judged_min) if judged is None else list(judged)
    full = np.arange(len(oof.truth))[None, :]
    point = _bootstrap_metrics(oof.truth, oof.predicted, full, judged, written)
    draws = [_bootstrap_metrics(oof.truth, oof.predicted, picks, judged, written)
             for picks in _resamples(len(oof.truth), resamples)]
    return Estimate(
        metrics={name: float(value[0]) for name, value in point.items()},
        intervals={name: _interval(np.concatenate([d[name] for d in draws])) for name in point},
        postings=len(oof.truth),
        rare_postings=int((~oof.learnable).sum()),
        repeats=oof.predicted.shape[0],
        folds=int(oof.fold.max()) + 1,
        judged=tuple(judged),
    )


@dataclass(frozen=True)
class CategoryF1s:
    """Each category's F1 over its own written predictions (averaged over the repeats), their
    mean (`macro_f1`, NaN without categories) and its 95 % bootstrap interval."""

    f1: dict[str, float]
    macro_f1: float
    interval: tuple[float, float]


def category_f1s(
    oof: OutOfFold, written: dict[str, np.ndarray], resamples: int = BOOTSTRAP_RESAMPLES
) -> CategoryF1s:
    """`written` maps a category to the predictions (repeats × postings) its F1 is scored
    over; each F1 as `estimate` scores a judged category's, on the same bootstrap resamples."""
    if not written:
        return CategoryF1s({}, float("nan"), (float("nan"), float("nan")))
    full = np.arange(len(oof.truth))[None, :]

    def f1s(picks: np.ndarray) -> np.ndarray:  # categories × resamples
        return np.array([_bootstrap_metrics(oof.truth, oof.predicted, picks, [category],
                                            mask)["macro_f1"]
                         for category, mask in written.items()])

    point = f1s(full)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample without a category
        draws = np.concatenate([np.nanmean(f1s(picks), axis=0)
                                for picks in _resamples(len(oof.truth), resamples)])
    return CategoryF1s(dict(zip(written, map(float, point), strict=True)),
                       float(np.mean(point)), _interval(draws))


@dataclass(frozen=True)
class Comparison:
    """Challenger against champion on the same postings, folds and resamples."""

    challenger: dict[str, float]
    champion: dict[str, float]
    difference: dict[str, float]  # challenger minus champion
    intervals: dict[str, tuple[float, float]]  # of the difference

    def flat(self) -> dict[str, float]:
        out = {f"champion_oof_{k}": v for k, v in self.champion.items()}
        for name, value in self.difference.items():
            low, high = self.intervals[name]
            out |= {f"challenger_minus_champion_{name}": value,
                    f"challenger_minus_champion_{name}_ci_low": low,
                    f"challenger_minus_champion_{name}_ci_high": high}
        return out


def compare(
    challenger: OutOfFold, champion: OutOfFold, resamples: int = BOOTSTRAP_RESAMPLES
) -> Comparison:
    if not (challenger.truth == champion.truth).all():
        raise ValueError("a paired comparison needs both models' predictions of the same postings")
    full = np.arange(len(challenger.truth))[None, :]
    truth, judged = challenger.truth, judged_categories(challenger.truth)
    new = _bootstrap_metrics(truth, challenger.predicted, full, judged)
    old = _bootstrap_metrics(truth, champion.predicted, full, judged)
    differences: dict[str, list[np.ndarray]] = {name: [] for name in new}
    for picks in _resamples(len(challenger.truth), resamples):
        a = _bootstrap_metrics(truth, challenger.predicted, picks, judged)
        b = _bootstrap_metrics(truth, champion.predicted, picks, judged)
        for name in differences:
            differences[name].append(a[name] - b[name])
    return Comparison(
        challenger={name: float(v[0]) for name, v in new.items()},
        champion={name: float(v[0]) for name, v in old.items()},
        difference={name: float(new[name][0] - old[name][0]) for name in new},
        intervals={name: _interval(np.concatenate(values)) for name, values in differences.items()},
    )


@dataclass(frozen=True)
class Tables:
    """The first repeat's out-of-fold predictions as tables for people."""

    per_class: pd.DataFrame
    confusion: pd.DataFrame
    most_confused: list[dict]
    reliability: pd.DataFrame


def tables(oof: OutOfFold) -> Tables:
    truth, predicted, confidence = oof.truth, oof.predicted[0], oof.confidence[0]
    confusion = confusion_table(truth, predicted)
    return Tables(
        per_class=per_class_table(truth, predicted),
        confusion=confusion,
        most_confused=most_confused_pairs(confusion),
        reliability=reliability_table(truth, predicted, confidence),
    )
