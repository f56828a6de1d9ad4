import mlflow
import pandas as pd
import sklearn
from dagster import AssetExecutionContext, Config, Failure, MetadataValue, asset
from mlflow.models import infer_signature

from ..core.classifier import (
    MAX_FEATURES,
    MIN_POSTINGS_PER_CATEGORY,
    NotEnoughLabels,
    TrainedClassifier,
    evaluate_seed_knn,
    fit_seed_knn,
    impute_categories,
    training_set,
)
from .bronze import DUCKDB_POOL

REGISTERED_MODEL_NAME = "careerpulse-knn-category"
MLFLOW_UI_URL = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default (see README)


class KnnClassifierConfig(Config):
    min_postings_per_category: int = MIN_POSTINGS_PER_CATEGORY


@asset(
    group_name="ml",
    kinds={"scikitlearn", "mlflow"},
    pool=DUCKDB_POOL,  # it reads silver from DuckDB
    io_manager_key="model_io_manager",
    required_resource_keys={"mlflow"},
    description="TF-IDF + cosine KNN that learns the category from title and description: k "
    "chosen by stratified 5-fold CV on macro-F1, scored on a stratified 80/20 hold-out, refitted "
    f"on all labelled postings and registered in MLflow as `{REGISTERED_MODEL_NAME}`.",
)
def knn_classifier(
    context: AssetExecutionContext, config: KnnClassifierConfig, silver_postings: pd.DataFrame
) -> TrainedClassifier:
    try:
        return _train_and_log(context, config, silver_postings)
    finally:
        # The MLflow run ends with this step: FINISHED above on success, FAILED here otherwise.
        if mlflow.active_run() is not None:
            mlflow.end_run(status="FAILED")


def _train_and_log(
    context: AssetExecutionContext, config: KnnClassifierConfig, silver_postings: pd.DataFrame
) -> TrainedClassifier:
    training = training_set(silver_postings, config.min_postings_per_category)
    try:
        evaluation = evaluate_seed_knn(training)
    except NotEnoughLabels as exc:
        raise Failure(f"cannot train the category classifier: {exc}") from None
    model = fit_seed_knn(training, evaluation.k)

    run = mlflow.active_run()
    mlflow.set_tag("mlflow.runName", f"knn_classifier {context.run_id[:8]}")
    mlflow.log_params(
        {
            "k": evaluation.k,
            "metric": "cosine",
            "max_features": MAX_FEATURES,
            "min_postings_per_category": config.min_postings_per_category,
            "n_labelled": len(training.labels),
            "n_classes": len(evaluation.classes),
        }
    )
    mlflow.log_metrics(
        {
            "holdout_accuracy": evaluation.accuracy,
            "holdout_macro_f1": evaluation.macro_f1,
            "holdout_weighted_f1": evaluation.weighted_f1,
            **{f"cv_macro_f1_k{k}": score for k, score in evaluation.cv_macro_f1_by_k.items()},
        }
    )
    example = training.features.head(3)
    model_info = mlflow.sklearn.log_model(
        model,
        name="model",
        registered_model_name=REGISTERED_MODEL_NAME,
        input_example=example,
        signature=infer_signature(example, model.predict(example)),
        pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        # MLflow saves with skops, which trusts no type it was not told of; the KNN keeps its
        # training matrix as a scipy CSR matrix.
        skops_trusted_types=["scipy.sparse._csr.csr_matrix"],
    )
    mlflow.end_run()
    model_version = f"models:/{REGISTERED_MODEL_NAME}/{model_info.registered_model_version}"

    context.add_output_metadata(
        {
            "k": evaluation.k,
            "holdout_accuracy": evaluation.accuracy,
            "holdout_macro_f1": evaluation.macro_f1,
            "holdout_weighted_f1": evaluation.weighted_f1,
            "cv_macro_f1_by_k": {str(k): s for k, s in evaluation.cv_macro_f1_by_k.items()},
            "labelled_postings": len(training.labels),
            "classes": evaluation.classes,
            "categories_too_rare_to_learn": training.excluded_categories,
            "model_version": model_version,
            "mlflow_run": MetadataValue.url(
                f"{MLFLOW_UI_URL}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
            ),
        }
    )
    return TrainedClassifier(
        model=model,
        evaluation=evaluation,
        model_version=model_version,
        mlflow_run_id=run.info.run_id,
        excluded_categories=training.excluded_categories,
    )


@asset(
    group_name="ml",
    kinds={"duckdb", "pandas"},
    pool=DUCKDB_POOL,
    metadata={"schema": "silver"},
    description="Every silver posting with a category: observed ones kept, missing ones "
    "predicted by `knn_classifier`, with `is_imputed`, `imputation_confidence` (share of "
    "neighbour votes) and `model_version`.",
)
def imputed_silver(
    context: AssetExecutionContext,
    silver_postings: pd.DataFrame,
    knn_classifier: TrainedClassifier,
) -> pd.DataFrame:
    imputed = impute_categories(
        silver_postings, knn_classifier.model, knn_classifier.model_version
    ).drop(columns=["description_html", "description_text"])  # the texts stay in silver
    confidence = imputed.loc[imputed["is_imputed"], "imputation_confidence"]
    context.add_output_metadata(
        {
            "imputed_postings": int(imputed["is_imputed"].sum()),
            "mean_imputation_confidence": float(confidence.mean()) if len(confidence) else None,
            "model_version": knn_classifier.model_version,
        }
    )
    return imputed
