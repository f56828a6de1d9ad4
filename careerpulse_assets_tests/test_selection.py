import numpy as np
import pandas as pd
import pytest

from benchmarks.baselines import gridsearch_seed
from careerpulse_assets.classification.evaluation import labelled_set
from careerpulse_assets.ingestion.postings import silver_row
from careerpulse_assets.classification.model_selection import (
    SEED_GRID,
    KnnGrid,
    KnnParams,
    NotEnoughLabels,
    select_knn,
)

from .muse_fixtures import synthetic_postings


def assert_same_as_gridsearch(postings, labels):
    search = gridsearch_seed(postings, labels)
    fast = select_knn(postings, labels, SEED_GRID)
    assert fast.best.k == search.best_params_["knn__n_neighbors"]
    assert [p.k for p in fast.cv_macro_f1] == list(search.cv_results_["param_knn__n_neighbors"])
    np.testing.assert_allclose(
        list(fast.cv_macro_f1.values()), search.cv_results_["mean_test_score"], rtol=0, atol=1e-12
    )


def test_fast_selection_equals_gridsearch_on_fixtures():
    # Noisy labels so that the k really differ in score.
    frame = pd.DataFrame([silver_row(i) for i in synthetic_postings(per_category=25, seed=11)])
    frame.loc[frame.index[::4], "category"] = "Sales"
    labelled = labelled_set(frame)
    assert_same_as_gridsearch(labelled.postings, labelled.labels)


@pytest.mark.slow
def test_fast_selection_equals_gridsearch_on_the_shared_postings(shared_items):
    rows = {}
    for item in shared_items:
        row = silver_row(item)
        rows[row["posting_id"]] = row
    labelled = labelled_set(pd.DataFrame(list(rows.values())))
    assert_same_as_gridsearch(labelled.postings, labelled.labels)


def test_grid_candidates_keep_grid_order_and_drop_k_too_large():
    grid = KnnGrid(representations=((None, 1), (2.0, 1)), ks=(3, 50), votes=("uniform",),
                   prior_alphas=(0.0, 0.5))
    assert grid.candidates(max_k=10) == [
        KnnParams(None, 1, 3, "uniform", 0.0), KnnParams(None, 1, 3, "uniform", 0.5),
        KnnParams(2.0, 1, 3, "uniform", 0.0), KnnParams(2.0, 1, 3, "uniform", 0.5),
    ]


def test_full_grid_scores_every_candidate_and_picks_the_best():
    frame = pd.DataFrame([silver_row(i) for i in synthetic_postings(per_category=10)])
    labelled = labelled_set(frame)
    grid = KnnGrid(ks=(3, 5), prior_alphas=(0.0, 1.0))
    selection = select_knn(labelled.postings, labelled.labels, grid)
    assert len(selection.cv_macro_f1) == len(grid.candidates(100))
    assert selection.best_score == max(selection.cv_macro_f1.values())
    assert selection.best == max(grid.candidates(100), key=selection.cv_macro_f1.get)


def test_too_few_postings_for_any_k():
    frame = pd.DataFrame([silver_row(i) for i in synthetic_postings(per_category=2)])
    frame["category"] = ["A", "B"] * (len(frame) // 2)
    with pytest.raises(NotEnoughLabels):
        select_knn(frame.head(4), frame.head(4)["category"], KnnGrid(ks=(5,)))


def test_macro_f1_equals_scikit_learn_including_classes_absent_from_one_side():
    from sklearn.metrics import f1_score

    from careerpulse_assets.classification.model_selection import macro_f1

    rng = np.random.default_rng(7)
    for _ in range(50):
        true = rng.integers(0, 6, size=40)
        predicted = np.where(rng.random(40) < 0.6, true, rng.integers(0, 8, size=40))
        expected = f1_score(true, predicted, average="macro", zero_division=0)
        assert macro_f1(true, predicted, 8) == pytest.approx(expected, abs=1e-12)
