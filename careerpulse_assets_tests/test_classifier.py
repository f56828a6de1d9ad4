import pandas as pd

import numpy as np

from careerpulse_assets.core.classifier import UNCLASSIFIED, impute_categories
from careerpulse_assets.core.evaluation import labelled_set
from careerpulse_assets.core.postings import silver_row
from careerpulse_assets.core.selection import KnnParams, fit_knn

from .muse_fixtures import imbalanced_postings, synthetic_postings


def silver(items):
    return pd.DataFrame([silver_row(item) for item in items])


def test_imputation_fills_only_missing_categories_with_confidence_and_version():
    frame = silver(synthetic_postings())
    labelled = labelled_set(frame)
    model = fit_knn(labelled.postings, labelled.labels, KnnParams(k=3))
    imputed, predicted = impute_categories(frame, model, "models:/careerpulse-knn-category/1", 0.0,
                                           model.classes_)

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
    assert (imputed.loc[was_missing, "predicted_category"] == imputed.loc[was_missing, "category"]).all()
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
        "predicted_category": ["Remembered", "Stale"],
        "imputation_confidence": [0.42, 0.42],
        "runner_up_category": ["Second", "Stale too"],
        "runner_up_share": [0.31, 0.31],
    })
    imputed, predicted = impute_categories(frame, model, "models:/careerpulse-knn-category/1", 0.0,
                                           [*model.classes_, "Remembered"], earlier)
    assert predicted == len(missing) - 1  # all but the one kept
    by_id = imputed.set_index("posting_id")
    assert by_id.loc[kept["posting_id"], "category"] == "Remembered"
    assert by_id.loc[kept["posting_id"], "imputation_confidence"] == 0.42
    assert by_id.loc[kept["posting_id"], "runner_up_category"] == "Second"
    assert by_id.loc[edited["posting_id"], "category"] in model.classes_
    fresh, _ = impute_categories(frame, model, "models:/careerpulse-knn-category/1", 0.0,
                                           model.classes_)
    others = ~imputed["posting_id"].isin([kept["posting_id"]])
    pd.testing.assert_frame_equal(imputed[others], fresh[others])


def test_below_the_threshold_a_posting_is_unclassified_and_keeps_the_guess():
    # Generic words blur these postings: the model is sure of some, unsure of others.
    items = imbalanced_postings({"Software Engineering": 30, "Healthcare": 10, "Sales": 10},
                                unlabelled=20)
    frame = silver(items).assign(bronze_row_id=lambda d: d.index + 100)
    labelled = labelled_set(frame)
    model = fit_knn(labelled.postings, labelled.labels, KnnParams(k=5))
    version = "models:/careerpulse-knn-category/1"
    everything, _ = impute_categories(frame, model, version, 0.0, model.classes_)
    missing = frame["category"].isna().to_numpy()
    confidence = everything.loc[missing, "imputation_confidence"].to_numpy()
    threshold = float(np.median(confidence))
    imputed, _ = impute_categories(frame, model, version, threshold, model.classes_)
    judged = imputed[missing]
    written = judged["imputation_confidence"] >= threshold
    assert 0 < written.sum() < len(judged)
    assert judged.loc[written, "category_source"].eq("imputed").all()
    assert judged.loc[written, "is_imputed"].all()
    assert judged.loc[~written, "category"].eq(UNCLASSIFIED).all()
    assert judged.loc[~written, "category_source"].eq("unclassified").all()
    assert not judged.loc[~written, "is_imputed"].any()
    # The guess, its share and the version stay on an Unclassified posting (the review queue
    # and the next threshold read them).
    assert judged["predicted_category"].tolist() == everything.loc[missing, "category"].tolist()
    assert judged["model_version"].eq(version).all()
    # Observed rows are untouched; no posting is left without a category.
    assert imputed["category"].notna().all()
    assert imputed.loc[~missing, "category"].tolist() == frame.loc[~missing, "category"].tolist()

    # A new threshold re-sorts earlier predictions of the same model without predicting again.
    earlier = imputed.loc[missing, ["posting_id", "bronze_row_id", "predicted_category",
                                    "imputation_confidence", "runner_up_category",
                                    "runner_up_share"]]
    none, predicted = impute_categories(frame, model, version, None, model.classes_, earlier)
    assert predicted == 0
    assert none.loc[missing, "category"].eq(UNCLASSIFIED).all()
    assert none.loc[missing, "predicted_category"].tolist() == judged["predicted_category"].tolist()


def test_without_a_model_every_posting_without_a_category_is_unclassified():
    frame = silver(synthetic_postings())
    imputed, predicted = impute_categories(frame, None, None, None, ())
    missing = frame["category"].isna().to_numpy()
    assert predicted == 0
    assert imputed.loc[missing, "category"].eq(UNCLASSIFIED).all()
    assert imputed.loc[missing, "predicted_category"].isna().all()
    assert imputed.loc[missing, "model_version"].isna().all()
    assert imputed.loc[~missing, "category"].tolist() == frame.loc[~missing, "category"].tolist()
