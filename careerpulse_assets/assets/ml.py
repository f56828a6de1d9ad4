import pickle
from dataclasses import replace
from pathlib import Path

import mlflow
import pandas as pd
from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)
from dagster_duckdb import DuckDBResource

from ..core.classifier import TrainedClassifier, impute_categories
from ..core.evaluation import (
    MIN_POSTINGS_PER_CATEGORY,
    evaluate,
    evaluation_set,
    knn_method,
    labelled_changes,
    labelled_set,
    logistic_regression_method,
)
from ..core.plots import confusion_png
from ..core.selection import KnnGrid, NotEnoughLabels, fit_knn
from ..tracking import (
    REGISTERED_MODEL_NAME,
    discard_active_run,
    find_latest_trained,
    find_trained,
    load_trained,
    log_training,
    training_fingerprint,
)
from .common import DUCKDB_POOL, OWNERS, png_markdown, preview
from .silver import silver_postings

LABELLED_SQL = """
SELECT posting_id, title, description_text, category, categories, publication_date
FROM silver.silver_postings WHERE category IS NOT NULL ORDER BY posting_id
"""
# Only postings without a category need their text (to be classified). The texts stay in
# silver: the imputed table is the lean one users count and join.
POSTINGS_SQL = """
SELECT posting_id, bronze_row_id, title,
       CASE WHEN category IS NULL THEN description_text END AS description_text,
       category, category_raw, categories, level, locations, company, publication_date
FROM silver.silver_postings ORDER BY posting_id
"""
EARLIER_IMPUTATIONS_SQL = """
SELECT posting_id, bronze_row_id, category, imputation_confidence
FROM silver.imputed_silver WHERE is_imputed AND model_version = $model_version
"""
# A model is reused while fewer than this share of the labelled postings it learned from are
# new, changed or gone: a page of 20 new postings every few minutes should not cost a training
# (minutes at 100,000 postings). The daily_retraining schedule retrains regardless.
RETRAIN_AT_LABELLED_CHANGE = 0.05

MLFLOW_UI_URL = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default (see README)


_DEFAULT_GRID = KnnGrid()


class KnnClassifierConfig(Config):
    """What the CV chooses among, and when to train. Defaults are the documented grid."""

    min_postings_per_category: int = MIN_POSTINGS_PER_CATEGORY
    ks: list[int] = list(_DEFAULT_GRID.ks)
    vote_rules: list[str] = list(_DEFAULT_GRID.votes)
    prior_alphas: list[float] = list(_DEFAULT_GRID.prior_alphas)
    title_weights: list[float] = [w for w, _ in _DEFAULT_GRID.representations if w is not None]
    word_pairs: bool = True
    force_retrain: bool = False
    # Retrain once this share of the labelled postings changed since training; 0: on any change.
    retrain_at_labelled_change: float = RETRAIN_AT_LABELLED_CHANGE

    def grid(self) -> KnnGrid:
        return KnnGrid(
            representations=((None, 1),)
            + (((None, 2),) if self.word_pairs else ())
            + tuple((float(w), 1) for w in self.title_weights),
            ks=tuple(self.ks),
            votes=tuple(self.vote_rules),
            prior_alphas=tuple(self.prior_alphas),
        )


@asset(
    deps=[silver_postings],
    group_name="ml",
    kinds={"scikitlearn", "mlflow"},
    owners=OWNERS,
    tags={"layer": "ml"},
    pool=DUCKDB_POOL,  # it reads silver from DuckDB
    io_manager_key="model_io_manager",
    # dagster-mlflow is a legacy resource, so resources are named here rather than as arguments;
    # the model IO manager's folder holds the classifier the last run stored.
    required_resource_keys={"mlflow", "duckdb", "model_io_manager"},
    description="TF-IDF + cosine KNN that learns the category from title and description. "
    "Vote rule (uniform / distance), class-prior correction, title weight, word pairs and k are "
    "chosen by stratified 5-fold CV on macro-F1; scored on a stratified 80/20 hold-out and a "
    "time-ordered split (of a stratified sample of 20,000 when there are more); refitted on all "
    "labelled postings and registered in MLflow as "
    f"`{REGISTERED_MODEL_NAME}`. Retrains when 5 % or more of the labelled postings (or their "
    "taxonomy) changed since the model it would reuse, when its settings or code changed, once "
    "after category drift was flagged on it, or when forced by config.",
)
def knn_classifier(
    context: AssetExecutionContext, config: KnnClassifierConfig
) -> TrainedClassifier:
    with context.resources.duckdb.get_connection() as connection:
        labelled = connection.execute(LABELLED_SQL).fetchdf()
        unlabelled_share = connection.execute(
            "SELECT avg(CASE WHEN category IS NULL THEN 1.0 ELSE 0.0 END) FROM silver.silver_postings"
        ).fetchone()[0]
    try:
        trained = _train_or_reuse(context, config, labelled, float(unlabelled_share or 0.0))
    finally:
        # The MLflow run ends with this step: FINISHED when logged, FAILED when anything raised.
        if mlflow.active_run() is not None:
            mlflow.end_run(status="FAILED")
    context.add_output_metadata(_classifier_metadata(trained))
    return trained


