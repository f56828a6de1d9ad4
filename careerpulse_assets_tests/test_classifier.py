import numpy as np
import pandas as pd
import pytest

from careerpulse_assets.core.classifier import (
    SEED_K_GRID,
    NotEnoughLabels,
    evaluate_seed_knn,
    fit_seed_knn,
    impute_categories,
    training_set,
)
from careerpulse_assets.core.postings import silver_row

from .muse_fixtures import synthetic_postings


def silver(items):
    return pd.DataFrame([silver_row(item) for item in items])


def test_categories_too_rare_to_split_are_not_learned_and_are_reported():
    frame = silver(synthetic_postings(per_category=14))
    frame.loc[frame.index[:3], "category"] = "Legal Services"  # 3 postings: too few
    training = training_set(frame, min_postings=7)
    assert "Legal Services" not in set(training.labels)
    assert training.excluded_categories == {"Legal Services": 3}
    assert len(training.features) == frame["category"].notna().sum() - 3
    assert training.features["text"].str.len().gt(0).all()


def test_seed_knn_learns_separable_categories():
    training = training_set(silver(synthetic_postings(per_category=14)))
    evaluation = evaluate_seed_knn(training)
    assert evaluation.k in SEED_K_GRID
    assert set(evaluation.cv_macro_f1_by_k) <= set(SEED_K_GRID)
    assert evaluation.accuracy >= 0.9 and evaluation.macro_f1 >= 0.9
    assert evaluation.n_train + evaluation.n_holdout == len(training.labels)
    assert evaluation.classes == ["Healthcare", "Sales", "Software Engineering"]


def test_shuffled_labels_give_a_model_near_chance():
    training = training_set(silver(synthetic_postings(per_category=14, shuffle_labels=True)))
    assert evaluate_seed_knn(training).accuracy < 0.75


def test_one_category_is_not_enough_to_train():
    frame = silver(synthetic_postings())
    frame["category"] = np.where(frame["category"].notna(), "Sales", None)
    with pytest.raises(NotEnoughLabels, match="at least 2 categories"):
        evaluate_seed_knn(training_set(frame))


def test_imputation_fills_only_missing_categories_with_confidence_and_version():
    frame = silver(synthetic_postings())
    training = training_set(frame)
    model = fit_seed_knn(training, k=3)
    imputed = impute_categories(frame, model, "models:/careerpulse-knn-category/1")

    assert imputed["category"].notna().all()
    was_missing = frame["category"].isna()
    assert imputed["is_imputed"].tolist() == was_missing.tolist()
    pd.testing.assert_series_equal(
        imputed.loc[~was_missing, "category"], frame.loc[~was_missing, "category"]
    )
    confidence = imputed.loc[was_missing, "imputation_confidence"]
    assert confidence.between(1 / 3, 1).all()
    assert imputed.loc[~was_missing, "imputation_confidence"].isna().all()
    assert set(imputed.loc[was_missing, "model_version"]) == {"models:/careerpulse-knn-category/1"}
    # Each unlabelled posting's text came from one category's vocabulary: it is found again.
    titles = imputed.loc[was_missing, ["title", "category"]]
    nurse_like = titles["title"].str.contains("Nurse|Medical|Therapist")
    assert (titles.loc[nurse_like, "category"] == "Healthcare").all()
