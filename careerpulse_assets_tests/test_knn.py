import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from careerpulse_assets.classification import knn as knn_module
from careerpulse_assets.classification.knn import (
    CosineKNNClassifier,
    FoldTfidf,
    class_scores,
    cosine_neighbors,
    fit_neighbour_index,
    ivf_neighbors,
    knn_pipeline,
    make_vectorizer,
    model_input,
    scores_in_slices,
    smooth_idf,
    sublinear_tfidf,
    TextCounts,
    vote_weights,
)
from careerpulse_assets.ingestion.postings import silver_row

from .muse_fixtures import cjk_postings, synthetic_postings


@pytest.fixture(scope="module")
def vectors():
    frame = pd.DataFrame([silver_row(i) for i in synthetic_postings(per_category=20, seed=3)])
    frame = frame[frame["category"].notna()].reset_index(drop=True)
    x = make_vectorizer(None).fit_transform(model_input(frame))
    return x, frame["category"].to_numpy()


@pytest.mark.parametrize("k, vote", [(1, "uniform"), (5, "uniform"), (4, "uniform"),
                                     (5, "distance"), (10, "distance")])
def test_matches_scikit_learn_knn_without_prior_correction(vectors, k, vote):
    x, y = vectors
    train, test = np.arange(len(y)) % 3 != 0, np.arange(len(y)) % 3 == 0
    ours = CosineKNNClassifier(n_neighbors=k, vote=vote).fit(x[train], y[train])
    theirs = KNeighborsClassifier(n_neighbors=k, metric="cosine", weights=vote).fit(
        x[train], y[train]
    )
    assert (ours.predict(x[test]) == theirs.predict(x[test])).all()
    np.testing.assert_allclose(ours.predict_proba(x[test]), theirs.predict_proba(x[test]))


def test_ties_go_to_the_first_class_as_in_scikit_learn():
    scores = class_scores(np.array([[1, 0]]), np.array([[0.2, 0.3]]), n_classes=2)
    assert scores.tolist() == [[0.5, 0.5]] and scores.argmax() == 0


def test_distance_votes_weigh_near_neighbours_more_and_exact_matches_win():
    weights = vote_weights(np.array([[0.1, 0.4], [0.0, 0.5]]), "distance")
    assert weights[0].tolist() == pytest.approx([10.0, 2.5])
    assert weights[1].tolist() == [1.0, 0.0]


def test_prior_correction_lets_a_rare_class_win_an_even_vote():
    labels = np.array([[0, 0, 1]])  # two votes for the common class 0, one for rare class 1
    distances = np.full((1, 3), 0.5)
    priors = np.array([0.9, 0.1])
    plain = class_scores(labels, distances, 2, "uniform", 0.0, priors)
    corrected = class_scores(labels, distances, 2, "uniform", 1.0, priors)
    assert plain.argmax() == 0 and corrected.argmax() == 1
    np.testing.assert_allclose(corrected.sum(axis=1), 1.0)


def test_unknown_vote_rule_is_an_error():
    with pytest.raises(ValueError, match="unknown vote rule"):
        vote_weights(np.ones((1, 1)), "majority")


@pytest.fixture(scope="module")
def postings():
    items = synthetic_postings(per_category=30, seed=5) + cjk_postings(per_group=4)
    return model_input(pd.DataFrame([silver_row(i) for i in items]))