def _train_or_reuse(
    context: AssetExecutionContext,
    config: KnnClassifierConfig,
    silver_labelled: pd.DataFrame,
    unlabelled_share: float,
) -> TrainedClassifier:
    try:
        labelled = labelled_set(silver_labelled, config.min_postings_per_category)
    except NotEnoughLabels as exc:
        raise Failure(f"cannot train the category classifier: {exc}") from None
    grid = config.grid()
    settings = f"{grid!r}|min_postings={config.min_postings_per_category}"
    fingerprint = training_fingerprint(labelled, settings)
    experiment_id = mlflow.active_run().info.experiment_id
    retrain_reason = "forced by config" if config.force_retrain else None
    if retrain_reason is None:
        previous = _reusable_model(
            context, labelled, settings, fingerprint, experiment_id,
            config.retrain_at_labelled_change,
        )
        flagged = drift_flagged_model(context.instance)
        if previous is not None and flagged == previous.model_version:
            if previous.retrain_reason == "category drift":
                context.log.warning(
                    f"category drift persists on {previous.model_version}, itself retrained for "
                    "drift: retraining on the same labels cannot help; label recent postings"
                )
            else:
                retrain_reason = "category drift"
                context.log.info(f"category drift was flagged on {flagged}: retraining")
        if previous is not None and retrain_reason is None:
            discard_active_run()
            context.log.info(
                f"{previous.labelled_changes_since_training} labelled postings changed since "
                f"{previous.model_version}: reusing it"
            )
            return previous
        if previous is None:
            context.log.info("no reusable model for these labelled postings: training one")

    context.log.info(
        f"training on {len(labelled.postings)} labelled postings in "
        f"{labelled.labels.nunique()} categories ({labelled.reposts_removed} reposts removed)"
    )
    evaluated = evaluation_set(labelled)
    if evaluated is not labelled:
        context.log.info(
            f"evaluating on a stratified sample of {len(evaluated.postings):,} of "
            f"{len(labelled.postings):,} labelled postings"
        )
    holdout = evaluate(evaluated, knn_method(grid), "holdout")
    context.log.info(f"hold-out: {holdout.chosen}: {holdout.metrics}")
    time_ordered = evaluate(evaluated, knn_method(grid), "time")
    context.log.info(f"time-ordered split: {time_ordered.chosen}: {time_ordered.metrics}")
    comparison = evaluate(evaluated, logistic_regression_method, "holdout")
    context.log.info(f"logistic regression (comparison only): {comparison.metrics}")
    # The setting scored on the hold-out is the one deployed, refitted on every posting.
    model = fit_knn(labelled.postings, labelled.labels, holdout.fitted.knn_params)
    return log_training(
        model, labelled, holdout, time_ordered, comparison, fingerprint, settings,
        unlabelled_share, retrain_reason, evaluated_postings=len(evaluated.postings),
    )


def _reusable_model(
    context: AssetExecutionContext,
    labelled,
    settings: str,
    fingerprint: str,
    experiment_id: str,
    threshold: float,
) -> TrainedClassifier | None:
    """A model trained on exactly these labelled postings, or else the newest one with these
    settings when fewer than `threshold` of its labelled postings changed since."""
    # The stored classifier lives only in this function: a training must not keep it in memory.
    stored = _stored_classifier(context)
    exact = find_trained(fingerprint, experiment_id, stored)
    if exact is not None:
        return exact
    latest = find_latest_trained(settings, experiment_id)
    if latest is None:
        return None
    run_id, trained_on = latest
    changed, share = labelled_changes(trained_on, labelled.row_hashes)
    if share >= threshold:
        context.log.info(
            f"{changed} labelled postings changed since MLflow run {run_id} ({share:.1%}, "
            f"retraining from {threshold:.0%}): training"
        )
        return None
    trained = load_trained(run_id, stored)
    return None if trained is None else replace(trained, labelled_changes_since_training=changed)


