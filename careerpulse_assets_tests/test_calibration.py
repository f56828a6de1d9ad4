"""Isotonic calibration of the KNN's class scores, and the calibration figures."""

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import brier_score_loss

from careerpulse_assets.classification.calibration import (
    brier_score,
    calibrated,
    calibration_report,
    expected_calibration_error,
    fit_calibration,
)
from careerpulse_assets.classification.knn import model_input
from careerpulse_assets.classification.model_selection import KnnParams, fit_knn

from .muse_fixtures import imbalanced_postings
from benchmarks.classifier_comparison import silver_from_items


def test_calibrating_scores_equals_scikit_learn_calibrating_the_model():
    silver = silver_from_items(imbalanced_postings(
        {"Software Engineering": 60, "Healthcare": 40, "Sales": 30}, unlabelled=0))
    train, held = silver.iloc[::2], silver.iloc[1::2]
    model = fit_knn(train, train["category"], KnnParams(k=5))
    library = CalibratedClassifierCV(FrozenEstimator(model), method="isotonic").fit(
        model_input(held), held["category"])

    ours = fit_calibration(model.predict_proba(model_input(held)), held["category"],
                           model.classes_)

    np.testing.assert_allclose(calibrated(ours, model.predict_proba(model_input(train))),
                               library.predict_proba(model_input(train)))


def overconfident(n=3000, seed=0):
    """Scores of a 3-class model that says 1.0 for its guess, which is right 70 % of the time."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    guess = np.where(rng.random(n) < 0.7, truth, rng.integers(0, 3, n))
    scores = np.zeros((n, 3))
    scores[np.arange(n), guess] = 1.0
    return scores, truth


def test_calibration_makes_overconfident_scores_mean_what_they_say():
    scores, truth = overconfident()
    classes = np.array(["a", "b", "c"])
    calibration = fit_calibration(scores[:1500], classes[truth[:1500]], classes)
    after = calibrated(calibration, scores[1500:])
    report = calibration_report(scores[1500:], after, classes[truth[1500:]], classes)

    assert report.brier_after < report.brier_before
    assert report.ece_after < 0.05 < report.ece_before
    assert report.log_loss_after < report.log_loss_before
    assert abs(after.max(axis=1).mean() - 0.8) < 0.05  # 0.7 + 0.3 / 3 right
    assert "Brier" in report.describe()


def test_brier_score_is_the_sum_of_one_versus_rest_brier_scores():
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.ones(3), 200)
    truth = rng.integers(0, 3, 200)
    expected = sum(brier_score_loss(truth == c, probabilities[:, c]) for c in range(3))
    assert np.isclose(brier_score(probabilities, truth), expected)
    # A category the model does not know (-1) is wrong in every class.
    assert np.isclose(brier_score(np.eye(3)[[0]], np.array([-1])), 1.0)


def test_expected_calibration_error_is_zero_for_perfectly_calibrated_bins():
    probabilities = np.array([[0.75, 0.25]] * 4 + [[0.95, 0.05]] * 20)
    right = np.array([True, True, True, False] + [True] * 19 + [False])
    assert np.isclose(expected_calibration_error(probabilities, right), 0.0)
