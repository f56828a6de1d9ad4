"""Baselines the benchmarks and tests compare against; the pipeline itself never uses them.

- `seed_method`: the seed's classifier (one TF-IDF text, uniform KNN, k by 5-fold CV);
- `gridsearch_seed`: the seed's own selection, GridSearchCV over Pipeline(tfidf, knn), which the
  fast selection must reproduce on the seed's grid (same folds, same scores, same k).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from careerpulse_assets.classification.evaluation import Fitted
from careerpulse_assets.classification.knn import make_vectorizer, model_input
from careerpulse_assets.classification.model_selection import (
    SEED_GRID,
    cv_folds,
    fit_knn,
    largest_usable_k,
    select_knn,
)


def seed_method(postings: pd.DataFrame, labels: pd.Series) -> Fitted:
    """The seed: one TF-IDF text, uniform KNN, k from {3, 5, 7, 10, 15} by 5-fold CV."""
    selection = select_knn(postings, labels, SEED_GRID)
    return Fitted(fit_knn(postings, labels, selection.best), selection.best.describe(),
                  selection.best, selection.best_score)


def gridsearch_seed(postings: pd.DataFrame, labels: pd.Series, ks=SEED_GRID.ks) -> GridSearchCV:
    """The seed's own selection, for comparison: GridSearchCV over Pipeline(tfidf, knn)."""
    usable = [k for k in ks if k <= largest_usable_k(len(labels))]
    pipeline = Pipeline(
        [("features", make_vectorizer(None)), ("knn", KNeighborsClassifier(metric="cosine"))]
    )
    search = GridSearchCV(
        pipeline, {"knn__n_neighbors": usable}, cv=cv_folds(), scoring="f1_macro"
    )
    return search.fit(model_input(postings), np.asarray(labels))
