"""The gate's out-of-fold estimate: every posting predicted by a model that never saw it, and
figures equal to scikit-learn's on those predictions."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from careerpulse_assets.classification.evaluation import labelled_set
from careerpulse_assets.classification.out_of_fold import (
    compare,
    estimate,
    fixed_knn,
    make_folds,
    nested_knn,
    out_of_fold,
)
from careerpulse_assets.ingestion.postings import silver_row
from careerpulse_assets.classification.model_selection import KnnGrid, KnnParams

from .muse_fixtures import imbalanced_postings

SMALL = KnnGrid(representations=((None, 1),), ks=(3, 5), prior_alphas=(0.0, 0.5))


@pytest.fixture
def labelled():
    items = imbalanced_postings({"Software Engineering": 60, "Healthcare": 12, "Sales": 10})
    silver = pd.DataFrame([silver_row(i) for i in items])
    rare = silver.iloc[:3].assign(category="Legal Services", title=["a", "b", "c"])
    return labelled_set(pd.concat([silver, rare], ignore_index=True))


def test_every_posting_is_predicted_once_a_repeat_by_a_model_that_never_saw_it(labelled):
    folds = make_folds(labelled, repeats=2)
    seen = []

    def spy(counts, rows, labels):
        seen.append(set(rows))
        return KnnParams(k=3)

    oof = out_of_fold(labelled, folds, spy)
    assert oof.predicted.shape == (2, len(labelled.postings) + 3)
    assert all(p is not None for p in oof.predicted.ravel())
    n = len(labelled.postings)
    for r, splits in enumerate(folds.splits):
        tested = np.concatenate([test for _, test in splits])
        assert sorted(tested) == list(range(n))  # each once per repeat
        for (_, test), trained_on in zip(splits, seen[r * 5:(r + 1) * 5], strict=True):
            assert not set(test) & trained_on
            assert max(trained_on) < n  # the too-rare postings are never trained on
    assert (oof.truth[~oof.learnable] == "Legal Services").all()


def test_fold_predictions_equal_the_fitted_pipeline(labelled):
    from careerpulse_assets.classification.knn import TextCounts, model_input
    from careerpulse_assets.classification.out_of_fold import predict_rows
    from careerpulse_assets.classification.model_selection import fit_knn

    postings = labelled.postings
    counts = TextCounts(model_input(postings))
    train, query = np.arange(0, len(postings), 2), np.arange(1, len(postings), 2)
    labels = postings["category"].to_numpy(dtype=object)
    for params in (KnnParams(k=5), KnnParams(2.0, 1, 3, "distance", 0.5),
                   KnnParams(None, 2, 7, "uniform", 1.0)):
        predicted, confidence = predict_rows(counts, params, train, labels[train], query)
        model = fit_knn(postings.iloc[train], postings["category"].iloc[train], params)
        probabilities = model.predict_proba(model_input(postings.iloc[query]))
        assert (predicted == model.classes_[probabilities.argmax(axis=1)]).all()
        assert np.allclose(confidence, probabilities.max(axis=1), atol=1e-12)


def test_the_estimate_equals_scikit_learn_on_the_predictions_averaged_over_repeats(labelled):
    oof = out_of_fold(labelled, make_folds(labelled, repeats=3), nested_knn(SMALL))
    result = estimate(oof, resamples=200, judged_min=10)
    expected_accuracy = np.mean([accuracy_score(oof.truth, p) for p in oof.predicted])
    # Macro-F1 over the categories the estimate holds 10 postings of (Software Engineering 60,
    # Healthcare 12, Sales 10; not Legal Services, 3), whatever their truths' predictions.
    judged = ["Healthcare", "Sales", "Software Engineering"]
    assert list(result.judged) == judged
    expected_macro = np.mean([
        f1_score(oof.truth, p, labels=judged, average="macro", zero_division=0)
        for p in oof.predicted
    ])
    assert result.metrics["accuracy"] == pytest.approx(expected_accuracy, abs=1e-12)
    assert result.metrics["macro_f1"] == pytest.approx(expected_macro, abs=1e-12)
    assert result.postings == len(labelled.postings) + 3 and result.rare_postings == 3
    for name, (low, high) in result.intervals.items():
        assert low <= result.metrics[name] <= high, name
    # The three too-rare postings can never be right: accuracy says so.
    assert result.metrics["accuracy"] <= (len(labelled.postings)) / result.postings


def test_a_recipe_compared_with_itself_differs_by_nothing(labelled):
    folds = make_folds(labelled, repeats=1)
    a = out_of_fold(labelled, folds, fixed_knn(KnnParams(k=5)))
    b = out_of_fold(labelled, folds, fixed_knn(KnnParams(k=5)))
    same = compare(a, b, resamples=100)
    assert same.difference == {"accuracy": 0.0, "macro_f1": 0.0, "weighted_f1": 0.0}
    assert all(interval == (0.0, 0.0) for interval in same.intervals.values())


def test_a_clearly_worse_recipe_is_worse_with_the_whole_interval_below_zero(labelled):
    folds = make_folds(labelled, repeats=1)
    good = out_of_fold(labelled, folds, fixed_knn(KnnParams(k=3, prior_alpha=0.5)))
    poor = out_of_fold(labelled, folds, fixed_knn(KnnParams(k=15)))
    paired = compare(poor, good, resamples=300)
    assert paired.difference["macro_f1"] < -0.1
    assert paired.intervals["macro_f1"][1] < 0
    assert paired.champion["macro_f1"] == pytest.approx(estimate(good, 10).metrics["macro_f1"])
