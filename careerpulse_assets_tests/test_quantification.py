"""Counting the postings without a category: QuaPy's methods on precomputed probabilities, the
prior correction, the shift test, the count model's errors and the intervals."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from careerpulse_assets.series import quantification
from careerpulse_assets.classification.out_of_fold import OutOfFold
from careerpulse_assets.series.quantification import (
    corrected_with,
    count_model_from,
    estimate_counts,
    _corrected_mean,
    matched,
    prevalence,
    prior_corrected,
    share_error,
    share_errors,
    shift_test,
)

CLASSES = np.array(["Healthcare", "Sales", "Software Engineering"], dtype=object)


def features(labels: np.ndarray, rng) -> np.ndarray:
    """Two overlapping clusters per class: a classifier is right about 80 % of the time."""
    centres = np.array([[0, 0], [2, 0], [0, 2]])
    return centres[labels] + rng.normal(0, 0.9, (len(labels), 2))


def test_prevalence_on_precomputed_probabilities_equals_quapy_fitting_its_own():
    from quapy.method.aggregative import PACC  # 0.9 s: imported where used

    rng = np.random.default_rng(0)
    y_train = rng.integers(0, 3, 900)
    y_val = rng.integers(0, 3, 600)
    y_test = rng.choice(3, 500, p=[0.6, 0.3, 0.1])
    classifier = LogisticRegression().fit(features(y_train, rng), y_train)
    x_val, x_test = features(y_val, rng), features(y_test, rng)
    library = PACC(classifier, fit_classifier=False, val_split=(x_val, y_val))
    library.fit(x_val, y_val)
    names = np.arange(3)

    ours = prevalence("PACC", names, classifier.predict_proba(x_val), y_val,
                      classifier.predict_proba(x_test))

    np.testing.assert_allclose(ours, library.predict(x_test))
    assert abs(ours[0] - 0.6) < 0.08  # and it corrects the shift
    pcc = prevalence("PCC", names, classifier.predict_proba(x_val), y_val,
                     classifier.predict_proba(x_test))
    np.testing.assert_allclose(pcc, classifier.predict_proba(x_test).mean(axis=0))
    with pytest.raises(ValueError, match="unknown"):
        prevalence("XYZ", names, classifier.predict_proba(x_val), y_val,
                   classifier.predict_proba(x_test))


def test_matched_probabilities_add_up_to_the_estimate():
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.ones(3), 400)
    shares = np.array([0.7, 0.3, 0.0])
    q = matched(probabilities, probabilities.mean(axis=0), shares)
    np.testing.assert_allclose(q.sum(axis=1), 1)
    np.testing.assert_allclose(q.mean(axis=0), shares, atol=1e-6)
    assert (q[:, 2] == 0).all()
    # Each posting keeps its order of the classes that remain (one prior for all postings).
    ratio = q[:, 0] / q[:, 1]
    np.testing.assert_allclose(ratio / (probabilities[:, 0] / probabilities[:, 1]),
                               ratio[0] / (probabilities[0, 0] / probabilities[0, 1]))


def test_the_corrected_mean_is_the_mean_of_the_corrected_probabilities():
    rng = np.random.default_rng(4)
    probabilities = rng.dirichlet(np.full(5, 0.3), 2000)
    probabilities[:20] = [1, 0, 0, 0, 0]  # rows every weight below leaves at 0: kept as they are
    # The last: a row whose total underflows toward 0 (1 / total would be inf: NaN means).
    for weights in (rng.uniform(0, 3, 5), np.array([0, 1.5, 0, 2, 0.5]),
                    np.array([1e-310, 1.0, 2.0, 0.5, 1.0])):
        np.testing.assert_allclose(
            _corrected_mean(probabilities, weights),
            prior_corrected(probabilities, np.ones(5), weights).mean(axis=0), rtol=0, atol=1e-12)


def test_the_shift_test_fires_on_a_shift_and_seldom_without_one():
    rng = np.random.default_rng(2)
    reference = rng.dirichlet([8, 2, 1], 3000)
    same = [shift_test(reference, reference[rng.integers(0, 3000, 200)], seed=s).shifted
            for s in range(40)]
    assert np.mean(same) <= 0.15
    shifted = rng.dirichlet([1, 2, 8], 200)
    test = shift_test(reference, shifted)
    assert test.shifted and test.statistic > test.critical
    assert "a prior shift" in test.describe()


@pytest.mark.parametrize("postings", [1_000, 50_000])
def test_the_shift_tests_normal_approximation_agrees_with_its_bootstrap(postings, monkeypatch):
    rng = np.random.default_rng(3)
    one_hot = np.eye(5)[rng.choice(5, 4000, p=[0.9, 0.04, 0.03, 0.02, 0.01])]  # most skewed
    smooth = rng.dirichlet([8, 2, 1, 0.5, 0.2], 4000)
    for reference in (one_hot, smooth):
        same = reference[rng.integers(0, 4000, postings)]
        normal = [shift_test(reference, same, seed=s) for s in range(8)]
        monkeypatch.setattr(quantification, "SHIFT_TEST_NORMAL_FROM", 10**9)
        bootstrap = [shift_test(reference, same, seed=s).critical for s in range(8)]
        monkeypatch.undo()
        ratio = np.mean([t.critical for t in normal]) / np.mean(bootstrap)
        assert abs(ratio - 1) < 0.05, ratio
        assert not any(t.shifted for t in normal)
        shifted = np.eye(5)[rng.choice(5, postings, p=[0.8, 0.08, 0.06, 0.04, 0.02])] \
            if reference is one_hot else rng.dirichlet([6, 3, 1.5, 0.5, 0.2], postings)
        assert shift_test(reference, shifted).shifted


def test_the_shift_test_of_one_category_has_nothing_to_find():
    for postings in (10, 2_000):
        test = shift_test(np.ones((50, 1)), np.ones((postings, 1)))
        assert test.statistic == 0 and test.critical == 0 and not test.shifted


def test_share_error_counts_unknown_categories_fully():
    truth = np.array(["Sales"] * 5 + ["Legal"] * 5)
    assert share_error(np.array([0.5, 0.5]), np.array(["Sales", "Healthcare"]), truth) == 1.0
    assert share_error(np.array([0.5]), np.array(["Sales"]), truth) == 0.5


def test_share_errors_are_the_conformal_quantile_of_what_each_sample_needed():
    rows = [{"method": "PCC", "kind": "natural", "postings": 100,
             "count": np.array([50.0]), "true": np.array([50.0 + e]), "variance": np.array([0.0])}
            for e in range(10)]
    sigma = share_errors(rows, "PCC", "natural", 1, level=0.9)
    # Each sample needed |error| / 1.645 / 100; the 10th of 10 (⌈11 × 0.9⌉ = 10).
    assert np.isclose(sigma[0], 9 / 1.645 / 100)
    assert share_errors(rows, "PACC", "natural", 1)[0] == 0


def knn_like_out_of_fold(n=1500, repeats=1, seed=3, rare=20):
    """Out-of-fold class scores of a 3-class model (vote shares of 5 neighbours), plus `rare`
    postings of a category too rare to learn."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, n, p=[0.2, 0.2, 0.6])
    truth = np.concatenate([CLASSES[labels], np.array(["Legal"] * rare, dtype=object)])
    everyone = np.concatenate([labels, rng.integers(0, 3, rare)])
    votes = np.where(rng.random((repeats, len(everyone), 5)) < 0.8, everyone[None, :, None],
                     rng.integers(0, 3, (repeats, len(everyone), 5)))
    scores = np.stack([(votes == c).mean(axis=2) for c in range(3)], axis=2)
    fold = np.stack([rng.permutation(np.arange(len(truth)) % 5) for _ in range(repeats)])
    learnable = np.arange(len(truth)) < n
    return OutOfFold.from_scores(truth, learnable, CLASSES, scores, fold), labels


