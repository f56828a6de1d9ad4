import pandas as pd

from careerpulse_assets.core.classifier import impute_categories
from careerpulse_assets.core.evaluation import labelled_set
from careerpulse_assets.core.postings import silver_row
from careerpulse_assets.core.selection import KnnParams, fit_knn

from .muse_fixtures import synthetic_postings


def silver(items):
    return pd.DataFrame([silver_row(item) for item in items])


def test_imputation_fills_only_missing_categories_with_confidence_and_version():
    frame = silver(synthetic_postings())
    labelled = labelled_set(frame)
    model = fit_knn(labelled.postings, labelled.labels, KnnParams(k=3))
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
    assert imputed.loc[~was_missing, "model_version"].isna().all()
    # Each unlabelled posting's text came from one category's vocabulary: it is found again.
    titles = imputed.loc[was_missing, ["title", "category"]]
    nurse_like = titles["title"].str.contains("Nurse|Medical|Therapist")
    assert nurse_like.any() and (titles.loc[nurse_like, "category"] == "Healthcare").all()