@pytest.mark.parametrize("title_weight, ngrams", [(None, 1), (None, 2), (2.0, 1)])
def test_fold_tfidf_equals_a_vectorizer_fitted_on_the_training_rows(
    postings, title_weight, ngrams, monkeypatch
):
    # A small cap, so that the max_features cut (and its ties) is exercised on fixtures too.
    monkeypatch.setattr(knn_module, "MAX_FEATURES", 40)
    monkeypatch.setattr(knn_module, "MAX_FEATURES_WITH_BIGRAMS", 60)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(postings))
    train_idx, val_idx = np.sort(order[: len(order) * 3 // 4]), np.sort(order[len(order) * 3 // 4 :])
    vectorizer = make_vectorizer(title_weight, ngrams)
    expected_train = vectorizer.fit_transform(postings.iloc[train_idx])
    expected_val = vectorizer.transform(postings.iloc[val_idx])
    x_train, x_val = FoldTfidf(postings, title_weight, ngrams).split(train_idx, val_idx)
    assert x_train.shape == expected_train.shape and x_val.shape == expected_val.shape
    np.testing.assert_allclose(x_train.toarray(), expected_train.toarray(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(x_val.toarray(), expected_val.toarray(), rtol=0, atol=1e-15)


def test_the_fold_tfidf_arithmetic_is_tfidf_transformers_to_the_bit(postings):
    """smooth_idf and sublinear_tfidf skip TfidfTransformer's input validation (60 % of a
    selection's split at 50 postings): the idf and every stored value must be its own."""
    from sklearn.feature_extraction.text import TfidfTransformer

    counts = TextCounts(postings)
    rng = np.random.default_rng(1)
    for column, ngrams in [(None, 1), (None, 2), ("title", 1), ("description_text", 1)]:
        block = counts.block(column, ngrams)
        order = rng.permutation(block.shape[0])
        train, val = block[np.sort(order[:60])], block[np.sort(order[60:])]
        val.sort_indices()
        library = TfidfTransformer(sublinear_tf=True).fit(train)
        idf = smooth_idf(train)
        assert np.array_equal(idf, library.idf_)
        for rows in (train, val):
            expected, ours = library.transform(rows), sublinear_tfidf(rows.copy(), idf)
            assert np.array_equal(expected.indptr, ours.indptr)
            assert np.array_equal(expected.indices, ours.indices)
            assert np.array_equal(expected.data, ours.data)  # the same floats, not close ones


def test_cosine_neighbors_equal_scikit_learn_brute_force_in_small_blocks(vectors, monkeypatch):
    x, _ = vectors
    monkeypatch.setattr(knn_module, "NEIGHBOR_BLOCK_CELLS", 7 * x.shape[0])  # 7 rows a block
    queries, training = x[::3], x[1::3]
    distances, indices = cosine_neighbors(queries, training, 6)
    expected = NearestNeighbors(metric="cosine", algorithm="brute").fit(training)
    expected_distances, expected_indices = expected.kneighbors(queries, n_neighbors=6)
    assert (indices == expected_indices).all()
    np.testing.assert_array_equal(distances, expected_distances)


def test_the_knn_passes_scikit_learns_estimator_checks():
    import warnings

    from sklearn.utils.estimator_checks import check_estimator

    from careerpulse_assets.classification.knn import CosineKNNClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(CosineKNNClassifier(), on_fail=None)
    failed = {r["check_name"]: str(r["exception"])[:200] for r in results if r["status"] == "failed"}
    assert not failed, failed
    assert len(results) >= 50


@pytest.mark.parametrize("title_weight", [None, 2.0])
def test_chinese_and_japanese_postings_get_neighbours_in_their_own_language(title_weight):
    # Written without spaces, a clause was one token shared by no other posting: 0 of the 24
    # postings had its 3 nearest neighbours in its own language, every neighbour at distance 1.
    items = synthetic_postings(per_category=8, unlabelled=0) + cjk_postings()
    frame = pd.DataFrame([silver_row(i) for i in items])
    language = np.array([item.get("language", "en") for item in items])
    x = make_vectorizer(title_weight).fit_transform(model_input(frame))
    distances, indices = cosine_neighbors(x, x, 4)  # the posting itself, and its 3 nearest
    cjk = np.flatnonzero(language != "en")
    assert len(cjk) == 24
    for row in cjk:
        others = [n for n in indices[row] if n != row][:3]
        assert (language[others] == language[row]).all(), frame["title"][row]
        assert frame["category"][others[0]] == frame["category"][row], frame["title"][row]
    assert distances[cjk, 1].max() < 0.8


def test_ivf_probing_every_cluster_returns_exactly_the_exact_neighbours():
    import scipy.sparse as sp

    rng = np.random.default_rng(5)
    training = sp.random(1_500, 400, density=0.05, format="csr", random_state=rng)
    queries = sp.random(300, 400, density=0.05, format="csr", random_state=rng)
    centroids, members = fit_neighbour_index(training, 12)
    distances, indices = ivf_neighbors(queries, training, 7, centroids, members, probes=12)
    expected_distances, expected_indices = cosine_neighbors(queries, training, 7)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(distances, expected_distances)
    # Fewer probes search fewer rows: some neighbours are missed, never invented.
    near, found = ivf_neighbors(queries, training, 7, centroids, members, probes=2)
    assert (near >= expected_distances).all() and (found >= 0).all()


def test_ivf_predicts_as_the_exact_search_on_replayed_real_postings(shared_items, monkeypatch):
    from benchmarks.replay import ReplayedPostings, replay_sources

    # 5,000 postings replayed from the shared real ones, learnt under their current names (as
    # silver counts them), in the setting selection chose at 20,000 postings.
    postings = ReplayedPostings(replay_sources(shared_items), 5_000, unlabelled_share=0.0)
    frame = pd.DataFrame([silver_row(item) for item in postings])
    frame["category"] = postings.true_categories()["true_category"].to_numpy()
    train, test = frame.iloc[:4_000], frame.iloc[4_000:]
    monkeypatch.setattr(knn_module, "IVF_MIN_TRAINING_ROWS", 1_000)  # 16 clusters, 8 probed
    model = knn_pipeline(title_weight=1.0, k=3, vote="distance").fit(
        model_input(train), train["category"].to_numpy())
    knn = model[-1]
    assert knn.ivf_centroids_.shape[0] == 16
    features = model[:-1].transform(model_input(test))
    approximate = knn.predict(features)
    knn.ivf_centroids_ = None  # as a model without an index: the exact search
    exact = knn.predict(features)
    assert np.mean(approximate == exact) >= 0.99


def test_imputing_in_slices_gives_what_one_search_gives(monkeypatch):
    frame = pd.DataFrame([silver_row(i) for i in synthetic_postings(per_category=20, seed=3)])
    labelled = frame[frame["category"].notna()]
    model = knn_pipeline(k=5).fit(model_input(labelled), labelled["category"].to_numpy())
    whole = model[-1].predict_proba_and_nearest(model[:-1].transform(model_input(frame)))
    monkeypatch.setattr(knn_module, "IMPUTE_SLICE_POSTINGS", 7)
    sliced = scores_in_slices(model, frame)
    np.testing.assert_array_equal(sliced[0], whole[0])
    np.testing.assert_array_equal(sliced[1], whole[1])
