"""MLflow for the classifier: what a training records, and what the registry says of a version.

The registered model `careerpulse-knn-category` carries two aliases: `champion`, the version in
service (the one `imputed_silver` imputes with), and `challenger`, the newest trained version.
Each training's MLflow run is tagged with a fingerprint of its settings (grid, taxonomy version,
training code version) and keeps the hashes of the labelled postings it learned from, so a later
run can tell how much changed since. Knows nothing of Dagster: the active MLflow run is opened
and closed by the `mlflow` resource (`resources.py`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import sklearn
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from .serving import (
    SUMMARY_KEYS,
    DriftReference,
    Evaluation,
    ModelCalibration,
    from_summary,
    summary_of,
)
from .decisions import GateVerdict, ModelFacts
from .evaluation import LabelledSet, labelled_changes
from .out_of_fold import OutOfFold
from .per_posting_policy import ImputationPolicy
from .knn import MAX_FEATURES, MAX_FEATURES_WITH_BIGRAMS, model_input
from ..review.spreadsheet import read_frame, write_frame
from ..series.quantification import count_errors
from .training import Training, drift_reference, evaluation_of, reviewer_labels

EXPERIMENT_NAME = "careerpulse"
REGISTERED_MODEL_NAME = "careerpulse-knn-category"
CHAMPION, CHALLENGER = "champion", "challenger"
SETTINGS_TAG = "careerpulse.training_settings"
RETRAIN_REASON_TAG = "careerpulse.retrain_reason"
PROMOTION_TAG = "careerpulse.promotion"
GATE_TAG = "careerpulse.quality_gate"
LABELLED_ROWS_ARTIFACT = "labelled_rows.npy"
# The out-of-fold predictions with their class scores: the calibration, the count model and the
# per-posting threshold are derived from them (again when a model is reused).
OUT_OF_FOLD_ARTIFACT = "out_of_fold.npz"
# The count errors its training simulated (quantification.count_errors): reused with the model
# instead of simulated again on each run (6 s of a reuse at 400,000 postings, issue 29). A
# version logged before it is simulated as before.
COUNT_ERRORS_ARTIFACT = "count_errors.json"
# In evaluation.json: reused with the version while the precision bar is the same.
POLICY_KEY = "imputation_policy"
# Bump when the training code changes in a way that should retrain on unchanged data.
TRAINING_SPEC_VERSION = "10"  # 7: CJK text as character pairs; 8: class scores kept out-of-fold;
# 9: the model's classes moved from core/ to classification/ (a version saved before names classes
# that no longer exist: it is trained again once instead of failing to load); 10: the IVF
# neighbour index imputation searches above 20,000 labelled postings, fitted with the model (a
# champion saved before would search exactly: slow at 400k)
# MLflow saves scikit-learn models with skops, which loads only types it is told to trust.
SKOPS_TRUSTED_TYPES = [
    "scipy.sparse._csr.csr_matrix",
    "careerpulse_assets.classification.saved_state.CompactTfidfVectorizer",
    "careerpulse_assets.classification.knn.CosineKNNClassifier",
    "careerpulse_assets.classification.knn.joined_text",
    "careerpulse_assets.classification.knn.text_tokens",
]
log = logging.getLogger(__name__)


def create_store(tracking_uri: str) -> None:
    """Create a new local SQLite tracking store (tables and schema migrations) once, whoever
    comes first; nothing for a store that is complete, or one that is no SQLite file.

    Every MLflow process creates missing tables when it opens a store, with no lock: two opening
    a new file at once (`make ui` and `make run` started together) failed inside the migration
    in 9 of 9 tries (`duplicate column name`, `table _alembic_tmp_tags already exists`). Here the
    creation runs under MLflow's own init lock (an exclusive file lock per database URL,
    mlflow.store.db.utils._safe_initialize_tables): the second process waits, then finds the
    tables made. Call it before anything else opens the store.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return
    from mlflow.store.db.utils import _safe_initialize_tables, create_sqlalchemy_engine_with_retry

    Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_sqlalchemy_engine_with_retry(tracking_uri)
    try:
        _safe_initialize_tables(engine)
    finally:
        engine.dispose()


# Where MLflow 3's database store keeps artifact locations, each an absolute URI written when the
# experiment, run or model was made (a relative location is made absolute by MLflow itself:
# mlflow.utils.uri.resolve_uri_if_local, SqlAlchemyStore.create_experiment).
ARTIFACT_LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
)


def _under(uri: str, root: str) -> bool:
    return uri == root or uri.startswith(root + "/")


