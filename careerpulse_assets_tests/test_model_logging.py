"""The classifier as MLflow keeps it: the same model back, in few pieces, and old versions load.

Speed and size are measured by `benchmarks/mlflow_logging.py` (BENCHMARKS.md), not here.
"""

import io
import pickle
import zipfile

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer

from careerpulse_assets.classification.knn import CosineKNNClassifier, model_input
from careerpulse_assets.ingestion.postings import silver_row
from careerpulse_assets.classification.saved_state import CompactTfidfVectorizer
from careerpulse_assets.classification.model_selection import KnnParams, fit_knn
from careerpulse_assets.classification.registry import SKOPS_TRUSTED_TYPES

from .muse_fixtures import synthetic_postings


@pytest.fixture(scope="module")
def labelled() -> pd.DataFrame:
    frame = pd.DataFrame([silver_row(i) for i in synthetic_postings(per_category=30, seed=5)])
    return frame[frame["category"].notna()].reset_index(drop=True)


@pytest.fixture(scope="module")
def model(labelled):
    # Word pairs: the largest vocabulary the grid has.
    return fit_knn(labelled, labelled["category"], KnnParams(None, 2, 5, "distance", 0.5))


def test_the_compact_vectorizer_is_tfidfvectorizer_and_saves_its_vocabulary_as_one_array(labelled):
    import skops.io  # 1.3 s: imported where used, not by every worker collecting

    texts = labelled["title"] + " " + labelled["description_text"]
    settings = dict(ngram_range=(1, 2), min_df=2, stop_words="english", sublinear_tf=True)
    ours = CompactTfidfVectorizer(**settings).fit(texts)
    theirs = TfidfVectorizer(**settings).fit(texts)
    assert ours.vocabulary_ == theirs.vocabulary_
    assert (ours.transform(texts) != theirs.transform(texts)).nnz == 0
    state = ours.__getstate__()
    assert "vocabulary_" not in state and len(state["vocabulary_terms_"]) == len(theirs.vocabulary_)
    assert ours.vocabulary_ == theirs.vocabulary_  # saving leaves the fitted object as it was
    for back in (pickle.loads(pickle.dumps(ours)),
                 skops.io.loads(skops.io.dumps(ours), trusted=SKOPS_TRUSTED_TYPES)):
        assert back.vocabulary_ == theirs.vocabulary_
        assert (back.transform(texts) != theirs.transform(texts)).nnz == 0


def test_skops_gives_the_same_model_back_in_a_handful_of_zip_entries(model, labelled):
    import skops.io

    saved = skops.io.dumps(model)
    entries = zipfile.ZipFile(io.BytesIO(saved)).namelist()
    vocabulary = model.named_steps["features"].transformers_[0][1].named_steps["tfidf"].vocabulary_
    assert len(vocabulary) > 100
    # Before: one entry per vocabulary term. Now: the schema and a few arrays.
    assert len(entries) < 15, entries
    back = skops.io.loads(saved, trusted=SKOPS_TRUSTED_TYPES)
    features = model_input(labelled)
    assert (back.predict(features) == model.predict(features)).all()
    np.testing.assert_array_equal(back.predict_proba(features), model.predict_proba(features))
    matrix = back.named_steps["knn"].training_matrix_
    assert (matrix != model.named_steps["knn"].training_matrix_).nnz == 0


def test_a_version_saved_before_the_compact_state_still_loads(model, labelled, monkeypatch):
    """An older registered version holds TfidfVectorizer with its dict (NumPy integers) and the
    KNN's matrix as a scipy matrix: it loads with the trusted types and predicts the same."""
    import skops.io

    knn = model.named_steps["knn"]
    old_knn = pickle.loads(pickle.dumps(knn))
    monkeypatch.setattr(CosineKNNClassifier, "__getstate__", BaseEstimator.__getstate__)
    tfidf = model.named_steps["features"].transformers_[0][1].named_steps["tfidf"]
    old_tfidf = TfidfVectorizer(**tfidf.get_params())
    old_tfidf.__dict__.update({k: v for k, v in tfidf.__dict__.items()})
    old_tfidf.vocabulary_ = {term: np.int64(i) for term, i in tfidf.vocabulary_.items()}
    old = pickle.loads(pickle.dumps(model))
    old.named_steps["features"].transformers_[0][1].steps[1] = ("tfidf", old_tfidf)
    old.steps[1] = ("knn", old_knn)
    saved = skops.io.dumps(old)
    monkeypatch.undo()
    assert len(zipfile.ZipFile(io.BytesIO(saved)).namelist()) > len(tfidf.vocabulary_)
    back = skops.io.loads(saved, trusted=SKOPS_TRUSTED_TYPES)
    features = model_input(labelled)
    np.testing.assert_array_equal(back.predict_proba(features), model.predict_proba(features))


@pytest.mark.slow
def test_a_logged_training_registers_a_model_that_loads_back_equal(tmp_path, model, labelled):
    from careerpulse_assets.classification.registry import REGISTERED_MODEL_NAME, load_model

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment = mlflow.create_experiment("careerpulse", (tmp_path / "art").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.sklearn.log_model(
                model, name="model", registered_model_name=REGISTERED_MODEL_NAME,
                skops_trusted_types=SKOPS_TRUSTED_TYPES,
                pip_requirements=["scikit-learn", "careerpulse_assets"],
            )
        back = load_model(f"models:/{REGISTERED_MODEL_NAME}/{info.registered_model_version}")
    finally:
        mlflow.set_tracking_uri(previous)
    features = model_input(labelled)
    np.testing.assert_array_equal(back.predict_proba(features), model.predict_proba(features))
    (saved,) = (tmp_path / "art").rglob("model.skops")
    assert len(zipfile.ZipFile(saved).namelist()) < 15
