"""Cosine KNN over posting text, with the vote rules the model selection chooses among.

One function, `class_scores`, turns neighbour lists into class scores. The fast model selection
calls it on neighbour lists queried once per fold; the fitted `CosineKNNClassifier` calls it on
the neighbours of new postings. So the model that imputes votes exactly as the one that was
scored.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, normalize
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.sparsefuncs import sparse_matmul_to_dense
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2
from sklearn.utils.validation import check_is_fitted, validate_data

from .saved_state import CompactTfidfVectorizer, SparseMatricesAsArrays

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


# Scripts written without spaces between words: Han (Chinese, Japanese kanji), hiragana,
# katakana (with the half-width forms) and Hangul. To scikit-learn's token pattern a run of them
# is one token, a whole clause, shared by no other posting.
_CJK = ("\u1100-\u11ff\u3040-\u30ff\u31f0-\u31ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
        "\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f")
_HAS_CJK = re.compile(f"[{_CJK}]")
_WORD = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern
# A run of CJK characters, or of two or more other word characters.
_CJK_RUN_OR_WORD = re.compile(f"[{_CJK}]+|[^\\W{_CJK}]{{2,}}")


def text_tokens(text: str) -> list[str]:
    """The words of a (lowercased) text: scikit-learn's default tokens, except that a run of
    CJK characters becomes its overlapping character pairs ("工程师" is "工程", "程师"; a run
    of one character is that character), as Lucene's CJK analyzer reads them. Text without a
    CJK character gets exactly the default tokens, so English features are unchanged."""
    if not _HAS_CJK.search(text):
        return _WORD.findall(text)
    tokens = []
    for run in _CJK_RUN_OR_WORD.findall(text):
        if _HAS_CJK.match(run):
            tokens += [run[i : i + 2] for i in range(len(run) - 1)] or [run]
        else:
            tokens.append(run)
    return tokens


# Word pairs multiply the vocabulary: with bigrams the cap is raised and a term must occur in
# two postings, which drops the one-off pairs that only add noise.
MAX_FEATURES_WITH_BIGRAMS = 50_000


def _tfidf(ngrams: int = 1) -> TfidfVectorizer:
    # TfidfVectorizer itself, saved compactly (classification/saved_state.py: its vocabulary as one array).
    if ngrams == 1:
        return CompactTfidfVectorizer(max_features=MAX_FEATURES, stop_words="english",
                                      sublinear_tf=True, tokenizer=text_tokens,
                                      token_pattern=None)
    return CompactTfidfVectorizer(
        max_features=MAX_FEATURES_WITH_BIGRAMS, ngram_range=(1, ngrams), min_df=2,
        stop_words="english", sublinear_tf=True, tokenizer=text_tokens, token_pattern=None,
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


def _blocks(title_weight: float | None) -> list[tuple[str | None, float]]:
    """The text blocks of a representation: (column, or None for title + description; weight)."""
    if title_weight is None:
        return [(None, 1.0)]
    return [("title", float(title_weight)), ("description_text", 1.0)]


def fold_vocabulary(train_counts: sp.csr_matrix, max_features: int, min_df: int) -> np.ndarray:
    """The count columns TfidfVectorizer, fitted on these rows, would keep, in its order.

    The columns are the terms in alphabetical order, as a fitted vectorizer sorts them; its
    vocabulary is the terms these rows contain, cut by min_df and then to the max_features most
    frequent with the very argsort scikit-learn uses, so ties fall the same way.
    """
    document_frequency = np.bincount(train_counts.indices, minlength=train_counts.shape[1])
    seen = np.flatnonzero(document_frequency > 0)
    mask = document_frequency[seen] >= min_df
    if mask.sum() > max_features:
        term_frequency = np.asarray(train_counts[:, seen].sum(axis=0)).ravel()
        kept = (-term_frequency[mask]).argsort()[:max_features]
        limited = np.zeros(len(seen), dtype=bool)
        limited[np.flatnonzero(mask)[kept]] = True
        mask = limited
    return seen[mask]


# TfidfTransformer(sublinear_tf=True)'s fit and transform, the same operations in the same order
# (scikit-learn 1.9's feature_extraction/text.py; tested equal to the bit), without its input
# validation: a selection splits its postings about 350 times, and at 50 postings validation
# was 60 % of each split's 5.5 ms (cProfile, issue 28's suite-time work).
def smooth_idf(counts: sp.csr_matrix) -> np.ndarray:
    """TfidfTransformer().fit(counts).idf_: ln((1 + rows) / (1 + document frequency)) + 1 per
    column (float64, one per column of `counts`)."""
    document_frequency = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float64)
    document_frequency += 1.0
    idf = np.full_like(document_frequency, fill_value=counts.shape[0] + 1, dtype=np.float64)
    idf /= document_frequency
    np.log(idf, out=idf)
    idf += 1.0
    return idf


def sublinear_tfidf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """TfidfTransformer(sublinear_tf=True) fitted to `idf`, transforming float64 CSR `counts`
    in place (1 + ln tf, times idf, rows scaled to unit l2 norm); returns `counts`."""
    np.log(counts.data, counts.data)
    counts.data += 1.0
    counts.data *= idf[counts.indices]
    inplace_csr_row_normalize_l2(counts)
    return counts


class TextCounts:
    """Token counts of one set of postings per text block and n-gram size, each made once.

    Tokenising is most of a vectoriser's time. Every fold and representation of a selection, and
    every outer fold of the out-of-fold estimate, reads its rows from here instead of tokenising
    the same texts again (the ×1 and ×2 title weights share their counts too).
    """

    def __init__(self, features: pd.DataFrame):
        self.features = features.reset_index(drop=True)
        self._blocks: dict[tuple[str | None, int], sp.csr_matrix] = {}

    def __len__(self) -> int:
        return len(self.features)

    def block(self, column: str | None, ngrams: int) -> sp.csr_matrix:
        """Counts of `column` (None: title + description joined) over every posting, the columns
        the terms in alphabetical order."""
        key = (column, ngrams)
        if key not in self._blocks:
            tfidf = _tfidf(ngrams)
            counter = CountVectorizer(
                stop_words=tfidf.stop_words, ngram_range=tfidf.ngram_range,
                tokenizer=tfidf.tokenizer, token_pattern=tfidf.token_pattern, dtype=np.float64,
            )
            texts = (joined_text(self.features) if column is None
                     else self.features[column].fillna(""))
            self._blocks[key] = counter.fit_transform(texts).tocsr()
        return self._blocks[key]


class FoldTfidf:
    """TF-IDF features of the same postings for many train / validation splits, tokenised once.

    `split(train, val)` returns what `make_vectorizer(title_weight, ngrams)` fitted on the
    training rows and applied to both gives (to rounding, 1e-16): the vocabulary, its max_features
    cut, min_df and the IDF all come from the training rows. Rows are positions in `counts`.
    """

    def __init__(self, counts: TextCounts | pd.DataFrame, title_weight: float | None, ngrams: int = 1):
        if isinstance(counts, pd.DataFrame):
            counts = TextCounts(counts)
        self.blocks = []
        for column, weight in _blocks(title_weight):
            tfidf = _tfidf(ngrams)
            self.blocks.append(
                (counts.block(column, ngrams), weight, tfidf.max_features, tfidf.min_df)
            )

    def split(self, train_idx: np.ndarray, val_idx: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        train_parts, val_parts = [], []
        for counts, weight, max_features, min_df in self.blocks:
            train_counts = counts[train_idx]
            columns = fold_vocabulary(train_counts, max_features, min_df)
            train_counts = train_counts[:, columns]
            idf = smooth_idf(train_counts)
            train_parts.append(sublinear_tfidf(train_counts, idf) * weight)
            # A vectorizer's transform sorts each row's terms, and the l2 norm sums in that order.
            val_counts = counts[val_idx][:, columns]
            val_counts.sort_indices()
            val_parts.append(sublinear_tfidf(val_counts, idf) * weight)
        if len(train_parts) == 1:
            return train_parts[0].tocsr(), val_parts[0].tocsr()
        return sp.hstack(train_parts, format="csr"), sp.hstack(val_parts, format="csr")


# Query rows × training rows of one block of similarities: 16 MB of float64, reused block after
# block. Measured on 3,591 × 14,365 postings: 2.9 s against 4.3 s with 256 MB blocks (fresh
# memory costs page faults) and 5.0 s for NearestNeighbors.kneighbors.
NEIGHBOR_BLOCK_CELLS = 2_000_000


def cosine_neighbors(
    queries: sp.spmatrix, training: sp.spmatrix, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of each query row's k nearest training rows by cosine, nearest first.

    The same neighbours and distances as NearestNeighbors(metric="cosine", algorithm="brute"),
    ties included, computed as that does (normalised rows, 1 - similarity, argpartition then
    argsort), but block by block into one reused buffer, multiplied sparse × sparse straight
    into it, with none of its other full-size temporaries.
    """
    k = min(k, training.shape[0])
    queries = normalize(sp.csr_matrix(queries, dtype=np.float64))
    training_t = normalize(sp.csr_matrix(training, dtype=np.float64)).T.tocsr()
    rows_per_block = max(1, NEIGHBOR_BLOCK_CELLS // max(1, training.shape[0]))
    buffer = np.empty((min(rows_per_block, queries.shape[0]), training.shape[0]))
    distances = np.empty((queries.shape[0], k))
    indices = np.empty((queries.shape[0], k), dtype=np.intp)
    for start in range(0, queries.shape[0], rows_per_block):
        rows = queries[start : start + rows_per_block]
        block = sparse_matmul_to_dense(rows, training_t, out=buffer[: rows.shape[0]])
        np.subtract(1.0, block, out=block)
        np.clip(block, 0.0, 2.0, out=block)
        nearest = np.argpartition(block, k - 1, axis=1)[:, :k]
        block_distances = np.take_along_axis(block, nearest, axis=1)
        order = np.argsort(block_distances, axis=1)
        stop = start + rows.shape[0]
        distances[start:stop] = np.take_along_axis(block_distances, order, axis=1)
        indices[start:stop] = np.take_along_axis(nearest, order, axis=1)
    return distances, indices


# Imputation searches an inverted file (IVF) instead of every labelled posting once the model
# holds more than this many: the exact search costs postings to impute × labelled postings
# (2,500 s for 280k × 120k at 400,000 postings, 1,912 s in issue 29's run), the IVF ~ probes /
# clusters of it (144 s, 99.97 % the same predictions, accuracy -0.02 point, count L1 +0.0000:
# issue 29's research, section 3, on the replay of benchmarks/replay.py, load 2-4). Below it
# the exact search takes seconds (5.9 s for 14k × 6k at 20,000 postings): nothing to save.
IVF_MIN_TRAINING_ROWS = 20_000
# Clusters grow with the labelled postings (≈ 250 each), so a probe's cost stays a fixed share
# of the exact search: 512 clusters at 120k labelled, 8 probed, is what the research measured.
IVF_ROWS_PER_CLUSTER = 250
IVF_PROBES = 8
# k-means learns its centroids from a sample of this many rows (every row is then assigned):
# the research's 30,000-row fits lost nothing against exact at 100k and 400k postings.
IVF_FIT_ROWS = 30_000
# Lloyd iterations of the k-means (from scikit-learn's k-means++ start). Measured with
# benchmarks/ivf_accuracy.py at 20,000 postings (5,939 labelled × 14,022 to impute, 8 probed,
# load 3-7), same predictions as exact / accuracy loss: 23 clusters, 3 iterations 99.37 % / 0.40
# point, 8 iterations 99.60 % / 0.25; 80 clusters, 3 iterations 99.28 % / 0.29, 8 iterations
# 99.24 % / 0.41 (more iterations buy nothing steady); random starts lost up to 0.6 point,
# MiniBatchKMeans 99.76-99.39 % but 3-20× the fit time (74 s for 224 clusters on 14,000 rows,
# ~5 min expected at 480 clusters on 30,000). A hand-written spherical k-means (the research's)
# fitted 224 clusters in 3.9 s against KMeans' 19 s, the same neighbours found: the lever if the
# fit ever matters.
IVF_KMEANS_ITERATIONS = 3
# Postings transformed and searched at once when imputing: bounds the TF-IDF rows and the IVF's
# query × centroid temporaries (~4 GiB for all 280k at once at 400k, ~0.2 GiB per 20k slice).
IMPUTE_SLICE_POSTINGS = 20_000


def fit_neighbour_index(
    training: sp.spmatrix, clusters: int, fit_rows: int = IVF_FIT_ROWS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(centroids, clusters × features float32 unit rows; each training row's cluster, int32) of
    k-means on the L2-normalised rows: scikit-learn's KMeans (k-means++ start,
    IVF_KMEANS_ITERATIONS Lloyd iterations) fitted on a sample of `fit_rows` rows, its centroids
    normalised, every row then assigned to its most similar centroid by cosine (spherical
    k-means' assignment). Raises ValueError when `clusters` exceeds the rows."""
    rows = normalize(sp.csr_matrix(training, dtype=np.float64))
    if clusters > rows.shape[0]:
        raise ValueError(f"{clusters} clusters for {rows.shape[0]} rows")
    rng = np.random.default_rng(seed)
    sample = rows[np.sort(rng.choice(rows.shape[0], min(fit_rows, rows.shape[0]), replace=False))]
    kmeans = KMeans(n_clusters=clusters, n_init=1, max_iter=IVF_KMEANS_ITERATIONS,
                    random_state=seed).fit(sample)
    centroids = normalize(kmeans.cluster_centers_).astype(np.float32)
    members = np.concatenate([
        np.asarray(rows[start : start + IMPUTE_SLICE_POSTINGS] @ centroids.T).argmax(axis=1)
        for start in range(0, rows.shape[0], IMPUTE_SLICE_POSTINGS)
    ]).astype(np.int32)
    return centroids, members


def ivf_neighbors(
    queries: sp.spmatrix, training: sp.spmatrix, k: int, centroids: np.ndarray,
    members: np.ndarray, probes: int = IVF_PROBES,
) -> tuple[np.ndarray, np.ndarray]:
    """`cosine_neighbors`' distances and indices, searched among the training rows of each
    query's `probes` most similar centroids only (`fit_neighbour_index`): exact cosine inside
    them, so with every cluster probed the result is `cosine_neighbors`' up to ties (rows at
    the same distance may be taken in another order: tested on distinct rows). A query whose
    probed clusters hold fewer than k rows is searched exhaustively."""
    k = min(k, training.shape[0])
    # Unnormalised rows for the searches: cosine_neighbors normalises them as the exact search
    # does, to the last bit.
    queries = sp.csr_matrix(queries, dtype=np.float64)
    training = sp.csr_matrix(training, dtype=np.float64)
    clusters = centroids.shape[0]
    probes = min(probes, clusters)
    similarity = np.asarray(normalize(queries) @ centroids.T)
    probed = np.argpartition(-similarity, probes - 1, axis=1)[:, :probes]
    # Per query, k candidates from each probed cluster (slot j: its j-th probed cluster).
    candidate_distances = np.full((queries.shape[0], probes * k), np.inf)
    candidate_indices = np.full((queries.shape[0], probes * k), -1, dtype=np.intp)
    by_cluster = np.argsort(members, kind="stable")
    bounds = np.searchsorted(members[by_cluster], np.arange(clusters + 1))
    for cluster in range(clusters):
        rows = by_cluster[bounds[cluster] : bounds[cluster + 1]]
        asking, slots = np.nonzero(probed == cluster)
        if not len(rows) or not len(asking):
            continue
        distances, local = cosine_neighbors(queries[asking], training[rows], k)
        columns = slots[:, None] * k + np.arange(distances.shape[1])
        candidate_distances[asking[:, None], columns] = distances
        candidate_indices[asking[:, None], columns] = rows[local]
    nearest = np.argsort(candidate_distances, axis=1, kind="stable")[:, :k]
    distances = np.take_along_axis(candidate_distances, nearest, axis=1)
    indices = np.take_along_axis(candidate_indices, nearest, axis=1)
    short = np.flatnonzero((indices < 0).any(axis=1))
    if len(short):
        distances[short], indices[short] = cosine_neighbors(queries[short], training, k)
    return distances, indices


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


# A posting whose nearest labelled posting is further than this (cosine distance: less than a
# tenth alike) learns nothing from its neighbours; imputation counts it at the class prior and
# writes no category on it (classification/serving.py). On the shared postings no labelled posting held
# out, and no posting without a category, is further than 0.89 from its nearest labelled one; 30
# postings in German, which no labelled posting is written in, were all at 0.94 or more and were
# otherwise given Software Engineering at probability 0.91 (a reviewer's finding). The votes
# themselves stay scikit-learn's KNN's (selection is tested equal to GridSearchCV).
NO_INFORMATION_DISTANCE = 0.9


def class_scores(
    neighbor_labels: np.ndarray,
    distances: np.ndarray,
    n_classes: int,
    vote: str = "uniform",
    prior_alpha: float = 0.0,
    class_priors: np.ndarray | None = None,
) -> np.ndarray:
    """Class scores per row from its neighbours (distances nearest first), rows summing to 1.

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


def fold_scores(
    counts: TextCounts,
    title_weight: float | None,
    ngrams: int,
    k: int,
    vote: str,
    prior_alpha: float,
    train_rows: np.ndarray,
    train_labels: np.ndarray,
    query_rows: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(classes, class scores of the query rows) of the KNN with these settings trained on the
    training rows: what `knn_pipeline(...).fit(train).predict_proba(query)` gives, from counts
    tokenised once (tested equal)."""
    x_train, x_query = FoldTfidf(counts, title_weight, ngrams).split(train_rows, query_rows)
    classes, codes = np.unique(np.asarray(train_labels), return_inverse=True)
    priors = np.bincount(codes, minlength=len(classes)) / len(codes)
    distances, indices = cosine_neighbors(x_query, x_train, k)
    return classes, class_scores(codes[indices], distances, len(classes), vote, prior_alpha, priors)


class CosineKNNClassifier(SparseMatricesAsArrays, ClassifierMixin, BaseEstimator):
    """K nearest neighbours by cosine distance, with a vote rule and class-prior correction.

    With vote="uniform" and prior_alpha=0 it predicts as scikit-learn's
    KNeighborsClassifier(metric="cosine") (ties go to the first class in sorted order). It
    passes scikit-learn's `check_estimator` (tested).
    """

    def __init__(self, n_neighbors: int = 5, vote: str = "uniform", prior_alpha: float = 0.0):
        self.n_neighbors = n_neighbors
        self.vote = vote
        self.prior_alpha = prior_alpha

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # TF-IDF matrices are sparse
        return tags

    def fit(self, X, y):
        X, y = validate_data(self, X, y, accept_sparse="csr")
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        self.train_labels_ = labels
        self.class_priors_ = np.bincount(labels, minlength=len(self.classes_)) / len(labels)
        self.training_matrix_ = sp.csr_matrix(X)
        # Imputation's neighbour index, fitted with the model and saved with it (None: exact).
        self.ivf_centroids_, self.ivf_members_ = (
            fit_neighbour_index(X, X.shape[0] // IVF_ROWS_PER_CLUSTER)
            if X.shape[0] > IVF_MIN_TRAINING_ROWS else (None, None))
        return self

    def predict_proba(self, X) -> np.ndarray:
        return self.predict_proba_and_nearest(X)[0]

    def predict_proba_and_nearest(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(class scores, rows × classes; each row's cosine distance to its nearest training
        row): what a posting's neighbours say, and how alike the nearest of them is."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", reset=False)
        distances, indices = self.neighbors(X)
        return class_scores(
            self.train_labels_[indices], distances, len(self.classes_), self.vote,
            self.prior_alpha, self.class_priors_,
        ), distances[:, 0]

    def neighbors(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Distances and indices of each row's n_neighbors nearest training rows: through the
        IVF index when fit made one (more than IVF_MIN_TRAINING_ROWS rows), else exact; a model
        saved before the index existed searches exactly."""
        centroids = getattr(self, "ivf_centroids_", None)
        if centroids is None:
            return cosine_neighbors(X, self.training_matrix_, self.n_neighbors)
        return ivf_neighbors(X, self.training_matrix_, self.n_neighbors, centroids,
                             self.ivf_members_)

    def predict(self, X) -> np.ndarray:
        scores = self.predict_proba(X)  # first: it says when the model is not fitted
        return self.classes_[scores.argmax(axis=1)]


def scores_in_slices(
    model: Pipeline, postings: pd.DataFrame,
    texts: Callable[[pd.Series], pd.DataFrame] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(class scores, postings × classes; each posting's cosine distance to its nearest
    training row) of a fitted `knn_pipeline` for `postings`, transformed and searched
    IMPUTE_SLICE_POSTINGS at a time, so memory holds one slice's texts and features.

    The texts (INPUT_COLUMNS) are `postings`' own, or, with `texts`, read a slice at a time:
    `texts(posting_ids)` returns them for those ids in that order (the texts of 280,000 postings
    were most of imputed_silver's 6 GiB at 400,000 postings: issue 29)."""
    scores, nearest = [np.zeros((0, len(model.classes_)))], [np.zeros(0)]
    for start in range(0, len(postings), IMPUTE_SLICE_POSTINGS):
        part = postings.iloc[start : start + IMPUTE_SLICE_POSTINGS]
        if texts is not None:
            part = texts(part["posting_id"])
        features = model[:-1].transform(model_input(part))
        part_scores, part_nearest = model[-1].predict_proba_and_nearest(features)
        scores.append(part_scores)
        nearest.append(part_nearest)
    return np.concatenate(scores), np.concatenate(nearest)


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