def relocate_artifacts(tracking_uri: str, experiment_name: str, artifact_root: Path) -> str | None:
    """Point a database tracking store at `artifact_root` when it names another folder for the
    experiment's artifacts because the home holding both was moved or restored elsewhere (A
    moved to B: the store, in B, still says file:///A/mlartifacts/...). Every location under the
    old folder, in the store (ARTIFACT_LOCATION_COLUMNS) and in the `artifact_path` of each
    logged model's MLmodel file, becomes the same place under `artifact_root`, in one
    transaction. Returns what was done, or None when nothing was to do: no such experiment, its
    folder is `artifact_root` already, it is no local folder, or the artifacts the store names
    are found in the old folder and not in `artifact_root` (a store shared with another home,
    whose artifacts stay where they are).

    Without it a moved home read none of its models' artifacts (every labelled posting counted
    as changed: a retraining), and wrote new ones into the old folder, re-created, or failed
    where it could not be."""
    from mlflow.store.db.utils import create_sqlalchemy_engine_with_retry
    from mlflow.utils.file_utils import local_file_uri_to_path
    from sqlalchemy import text

    experiment = mlflow.MlflowClient(tracking_uri).get_experiment_by_name(experiment_name)
    new_root = artifact_root.as_uri()
    if experiment is None or not experiment.artifact_location.startswith("file:"):
        return None
    old_root = experiment.artifact_location.rstrip("/")
    if old_root == new_root:
        return None
    engine = create_sqlalchemy_engine_with_retry(tracking_uri)
    try:
        with engine.begin() as connection:
            stored = {(table, column): [value for value in connection.execute(text(
                f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL")).scalars()
                if _under(value, old_root)] for table, column in ARTIFACT_LOCATION_COLUMNS}
            named = [value[len(old_root) + 1:] for value in stored[("runs", "artifact_uri")]]
            here = any((artifact_root / relative).exists() for relative in named)
            there = any(Path(local_file_uri_to_path(old_root), relative).exists()
                        for relative in named)
            if there and not here:
                return None
            for (table, column), values in stored.items():
                for value in values:
                    connection.execute(
                        text(f"UPDATE {table} SET {column} = :new WHERE {column} = :old"),
                        {"new": new_root + value[len(old_root):], "old": value})
    finally:
        engine.dispose()
    models = stored[("logged_models", "artifact_location")]
    for value in models:
        _relocate_mlmodel(Path(local_file_uri_to_path(new_root + value[len(old_root):])),
                          value, new_root + value[len(old_root):])
    return (f"the MLflow store named {old_root} for the artifacts of experiment "
            f"'{experiment_name}', now in {new_root} (the home was moved or restored): "
            f"{len(stored[('runs', 'artifact_uri')])} runs and {len(models)} models point there "
            "now")


def _relocate_mlmodel(folder: Path, old: str, new: str) -> None:
    """The logged model's own record of where it was logged (`artifact_path: <uri>` in MLmodel)."""
    path = folder / "MLmodel"
    try:
        lines = path.read_text().splitlines(keepends=True)
    except OSError:
        return  # a model whose files are gone: nothing to point anywhere
    changed = [f"artifact_path: {new}\n" if line.rstrip("\n") == f"artifact_path: {old}" else line
               for line in lines]
    if changed != lines:
        partial = path.with_name("MLmodel.partial")
        partial.write_text("".join(changed))
        partial.replace(path)


def settings_fingerprint(settings: str) -> str:
    """Same training settings + same code version, whatever the data."""
    return hashlib.sha256(f"{settings}|spec {TRAINING_SPEC_VERSION}".encode()).hexdigest()


def version_uri(number: int | str) -> str:
    return f"models:/{REGISTERED_MODEL_NAME}/{number}"


def version_number(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


@dataclass(frozen=True)
class RegisteredVersion:
    """One registered version and its MLflow run, as read from the registry."""

    version: str  # models:/careerpulse-knn-category/N
    run_id: str
    tags: dict[str, str]
    params: dict[str, str]


def _registered(number: str, run_id: str) -> RegisteredVersion:
    run = mlflow.get_run(run_id)
    return RegisteredVersion(version_uri(number), run_id, run.data.tags, run.data.params)


def champion() -> RegisteredVersion | None:
    try:
        found = mlflow.MlflowClient().get_model_version_by_alias(REGISTERED_MODEL_NAME, CHAMPION)
    except MlflowException:
        return None  # no registered model yet, or no champion
    return _registered(found.version, found.run_id)


def latest() -> RegisteredVersion | None:
    """The newest registered version (the last challenger, promoted or not)."""
    versions = mlflow.MlflowClient().search_model_versions(f"name='{REGISTERED_MODEL_NAME}'")
    if not versions:
        return None
    newest = max(versions, key=lambda v: int(v.version))
    return _registered(newest.version, newest.run_id)


def model_facts(
    registered: RegisteredVersion,
    labelled: LabelledSet,
    settings: str,
    drift_flagged_version: str | None,
) -> ModelFacts:
    """How a registered version stands against today's labelled postings and settings."""
    unreadable = None
    try:
        rows = np.load(mlflow.artifacts.download_artifacts(
            f"runs:/{registered.run_id}/{LABELLED_ROWS_ARTIFACT}"))
        changed, share = labelled_changes(rows, labelled.row_hashes)
        reviewers = int(np.isin(labelled.reviewer_row_hashes, rows, invert=True).sum())
    except (MlflowException, OSError, ValueError) as exc:
        unreadable = f"{LABELLED_ROWS_ARTIFACT}: {str(exc).splitlines()[0][:200]}"
        changed, share = len(labelled.postings), 1.0
        reviewers = len(labelled.reviewer_row_hashes)
    return ModelFacts(
        version=registered.version,
        same_settings=registered.tags.get(SETTINGS_TAG) == settings_fingerprint(settings),
        labelled_changed=changed,
        labelled_changed_share=share,
        reviewer_labels_changed=reviewers,
        drift_flagged=drift_flagged_version == registered.version,
        promoted_by_its_training=registered.tags.get(PROMOTION_TAG, "").startswith("promoted"),
        unreadable=unreadable,
    )


def load_evaluation(
    registered: RegisteredVersion,
) -> tuple[Evaluation, DriftReference] | None:
    """The evaluation a version was trained with; None when it cannot be read."""
    run = registered.run_id
    try:
        summary = mlflow.artifacts.load_dict(f"runs:/{run}/evaluation.json")
        confusion = read_frame(
            mlflow.artifacts.download_artifacts(f"runs:/{run}/confusion.csv"), index=True
        )
        picture = Path(mlflow.artifacts.download_artifacts(f"runs:/{run}/confusion.png")).read_bytes()
    except (MlflowException, OSError, ValueError) as exc:
        log.warning("evaluation of %s unreadable: %s", registered.version, exc)
        return None
    missing = sorted(set(SUMMARY_KEYS) - set(summary))
    if missing:  # written by an older version of this code
        log.warning("evaluation of %s lacks %s", registered.version, missing)
        return None
    return from_summary(summary, confusion, picture)


def load_out_of_fold(registered: RegisteredVersion) -> OutOfFold | None:
    """The out-of-fold predictions a version was judged on; None when they cannot be read."""
    try:
        path = mlflow.artifacts.download_artifacts(
            f"runs:/{registered.run_id}/{OUT_OF_FOLD_ARTIFACT}")
        with np.load(path, allow_pickle=False) as arrays:
            return OutOfFold.from_arrays(arrays)
    except (MlflowException, OSError, ValueError, KeyError) as exc:
        # KeyError: saved before the class scores were kept (TRAINING_SPEC_VERSION 6).
        log.warning("out-of-fold predictions of %s unreadable: %s", registered.version, exc)
        return None


def load_count_errors(registered: RegisteredVersion) -> dict | None:
    """The count errors a version's training simulated; None when it kept none (logged before
    COUNT_ERRORS_ARTIFACT) or they cannot be read."""
    try:
        return mlflow.artifacts.load_dict(f"runs:/{registered.run_id}/{COUNT_ERRORS_ARTIFACT}")
    except (MlflowException, OSError, ValueError):
        return None


def load_policy(registered: RegisteredVersion) -> ImputationPolicy | None:
    """The per-posting policy a version's training chose (evaluation.json), None when it cannot
    be read or was chosen by a policy of another kind."""
    try:
        summary = mlflow.artifacts.load_dict(f"runs:/{registered.run_id}/evaluation.json")
    except (MlflowException, OSError, ValueError):
        return None
    kept = summary.get(POLICY_KEY)
    try:
        return ImputationPolicy.from_summary(kept) if isinstance(kept, dict) else None
    except TypeError:  # keys of another version of the policy
        return None


def log_training(
    training: Training,
    labelled: LabelledSet,
    settings: str,
    reason: str,
    unlabelled_share: float,
    calibration: ModelCalibration,
    gate: GateVerdict,
) -> tuple[str, Evaluation, DriftReference]:
    """Record a training in the active MLflow run (with the challenger's calibration, per-posting
    policy and quality gate) and register its model as the challenger. Returns the version and
    the challenger's evaluation and drift reference."""
    params = training.params
    policy = calibration.policy
    mlflow.set_tags({
        SETTINGS_TAG: settings_fingerprint(settings),
        RETRAIN_REASON_TAG: reason,
        GATE_TAG: gate.reason,
    })
    mlflow.log_params({
        "k": params.k, "vote": params.vote, "prior_alpha": params.prior_alpha,
        "title_weight": params.title_weight, "ngrams": params.ngrams, "metric": "cosine",
        "max_features": MAX_FEATURES if params.ngrams == 1 else MAX_FEATURES_WITH_BIGRAMS,
        "n_labelled": len(labelled.postings), "n_evaluated": training.evaluated_postings,
        "n_classes": labelled.labels.nunique(), "reposts_removed": labelled.reposts_removed,
        "categories_too_rare": json.dumps(labelled.excluded_categories),
        "reviewer_labels": reviewer_labels(labelled),
        "oof_repeats": training.challenger.estimate.repeats,
        "oof_folds": training.challenger.estimate.folds,
    })
    metrics = {**training.challenger.estimate.flat("oof"), "cv_macro_f1": training.cv_macro_f1}
    if training.time_split is not None:
        metrics |= training.time_split.flat_metrics()
    if training.comparison is not None:
        metrics |= training.comparison.flat()
    metrics |= {f"written_{name}": value for name, value in policy.estimate.items()}
    if policy.threshold is not None:
        metrics["imputation_threshold"] = policy.threshold
    metrics["categories_withheld"] = len(policy.withheld)
    metrics |= {f"calibration_{name}": value
                for name, value in calibration.report.figures().items()}
    metrics |= {f"count_error_{method}_{kind}": value
                for method, kinds in calibration.counting.expected_l1.items()
                for kind, value in kinds.items()}
    metrics["quality_gate_passed"] = float(gate.passed)
    mlflow.log_metrics({name: value for name, value in metrics.items()
                        if value is not None and not (isinstance(value, float) and np.isnan(value))})
    evaluation = evaluation_of(training.challenger, training.chosen, labelled)
    reference = drift_reference(labelled, unlabelled_share)
    summary = summary_of(evaluation, reference) | {POLICY_KEY: policy.summary()}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        # Category names come from the API: no cell a spreadsheet would evaluate.
        write_frame(training.challenger.tables.per_class, out / "per_class.csv")
        write_frame(training.challenger.tables.confusion, out / "confusion.csv", index=True)
        write_frame(training.challenger.tables.reliability, out / "reliability.csv")
        write_frame(calibration.report.reliability, out / "reliability_calibrated.csv")
        (out / "confusion.png").write_bytes(evaluation.confusion_png)
        if training.time_split is not None:
            write_frame(training.time_split.per_class, out / "per_class_time_split.csv")
        (out / "evaluation.json").write_text(json.dumps(summary, indent=2))
        np.save(out / LABELLED_ROWS_ARTIFACT, labelled.row_hashes)
        np.savez_compressed(out / OUT_OF_FOLD_ARTIFACT, **training.challenger.oof.arrays())
        (out / COUNT_ERRORS_ARTIFACT).write_text(json.dumps(count_errors(calibration.counting)))
        mlflow.log_artifacts(folder)
    example = model_input(labelled.postings.head(3))
    info = mlflow.sklearn.log_model(
        training.model,
        name="model",
        registered_model_name=REGISTERED_MODEL_NAME,
        input_example=example,
        # The output is a category name per row, as the example's own labels are: no prediction
        # needed for the schema (one costs seconds at 100,000 postings; MLflow makes one anyway
        # to check the input example).
        signature=infer_signature(example, labelled.labels.head(3).to_numpy()),
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", "careerpulse_assets"],
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
    )
    number = info.registered_model_version
    mlflow.MlflowClient().set_registered_model_alias(REGISTERED_MODEL_NAME, CHALLENGER, number)
    return version_uri(number), evaluation, reference


def record_promotion(run_id: str, promote: bool, reason: str) -> None:
    client = mlflow.MlflowClient()
    client.set_tag(run_id, PROMOTION_TAG, ("promoted: " if promote
                                           else "not promoted: ") + reason)


def set_champion(version: str) -> None:
    mlflow.MlflowClient().set_registered_model_alias(
        REGISTERED_MODEL_NAME, CHAMPION, version_number(version)
    )


def load_model(version: str):
    return mlflow.sklearn.load_model(version)


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
