"""Choosing the KNN's settings by stratified 5-fold CV on macro-F1, cheaply.

The naive way (GridSearchCV over Pipeline(tfidf, knn)) refits TF-IDF and queries neighbours
again for every k. Here each fold is vectorised once per text representation and its neighbours
are queried once, for the largest k; every k, vote rule and prior correction is then scored
from those neighbour lists. On the seed's grid this gives the same scores and the same choice
as GridSearchCV on the same folds (a test shows it).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from .knn import (
    FoldTfidf,
    TextCounts,
    class_scores,
    cosine_neighbors,
    knn_pipeline,
    model_input,
)

CV_FOLDS = 5
RANDOM_STATE = 42


@dataclass(frozen=True)
class KnnParams:
    title_weight: float | None = None  # None: the seed's single title + description text
    ngrams: int = 1
    k: int = 5
    vote: str = "uniform"
    prior_alpha: float = 0.0

    @property
    def representation(self) -> tuple[float | None, int]:
        """What the vectoriser depends on; neighbours are queried once per representation."""
        return self.title_weight, self.ngrams

    def describe(self) -> str:
        text = (
            "title+description" if self.title_weight is None
            else f"title×{self.title_weight:g} + description"
        )
        words = "words" if self.ngrams == 1 else f"1–{self.ngrams}-grams"
        return f"k={self.k}, {self.vote} votes, prior α={self.prior_alpha:g}, {text}, {words}"


@dataclass(frozen=True)
class KnnGrid:
    representations: tuple[tuple[float | None, int], ...] = (
        (None, 1), (None, 2), (1.0, 1), (2.0, 1),
    )
    ks: tuple[int, ...] = (3, 5, 7, 10, 15)
    votes: tuple[str, ...] = ("uniform", "distance")
    prior_alphas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)

    def candidates(self, max_k: int) -> list[KnnParams]:
        """Every combination, in grid order (which breaks ties, as in GridSearchCV)."""
        return [
            KnnParams(weight, ngrams, k, vote, alpha)
            for (weight, ngrams), k, vote, alpha in itertools.product(
                self.representations, self.ks, self.votes, self.prior_alphas
            )
            if k <= max_k
        ]


SEED_GRID = KnnGrid(representations=((None, 1),), votes=("uniform",), prior_alphas=(0.0,))


@dataclass(frozen=True)
class Selection:
    best: KnnParams
    cv_macro_f1: dict[KnnParams, float] = field(repr=False)

    @property
    def best_score(self) -> float:
        return self.cv_macro_f1[self.best]


class NotEnoughLabels(ValueError):
    """Too few labelled postings to train and evaluate a classifier."""


def cv_folds() -> StratifiedKFold:
    """The folds every selection uses, the seed's GridSearchCV included."""
    return StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=RANDOM_STATE)


def largest_usable_k(n_train: int, n_splits: int = CV_FOLDS) -> int:
    """The largest k every CV fold's training part can supply neighbours for."""
    return n_train - int(np.ceil(n_train / n_splits))


# Selection scores every candidate on 5 folds, and its neighbour queries grow with the square of
# the postings: above this many it runs on a stratified sample. The chosen setting is then
# fitted on every posting. Measured at 20,000 replayed postings (see BENCHMARKS.md).
SELECTION_MAX_POSTINGS = 10_000
# Every category keeps this many postings in the sample (all of them when it has fewer), so that
# a rare one still has one per fold and is scored in macro-F1.
SELECTION_MIN_PER_CATEGORY = 25


def selection_sample(
    labels: pd.Series, max_postings: int = SELECTION_MAX_POSTINGS
) -> np.ndarray:
    """Positions of a stratified sample of about `max_postings` (all positions when fewer)."""
    labels = pd.Series(np.asarray(labels))
    if len(labels) <= max_postings:
        return np.arange(len(labels))
    rng = np.random.default_rng(RANDOM_STATE)
    fraction = max_postings / len(labels)
    chosen = []
    for _, positions in labels.groupby(labels, sort=True).indices.items():
        keep = min(len(positions), max(round(len(positions) * fraction), SELECTION_MIN_PER_CATEGORY))
        chosen.append(rng.choice(positions, size=keep, replace=False))
    return np.sort(np.concatenate(chosen))


def macro_f1(true_codes: np.ndarray, predicted_codes: np.ndarray, n_classes: int) -> float:
    """scikit-learn's f1_score(average="macro") on integer-coded labels, from one bincount.

    As there, the mean runs over the classes that occur in either array, and a class with no
    true and no predicted posting is left out. Selection scores thousands of candidates; this
    takes 0.05 ms where f1_score took 6.
    """
    confusion = np.bincount(
        true_codes * n_classes + predicted_codes, minlength=n_classes * n_classes
    ).reshape(n_classes, n_classes)
    true_positives = np.diag(confusion).astype(float)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    present = (support + predicted) > 0
    denominator = (support + predicted)[present]
    return float(np.mean(2 * true_positives[present] / denominator))


def select_knn(
    postings: pd.DataFrame,
    labels: pd.Series,
    grid: KnnGrid = KnnGrid(),
    counts: TextCounts | None = None,
    rows: np.ndarray | None = None,
) -> Selection:
    """Score every candidate of `grid` by mean macro-F1 over stratified 5-fold CV.

    `counts` (with `rows`, the postings' positions in it) shares tokenised texts with other
    selections over the same postings; by default they are tokenised here.
    """
    if counts is None:
        counts, rows = TextCounts(model_input(postings)), np.arange(len(postings))
    labels = pd.Series(np.asarray(labels))
    candidates = grid.candidates(largest_usable_k(len(labels)))
    if not candidates:
        raise NotEnoughLabels(f"{len(labels)} postings leave CV folds too small for k in {grid.ks}")
    max_k = max(c.k for c in candidates)
    fold_scores: dict[KnnParams, list[float]] = {c: [] for c in candidates}
    folds = list(cv_folds().split(np.zeros(len(labels)), labels))
    names, codes = np.unique(labels.to_numpy(), return_inverse=True)
    for title_weight, ngrams in grid.representations:
        tfidf = FoldTfidf(counts, title_weight, ngrams)
        representation = [c for c in candidates if c.representation == (title_weight, ngrams)]
        for train_idx, val_idx in folds:
            classes, train_codes = np.unique(codes[train_idx], return_inverse=True)
            priors = np.bincount(train_codes) / len(train_codes)
            x_train, x_val = tfidf.split(rows[train_idx], rows[val_idx])
            distances, indices = cosine_neighbors(x_val, x_train, max_k)
            neighbor_codes = train_codes[indices]
            for params in representation:
                scores = class_scores(
                    neighbor_codes[:, : params.k], distances[:, : params.k], len(classes),
                    params.vote, params.prior_alpha, priors,
                )
                predicted = classes[scores.argmax(axis=1)]
                fold_scores[params].append(macro_f1(codes[val_idx], predicted, len(names)))
    means = {params: float(np.mean(scores)) for params, scores in fold_scores.items()}
    best = max(candidates, key=lambda p: means[p])  # max keeps the first of equal scores
    return Selection(best=best, cv_macro_f1=means)


def fit_knn(postings: pd.DataFrame, labels: pd.Series, params: KnnParams) -> Pipeline:
    return knn_pipeline(
        params.title_weight, params.k, params.vote, params.prior_alpha, params.ngrams
    ).fit(
        model_input(postings), np.asarray(labels)
    )
