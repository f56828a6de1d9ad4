import json

import mlflow
import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from careerpulse_assets.tracking import (
    FINGERPRINT_TAG,
    REGISTERED_MODEL_NAME,
    SUMMARY_KEYS,
    find_trained,
)


@pytest.fixture
def tracking_uri(tmp_path):
    """A fresh tracking store; mlflow keeps its URI process-wide, so put the old one back."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield
    mlflow.set_tracking_uri(previous)


def test_a_run_whose_evaluation_lacks_fields_is_not_reused(tmp_path, tracking_uri):
    experiment_id = mlflow.create_experiment("careerpulse", (tmp_path / "art").as_uri())
    model = DummyClassifier().fit(np.zeros((2, 1)), ["a", "b"])
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.set_tag(FINGERPRINT_TAG, "abc")
        # An evaluation written by an older version: no retrain_reason, no training_counts.
        old = {key: None for key in SUMMARY_KEYS if key not in {"retrain_reason", "training_counts"}}
        mlflow.log_text(json.dumps(old), "evaluation.json")
        mlflow.log_text("true,a,b\na,1,0\nb,0,1\n", "confusion_holdout.csv")
        mlflow.sklearn.log_model(model, name="model", registered_model_name=REGISTERED_MODEL_NAME)
    assert find_trained("abc", experiment_id) is None
    assert find_trained("another fingerprint", experiment_id) is None


def test_mlflow_runs_left_running_by_a_dagster_run_that_is_over_are_marked_failed(tmp_path, tracking_uri):
    from careerpulse_assets.tracking import fail_abandoned_runs

    experiment_id = mlflow.create_experiment("careerpulse", (tmp_path / "art").as_uri())
    client = mlflow.MlflowClient()
    killed = client.create_run(experiment_id, tags={"dagster_run_id": "killed-run"})
    live = client.create_run(experiment_id, tags={"dagster_run_id": "live-run"})
    failed = fail_abandoned_runs(experiment_id, lambda dagster_run: dagster_run == "killed-run")
    assert failed == [killed.info.run_id]
    assert client.get_run(killed.info.run_id).info.status == "FAILED"
    assert client.get_run(live.info.run_id).info.status == "RUNNING"
