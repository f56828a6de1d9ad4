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
    imputed, predicted = impute_categories(frame, model, "models:/careerpulse-knn-category/1")

    assert predicted == frame["category"].isna().sum()
    assert imputed["category"].notna().all()
    was_missing = frame["category"].isna()
    assert imputed["is_imputed"].tolist() == was_missing.tolist()
    pd.testing.assert_series_equal(
        imputed.loc[~was_missing, "category"], frame.loc[~was_missing, "category"]
    )
    confidence = imputed.loc[was_missing, "imputation_confidence"]
    assert confidence.between(1 / 3, 1).all()
    runner_up = imputed.loc[was_missing, "runner_up_share"].fillna(0)
    assert (runner_up <= confidence).all() and (runner_up < 1).all()
    assert (imputed.loc[was_missing, "category_source"] == "imputed").all()
    assert imputed.loc[~was_missing, "imputation_confidence"].isna().all()
    assert set(imputed.loc[was_missing, "model_version"]) == {"models:/careerpulse-knn-category/1"}
    assert imputed.loc[~was_missing, "model_version"].isna().all()
    # Each unlabelled posting's text came from one category's vocabulary: it is found again.
    titles = imputed.loc[was_missing, ["title", "category"]]
    nurse_like = titles["title"].str.contains("Nurse|Medical|Therapist")
    assert nurse_like.any() and (titles.loc[nurse_like, "category"] == "Healthcare").all()


def test_earlier_imputations_of_the_same_rows_are_kept_and_only_the_rest_predicted():
    frame = silver(synthetic_postings()).assign(bronze_row_id=lambda d: d.index + 100)
    labelled = labelled_set(frame)
    model = fit_knn(labelled.postings, labelled.labels, KnnParams(k=3))
    missing = frame[frame["category"].isna()]
    kept, edited = missing.iloc[0], missing.iloc[1]
    earlier = pd.DataFrame({
        "posting_id": [kept["posting_id"], edited["posting_id"]],
        # The second posting was edited since: its silver row is a newer bronze row.
        "bronze_row_id": [kept["bronze_row_id"], edited["bronze_row_id"] - 1],
        "category": ["Remembered", "Stale"],
        "imputation_confidence": [0.42, 0.42],
        "runner_up_category": ["Second", "Stale too"],
        "runner_up_share": [0.31, 0.31],
    })
    imputed, predicted = impute_categories(frame, model, "models:/careerpulse-knn-category/1", earlier)
    assert predicted == len(missing) - 1  # all but the one kept
    by_id = imputed.set_index("posting_id")
    assert by_id.loc[kept["posting_id"], "category"] == "Remembered"
    assert by_id.loc[kept["posting_id"], "imputation_confidence"] == 0.42
    assert by_id.loc[kept["posting_id"], "runner_up_category"] == "Second"
    assert by_id.loc[edited["posting_id"], "category"] in model.classes_
    fresh, _ = impute_categories(frame, model, "models:/careerpulse-knn-category/1")
    others = ~imputed["posting_id"].isin([kept["posting_id"]])
    pd.testing.assert_frame_equal(imputed[others], fresh[others])