def _stored_classifier(context: AssetExecutionContext) -> TrainedClassifier | None:
    """What the last materialisation handed downstream (the model IO manager's pickle), if any."""
    base_dir = getattr(context.resources.model_io_manager, "base_dir", None)
    path = Path(base_dir) / "knn_classifier" if base_dir else None
    if path is None or not path.exists():
        return None
    try:
        with path.open("rb") as stored:
            classifier = pickle.load(stored)
    except Exception as exc:  # unreadable or from an incompatible version: use the registry
        context.log.warning(f"stored classifier {path} unreadable, loading from MLflow: {exc}")
        return None
    return classifier if isinstance(classifier, TrainedClassifier) else None


def drift_flagged_model(instance) -> str | None:
    """The model version the latest `category_drift` check failed on, if it failed."""
    key = AssetCheckKey(AssetKey("imputed_silver"), "category_drift")
    # The newest records include this run's own, still only planned: skip to the last verdict.
    for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=5):
        event = record.event.dagster_event if record.event is not None else None
        evaluation = event.event_specific_data if event is not None else None
        if isinstance(evaluation, AssetCheckEvaluation):
            if evaluation.passed:
                return None
            version = evaluation.metadata.get("model_version")
            return version.value if version is not None else None
    return None


def _classifier_metadata(trained: TrainedClassifier) -> dict:
    run_url = f"{MLFLOW_UI_URL}/#/experiments/{mlflow.get_run(trained.mlflow_run_id).info.experiment_id}/runs/{trained.mlflow_run_id}"
    metadata = {
        "model_version": trained.model_version,
        "retrained": trained.retrained,
        "retrain_reason": trained.retrain_reason or "labelled postings changed",
        "labelled_changes_since_training": trained.labelled_changes_since_training,
        "chosen": trained.chosen,
        **{f"holdout_{name}": value for name, value in trained.holdout.items()},
        "holdout_postings": trained.n_holdout,
        "evaluated_on_postings": trained.evaluated_postings,
        "trained_on_postings": sum(trained.training_counts.values()),
        "categories_too_rare_to_learn": trained.excluded_categories,
        "most_confused": trained.most_confused,
        "reliability": MetadataValue.table(
            records=[
                TableRecord(row)
                for row in trained.reliability
                if row["postings"]  # an empty bucket has no accuracy to show
            ],
            schema=TableSchema(
                columns=[
                    TableColumn("confidence", "string"),
                    TableColumn("postings", "int"),
                    TableColumn("accuracy", "float"),
                    TableColumn("mean_confidence", "float"),
                ]
            ),
        ),
        "mlflow_run": MetadataValue.url(run_url),
    }
    if trained.confusion is not None:
        metadata["confusion_matrix"] = png_markdown(
            trained.confusion_png or confusion_png(trained.confusion), "hold-out confusion matrix"
        )
    return metadata


@asset(
    group_name="ml",
    kinds={"duckdb", "pandas"},
    owners=OWNERS,
    tags={"layer": "silver"},
    pool=DUCKDB_POOL,
    metadata={"schema": "silver"},
    description="Every silver posting with a category: observed ones kept, missing ones "
    "predicted by `knn_classifier`, with `is_imputed`, `imputation_confidence` (share of "
    "neighbour votes) and `model_version`.",
)
def imputed_silver(
    context: AssetExecutionContext, knn_classifier: TrainedClassifier, duckdb: DuckDBResource
) -> pd.DataFrame:
    with duckdb.get_connection() as connection:
        postings = connection.execute(POSTINGS_SQL).fetchdf()
        earlier = _earlier_imputations(connection, knn_classifier.model_version)
    imputed, predicted = impute_categories(
        postings, knn_classifier.model, knn_classifier.model_version, earlier
    )
    imputed = imputed.drop(columns=["description_text"])
    confidence = imputed.loc[imputed["is_imputed"], "imputation_confidence"]
    context.add_output_metadata(
        {
            "imputed_postings": int(imputed["is_imputed"].sum()),
            "predicted_in_this_run": predicted,
            "mean_imputation_confidence": float(confidence.mean()) if len(confidence) else None,
            "model_version": knn_classifier.model_version,
            "imputed_rows": preview(imputed[imputed["is_imputed"]].drop(columns=["categories", "locations"])),
        }
    )
    return imputed


def _earlier_imputations(connection, model_version: str) -> pd.DataFrame | None:
    # Asked first: DuckDB would look a missing table up among this module's Python names.
    has_row_ids = connection.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'silver' "
        "AND table_name = 'imputed_silver' AND column_name = 'bronze_row_id'"
    ).fetchone()[0]
    if not has_row_ids:  # no imputed table yet, or one from before it kept bronze_row_id
        return None
    return connection.execute(EARLIER_IMPUTATIONS_SQL, {"model_version": model_version}).fetchdf()