def test_counts_of_a_shifted_mix_are_corrected_and_add_up():
    oof, _ = knn_like_out_of_fold()
    model = count_model_from(oof)
    assert list(model.rare_classes) == ["Legal"]
    # New postings: mostly Healthcare, scored like the out-of-fold ones.
    new, labels = knn_like_out_of_fold(n=2000, seed=9, rare=0)
    keep = np.flatnonzero(labels == 0)[:300].tolist() + np.flatnonzero(labels == 2)[:60].tolist()
    assert len(keep) == 360
    scores = new.scores[0, keep]
    true_shares = np.array([300, 0, 60]) / 360

    estimate = estimate_counts(model, scores)

    assert estimate.shift.shifted and estimate.method == "PACC"
    pcc = model.calibration.predict_proba(scores).mean(axis=0)
    assert (np.abs(estimate.counts[:3] / 360 - true_shares).sum()
            < np.abs(pcc - true_shares).sum())
    np.testing.assert_allclose(estimate.probabilities.sum(axis=1), 1)
    assert np.isclose(estimate.counts.sum(), 360)
    assert (estimate.low <= estimate.counts + 1e-9).all()
    assert (estimate.counts <= estimate.high + 1e-9).all()
    true_counts = np.array([300, 0, 60, 0])
    assert ((estimate.low <= true_counts) & (true_counts <= estimate.high)).mean() >= 0.75


def test_without_a_shift_pcc_counts_and_gives_rare_categories_their_share():
    oof, _ = knn_like_out_of_fold(seed=4)
    model = count_model_from(oof)
    new, _ = knn_like_out_of_fold(n=400, seed=11, rare=0)

    estimate = estimate_counts(model, new.scores[0])

    assert not estimate.shift.shifted and estimate.method == "PCC"
    assert list(estimate.classes) == [*CLASSES, "Legal"]
    assert np.isclose(estimate.counts[3], 400 * 20 / 1520)  # its share of the labelled
    assert 0 < model.expected_error("PCC") < 0.3


@pytest.mark.parametrize("seed, shifted", [(9, True), (11, False)])
def test_postings_corrected_with_a_kept_correction_get_what_its_estimate_gave_them(seed, shifted):
    """What an incremental imputed_silver does with a page of new postings: their probabilities
    under the kept method and weights are those the estimate on all postings gave them."""
    oof, _ = knn_like_out_of_fold()
    model = count_model_from(oof)
    new, labels = knn_like_out_of_fold(n=2000, seed=seed, rare=0)
    rows = (np.flatnonzero(labels == 0)[:300].tolist() + np.flatnonzero(labels == 2)[:60].tolist()
            if shifted else list(range(400)))
    scores = new.scores[0, rows]
    estimate = estimate_counts(model, scores)
    assert (estimate.method == "PACC") is shifted

    page = corrected_with(model, scores[-20:], estimate.method, estimate.weights)

    np.testing.assert_allclose(page.probabilities, estimate.probabilities[-20:], atol=1e-12)
    np.testing.assert_allclose(page.counts, estimate.probabilities[-20:].sum(axis=0), atol=1e-9)
    assert page.shift is None and "kept" in page.describe()
