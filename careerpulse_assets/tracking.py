"""MLflow bookkeeping for the classifier: one run per training, and finding a model to reuse.

Uses whatever tracking URI and active run the caller set up (the dagster-mlflow resource);
knows nothing of Dagster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import sklearn
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from .core.classifier import TrainedClassifier
from .core.evaluation import LabelledSet, SplitReport
from .core.knn import MAX_FEATURES, MAX_FEATURES_WITH_BIGRAMS, model_input
from .core.plots import confusion_png

REGISTERED_MODEL_NAME = "careerpulse-knn-category"
FINGERPRINT_TAG = "careerpulse.training_fingerprint"
SETTINGS_TAG = "careerpulse.training_settings"
LABELLED_ROWS_ARTIFACT = "labelled_rows.npy"
# Bump when the training code changes in a way that should retrain on unchanged data.
TRAINING_SPEC_VERSION = "4"
# MLflow saves scikit-learn models with skops, which loads only types it is told to trust.
SKOPS_TRUSTED_TYPES = [
    "scipy.sparse._csr.csr_matrix",
    "careerpulse_assets.core.knn.CosineKNNClassifier",
    "careerpulse_assets.core.knn.joined_text",
]


def training_fingerprint(labelled: LabelledSet, settings: str) -> str:
    """Same labelled data + same training settings + same code version = same fingerprint."""
    return hashlib.sha256(f"{labelled.fingerprint()}|{settings_fingerprint(settings)}".encode()).hexdigest()


def settings_fingerprint(settings: str) -> str:
    """Same training settings + same code version, whatever the data."""
    return hashlib.sha256(f"{settings}|spec {TRAINING_SPEC_VERSION}".encode()).hexdigest()


# What evaluation.json must hold for its model to be reused.
SUMMARY_KEYS = (
    "chosen", "holdout", "n_holdout", "excluded_categories", "reliability", "most_confused",
    "training_counts", "unlabelled_share", "retrain_reason",
)
log = logging.getLogger(__name__)


def find_trained(
    fingerprint: str, experiment_id: str, stored: TrainedClassifier | None = None
) -> TrainedClassifier | None:
    """The registered model of a finished run trained on exactly this data, if there is one.

    `stored` is the classifier the last run handed downstream: when it came from the same
    MLflow run its fitted model is used as it is, instead of being loaded again from the
    registry (4.4 s through skops at 100,000 postings, against 0.5 s for the stored pickle).
    """
    # A run retrained for drift shares its fingerprint with the one before: take the newest.
    run_id = _newest_finished_run(experiment_id, FINGERPRINT_TAG, fingerprint)
    return None if run_id is None else _load_trained(run_id, fingerprint, stored)


def find_latest_trained(settings: str, experiment_id: str) -> tuple[str, np.ndarray] | None:
    """The newest finished run trained with these settings on any data, and the row hashes of
    the labelled postings it learned from (`LabelledSet.row_hashes`); load it with
    `load_trained`."""
    run_id = _newest_finished_run(experiment_id, SETTINGS_TAG, settings_fingerprint(settings))
    if run_id is None:
        return None
    try:
        rows = np.load(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{LABELLED_ROWS_ARTIFACT}"))
    except (MlflowException, OSError, ValueError) as exc:
        log.warning("run %s cannot be reused, its labelled rows are unreadable: %s", run_id, exc)
        return None
    return run_id, rows


def load_trained(run_id: str, stored: TrainedClassifier | None = None) -> TrainedClassifier | None:
    """The registered model of a finished run and its evaluation (see `find_trained`)."""
    fingerprint = mlflow.get_run(run_id).data.tags.get(FINGERPRINT_TAG, "")
    return _load_trained(run_id, fingerprint, stored)


def _newest_finished_run(experiment_id: str, tag: str, value: str) -> str | None:
    runs = mlflow.search_runs(
        [experiment_id],
        filter_string=f"tags.`{tag}` = '{value}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0].info.run_id if runs else None


def _load_trained(
    run_id: str, fingerprint: str, stored: TrainedClassifier | None = None
) -> TrainedClassifier | None:
    versions = mlflow.MlflowClient().search_model_versions(
        f"name='{REGISTERED_MODEL_NAME}' and run_id='{run_id}'"
    )
    if not versions:
        return None
    version = max(versions, key=lambda v: int(v.version)).version
    try:
        summary = mlflow.artifacts.load_dict(f"runs:/{run_id}/evaluation.json")
        confusion = pd.read_csv(
            mlflow.artifacts.download_artifacts(f"runs:/{run_id}/confusion_holdout.csv"),
            index_col=0,
        )
        picture = Path(
            mlflow.artifacts.download_artifacts(f"runs:/{run_id}/confusion_holdout.png")
        ).read_bytes()
    except (MlflowException, OSError, ValueError) as exc:
        log.warning("run %s cannot be reused, its evaluation is unreadable: %s", run_id, exc)
        return None
    missing = sorted(set(SUMMARY_KEYS) - set(summary))
    if missing:
        # Written by an older version of this code: train anew rather than guess.
        log.warning("run %s cannot be reused, its evaluation lacks %s", run_id, missing)
        return None
    model_uri = f"models:/{REGISTERED_MODEL_NAME}/{version}"
    same_run = stored is not None and stored.mlflow_run_id == run_id
    return TrainedClassifier(
        model=stored.model if same_run else mlflow.sklearn.load_model(model_uri),
        chosen=summary["chosen"],
        holdout=summary["holdout"],
        n_holdout=summary["n_holdout"],
        model_version=model_uri,
        mlflow_run_id=run_id,
        training_fingerprint=fingerprint,
        excluded_categories=summary["excluded_categories"],
        reliability=summary["reliability"],
        most_confused=summary["most_confused"],
        confusion=confusion,
        confusion_png=picture,
        training_counts=summary["training_counts"],
        unlabelled_share=summary["unlabelled_share"],
        retrain_reason=summary["retrain_reason"],
        evaluated_postings=summary.get("evaluated_postings"),
        retrained=False,
    )


def _holdout_numbers(report: SplitReport) -> dict[str, float]:
    prefix = f"{report.split}_"
    return {
        name.removeprefix(prefix): value
        for name, value in report.flat_metrics().items()
        if not name.startswith(f"{prefix}any_label")
    }


def log_training(
    model,
    labelled: LabelledSet,
    holdout: SplitReport,
    time_ordered: SplitReport,
    comparison: SplitReport,
    fingerprint: str,
    settings: str,
    unlabelled_share: float,
    retrain_reason: str | None = None,
    evaluated_postings: int | None = None,
) -> TrainedClassifier:
    """Log one training to the active MLflow run, register the model, end the run."""
    run = mlflow.active_run()
    params = holdout.fitted.knn_params
    mlflow.set_tag(FINGERPRINT_TAG, fingerprint)
    mlflow.set_tag(SETTINGS_TAG, settings_fingerprint(settings))
    if retrain_reason:
        mlflow.set_tag("careerpulse.retrain_reason", retrain_reason)
    mlflow.log_params(
        {
            "k": params.k,
            "vote": params.vote,
            "prior_alpha": params.prior_alpha,
            "title_weight": params.title_weight,
            "ngrams": params.ngrams,
            "metric": "cosine",
            "max_features": MAX_FEATURES if params.ngrams == 1 else MAX_FEATURES_WITH_BIGRAMS,
            "n_labelled": len(labelled.postings),
            "n_evaluated": evaluated_postings,
            "n_classes": labelled.labels.nunique(),
            "reposts_removed": labelled.reposts_removed,
            "categories_too_rare": json.dumps(labelled.excluded_categories),
        }
    )
    metrics = {
        **holdout.flat_metrics(),
        **time_ordered.flat_metrics(),
        **comparison.flat_metrics(prefix="logreg_"),
        "cv_macro_f1": holdout.fitted.cv_macro_f1,
    }
    mlflow.log_metrics(metrics)
    summary = {
        "chosen": holdout.chosen,
        "holdout": _holdout_numbers(holdout),
        "n_holdout": holdout.n_test,
        "excluded_categories": labelled.excluded_categories,
        "most_confused": holdout.most_confused,
        "reliability": holdout.reliability.to_dict(orient="records"),
        "training_counts": {str(k): int(v) for k, v in labelled.labels.value_counts().items()},
        "unlabelled_share": unlabelled_share,
        "retrain_reason": retrain_reason,
        "evaluated_postings": evaluated_postings,
    }
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        holdout.per_class.to_csv(out / "per_class_holdout.csv", index=False)
        time_ordered.per_class.to_csv(out / "per_class_time_split.csv", index=False)
        holdout.confusion.to_csv(out / "confusion_holdout.csv")
        holdout.reliability.to_csv(out / "reliability_holdout.csv", index=False)
        picture = confusion_png(holdout.confusion)
        (out / "confusion_holdout.png").write_bytes(picture)
        (out / "evaluation.json").write_text(json.dumps(summary, indent=2))
        np.save(out / LABELLED_ROWS_ARTIFACT, labelled.row_hashes)
        mlflow.log_artifacts(folder)

    example = model_input(labelled.postings.head(3))
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        registered_model_name=REGISTERED_MODEL_NAME,
        input_example=example,
        signature=infer_signature(example, model.predict(example)),
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", "careerpulse_assets"],
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
    )
    mlflow.end_run()
    return TrainedClassifier(
        model=model,
        chosen=holdout.chosen,
        holdout=summary["holdout"],
        n_holdout=holdout.n_test,
        model_version=f"models:/{REGISTERED_MODEL_NAME}/{info.registered_model_version}",
        mlflow_run_id=run.info.run_id,
        training_fingerprint=fingerprint,
        excluded_categories=labelled.excluded_categories,
        reliability=summary["reliability"],
        most_confused=summary["most_confused"],
        confusion=holdout.confusion,
        confusion_png=picture,
        training_counts=summary["training_counts"],
        unlabelled_share=unlabelled_share,
        retrain_reason=retrain_reason,
        evaluated_postings=evaluated_postings,
        retrained=True,
    )


def fail_abandoned_runs(experiment_id: str, dagster_run_over: Callable[[str], bool]) -> list[str]:
    """Mark FAILED the MLflow runs still RUNNING whose Dagster run is over (a killed run never
    ended its MLflow run); return their ids."""
    client = mlflow.MlflowClient()
    abandoned = [
        run for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'")
        if dagster_run_over(run.data.tags.get("dagster_run_id", ""))
    ]
    for run in abandoned:
        client.set_terminated(run.info.run_id, status="FAILED")
    return [run.info.run_id for run in abandoned]


def discard_active_run() -> None:
    """End and delete the run dagster-mlflow opened for a step that trained nothing."""
    run = mlflow.active_run()
    if run is not None:
        mlflow.end_run()
        mlflow.MlflowClient().delete_run(run.info.run_id)

