"""Cosine KNN over posting text, with the vote rules the model selection chooses among.

One function, `class_scores`, turns neighbour lists into class scores. The fast model selection
calls it on neighbour lists queried once per fold; the fitted `CosineKNNClassifier` calls it on
the neighbours of new postings. So the model that imputes votes exactly as the one that was
scored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

MAX_FEATURES = 10_000
VOTE_RULES = ("uniform", "distance")
# The model reads these columns of a silver-like frame.
INPUT_COLUMNS = ["title", "description_text"]


def joined_text(frame: pd.DataFrame) -> pd.Series:
    """The seed's document: title + " " + description text."""
    return frame["title"].fillna("") + " " + frame["description_text"].fillna("")


def model_input(postings: pd.DataFrame) -> pd.DataFrame:
    """The columns the model reads, in order, with no missing text."""
    return postings[INPUT_COLUMNS].fillna("").reset_index(drop=True)


# Word pairs multiply the vocabulary: with bigrams the cap is raised and a term must occur in
# two postings, which drops the one-off pairs that only add noise.
MAX_FEATURES_WITH_BIGRAMS = 50_000


def _tfidf(ngrams: int = 1) -> TfidfVectorizer:
    if ngrams == 1:
        return TfidfVectorizer(max_features=MAX_FEATURES, stop_words="english", sublinear_tf=True)
    return TfidfVectorizer(
        max_features=MAX_FEATURES_WITH_BIGRAMS, ngram_range=(1, ngrams), min_df=2,
        stop_words="english", sublinear_tf=True,
    )


def make_vectorizer(title_weight: float | None, ngrams: int = 1) -> ColumnTransformer:
    """TF-IDF features of a posting.

    `title_weight=None` is the seed: one vocabulary over title + description. A number gives
    the title its own vocabulary, scaled by that weight against the description's, so a title
    word counts more than the same word deep in the body. `ngrams=2` adds word pairs.
    """
    if title_weight is None:
        joined = Pipeline(
            [("join", FunctionTransformer(joined_text)), ("tfidf", _tfidf(ngrams))]
        )
        return ColumnTransformer([("text", joined, INPUT_COLUMNS)])
    return ColumnTransformer(
        [("title", _tfidf(ngrams), "title"), ("body", _tfidf(ngrams), "description_text")],
        transformer_weights={"title": float(title_weight), "body": 1.0},
    )


def vote_weights(distances: np.ndarray, vote: str) -> np.ndarray:
    """Weight of each neighbour's vote; "distance" is scikit-learn's 1/d rule.

    As in scikit-learn, a row with an exact match (d = 0) gives its votes to the matches only.
    """
    if vote == "uniform":
        return np.ones_like(distances)
    if vote != "distance":
        raise ValueError(f"unknown vote rule {vote!r}; expected one of {VOTE_RULES}")
    with np.errstate(divide="ignore"):
        weights = 1.0 / distances
    exact = np.isinf(weights)
    rows_with_exact = exact.any(axis=1)
    weights[rows_with_exact] = exact[rows_with_exact]
    return weights


def class_scores(
    neighbor_labels: np.ndarray,
    distances: np.ndarray,
    n_classes: int,
    vote: str = "uniform",
    prior_alpha: float = 0.0,
    class_priors: np.ndarray | None = None,
) -> np.ndarray:
    """Class scores per row from its neighbours, rows summing to 1.

    With `prior_alpha` > 0 each class's votes are divided by prior_c ** alpha, so a rare
    category is not outvoted merely because common ones have more neighbours everywhere.
    """
    weights = vote_weights(distances, vote)
    scores = np.zeros((neighbor_labels.shape[0], n_classes))
    rows = np.repeat(np.arange(neighbor_labels.shape[0]), neighbor_labels.shape[1])
    np.add.at(scores, (rows, neighbor_labels.ravel()), weights.ravel())
    if prior_alpha:
        scores = scores / np.power(class_priors, prior_alpha)
    totals = scores.sum(axis=1, keepdims=True)
    totals[totals == 0] = 1.0
    return scores / totals


class CosineKNNClassifier(ClassifierMixin, BaseEstimator):
    """K nearest neighbours by cosine distance, with a vote rule and class-prior correction.

    With vote="uniform" and prior_alpha=0 it predicts as scikit-learn's
    KNeighborsClassifier(metric="cosine") (ties go to the first class in sorted order).
    """

    def __init__(self, n_neighbors: int = 5, vote: str = "uniform", prior_alpha: float = 0.0):
        self.n_neighbors = n_neighbors
        self.vote = vote
        self.prior_alpha = prior_alpha

    def fit(self, X, y):
        self.classes_, labels = np.unique(np.asarray(y), return_inverse=True)
        self.train_labels_ = labels
        self.class_priors_ = np.bincount(labels, minlength=len(self.classes_)) / len(labels)
        self.neighbors_ = NearestNeighbors(metric="cosine", algorithm="brute").fit(X)
        return self

    def predict_proba(self, X) -> np.ndarray:
        k = min(self.n_neighbors, len(self.train_labels_))
        distances, indices = self.neighbors_.kneighbors(X, n_neighbors=k)
        return class_scores(
            self.train_labels_[indices], distances, len(self.classes_), self.vote,
            self.prior_alpha, self.class_priors_,
        )

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def knn_pipeline(
    title_weight: float | None = None,
    k: int = 5,
    vote: str = "uniform",
    prior_alpha: float = 0.0,
    ngrams: int = 1,
) -> Pipeline:
    return Pipeline(
        [
            ("features", make_vectorizer(title_weight, ngrams)),
            ("knn", CosineKNNClassifier(n_neighbors=k, vote=vote, prior_alpha=prior_alpha)),
        ]
    )
