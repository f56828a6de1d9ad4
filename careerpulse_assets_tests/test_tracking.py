import json

import mlflow
import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from careerpulse_assets.classification.registry import (
    REGISTERED_MODEL_NAME,
    SUMMARY_KEYS,
    champion,
    latest,
    load_evaluation,
    set_champion,
)


@pytest.fixture
def tracking_uri(tmp_path):
    """A fresh tracking store; mlflow keeps its URI process-wide, so put the old one back."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield
    mlflow.set_tracking_uri(previous)


@pytest.mark.slow
def test_a_version_whose_evaluation_an_older_version_wrote_is_not_served_again(tmp_path, tracking_uri):
    experiment_id = mlflow.create_experiment("careerpulse", (tmp_path / "art").as_uri())
    model = DummyClassifier().fit(np.zeros((2, 1)), ["a", "b"])
    with mlflow.start_run(experiment_id=experiment_id):
        # An evaluation written by an older version: no estimate, no method.
        old = {key: None for key in SUMMARY_KEYS if key not in {"estimate", "method"}}
        mlflow.log_text(json.dumps(old), "evaluation.json")
        mlflow.log_text("true,a,b\na,1,0\nb,0,1\n", "confusion.csv")
        mlflow.log_text("png", "confusion.png")
        mlflow.sklearn.log_model(model, name="model", registered_model_name=REGISTERED_MODEL_NAME)
    assert champion() is None  # registered, but no version has the alias yet
    newest = latest()
    assert newest.version == "models:/careerpulse-knn-category/1"
    assert load_evaluation(newest) is None
    set_champion(newest.version)
    assert champion().version == newest.version


def test_mlflow_runs_left_running_by_a_dagster_run_that_is_over_are_marked_failed(tmp_path, tracking_uri):
    from careerpulse_assets.classification.registry import fail_abandoned_runs

    experiment_id = mlflow.create_experiment("careerpulse", (tmp_path / "art").as_uri())
    client = mlflow.MlflowClient()
    killed = client.create_run(experiment_id, tags={"dagster_run_id": "killed-run"})
    live = client.create_run(experiment_id, tags={"dagster_run_id": "live-run"})
    failed = fail_abandoned_runs(experiment_id, lambda dagster_run: dagster_run == "killed-run")
    assert failed == [killed.info.run_id]
    assert client.get_run(killed.info.run_id).info.status == "FAILED"
    assert client.get_run(live.info.run_id).info.status == "RUNNING"


def test_a_reused_version_counts_with_the_errors_its_training_simulated(tmp_path, tracking_uri,
                                                                       monkeypatch):
    """The count errors are simulated once, at training (count_errors.json); a version logged
    before them is simulated as before, to the same figures."""
    from careerpulse_assets.classification.registry import (
        COUNT_ERRORS_ARTIFACT,
        OUT_OF_FOLD_ARTIFACT,
        RegisteredVersion,
    )
    from careerpulse_assets.classification.serving import calibrate_model
    from careerpulse_assets.classification.service import calibration_of
    from careerpulse_assets.series import quantification
    from careerpulse_assets.series.quantification import count_errors

    from .test_quantification import knn_like_out_of_fold

    oof, _ = knn_like_out_of_fold(n=600, repeats=2)
    trained = calibrate_model(oof)
    experiment_id = mlflow.create_experiment("careerpulse", (tmp_path / "art").as_uri())
    versions = {}
    # Kept by its training; logged before they were kept; kept in a shape no version wrote.
    for kept, text in (("kept", json.dumps(count_errors(trained.counting))), ("none", None),
                       ("empty", "{}"), ("list", "[]"), ("short", json.dumps(
                           count_errors(trained.counting) | {"share_error": {"PCC": [0.1]}}))):
        with mlflow.start_run(experiment_id=experiment_id) as run:
            np.savez_compressed(tmp_path / OUT_OF_FOLD_ARTIFACT, **oof.arrays())
            mlflow.log_artifact(str(tmp_path / OUT_OF_FOLD_ARTIFACT))
            if text is not None:
                mlflow.log_text(text, COUNT_ERRORS_ARTIFACT)
        versions[kept] = RegisteredVersion(kept, run.info.run_id, {}, {})
    simulated = []
    real_simulate = quantification.simulate
    monkeypatch.setattr(quantification, "simulate",
                        lambda *a, **k: simulated.append(1) or real_simulate(*a, **k))

    for kept in versions:
        counting = calibration_of(versions[kept], 0.9).counting
        for method, sigma in trained.counting.share_error.items():
            np.testing.assert_array_equal(counting.share_error[method], sigma)
        assert counting.expected_l1 == trained.counting.expected_l1
        assert counting.sample_postings == trained.counting.sample_postings
    assert len(simulated) == 4  # all but the version whose training kept them


def test_a_reused_version_writes_with_the_policy_its_training_chose_for_the_same_bar(
        tmp_path, tracking_uri, monkeypatch):
    """evaluation.json keeps the policy; a reuse takes it while CAREERPULSE_MIN_PRECISION is the
    one it was chosen for (the same policy, not chosen again), else chooses again."""
    from careerpulse_assets.classification import serving
    from careerpulse_assets.classification.registry import (
        OUT_OF_FOLD_ARTIFACT,
        POLICY_KEY,
        RegisteredVersion,
    )
    from careerpulse_assets.classification.serving import calibrate_model
    from careerpulse_assets.classification.service import calibration_of

    from .test_quantification import knn_like_out_of_fold

    oof, _ = knn_like_out_of_fold(n=600, repeats=2)
    trained = calibrate_model(oof, 0.9)
    experiment_id = mlflow.create_experiment("careerpulse", (tmp_path / "art").as_uri())
    versions = {}
    for kept, summary in (("kept", {POLICY_KEY: trained.policy.summary()}), ("none", {}),
                          ("other kind", {POLICY_KEY: {"threshold": 0.5}})):
        with mlflow.start_run(experiment_id=experiment_id) as run:
            np.savez_compressed(tmp_path / OUT_OF_FOLD_ARTIFACT, **oof.arrays())
            mlflow.log_artifact(str(tmp_path / OUT_OF_FOLD_ARTIFACT))
            mlflow.log_dict(summary, "evaluation.json")
        versions[kept] = RegisteredVersion(kept, run.info.run_id, {}, {})
    chosen = []
    real_choose = serving.imputation_policy
    monkeypatch.setattr(serving, "imputation_policy",
                        lambda *a, **k: chosen.append(a[-1]) or real_choose(*a, **k))
    for kept in versions:
        assert calibration_of(versions[kept], 0.9).policy == trained.policy
    assert chosen == [0.9, 0.9]  # all but the version whose training kept it
    other_bar = calibration_of(versions["kept"], 0.8).policy
    assert other_bar.min_precision == 0.8 and chosen == [0.9, 0.9, 0.8]
    assert other_bar == calibrate_model(oof, 0.8).policy
