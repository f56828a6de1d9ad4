"""The classifier's assets, wired: `knn_classifier` (what serves: classification/service.py),
`imputed_silver` (imputing with it: classification/serving.py) and `review_queue`
(review/queue.py). They read silver through the `duckdb` resource: the classifier goes to
`classifier_io_manager`, the review queue to the DuckDB `io_manager`, and imputed_silver writes
its own table (only what changed: classification/imputed_store.py)."""

import pandas as pd
import pyarrow as pa
from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
    TableColumn,
    TableRecord,
    TableSchema,
)
from dagster_duckdb import DuckDBResource

from ..classification import imputed_store
from ..classification.decisions import RETRAIN_AT_LABELLED_CHANGE, GateBars, recount_decision
from ..classification.evaluation import MIN_POSTINGS_PER_CATEGORY, LabelledSet
from ..classification.knn import NO_INFORMATION_DISTANCE
from ..classification.model_selection import KnnGrid
from ..classification.per_posting_policy import realised_precision
from ..classification.registry import REGISTERED_MODEL_NAME
from ..classification.service import Wiring, serve
from ..classification.serving import (
    MIX_SHOWN,
    ServingClassifier,
    counting_fingerprint,
    impute_categories,
    imputed_arrow,
    kept_count,
    unlabelled_mix,
    updated_mix,
)
from ..ingestion.silver_store import key_and_link_sql
from ..review.queue import (
    DEFAULT_RULE,
    PREDICTED_SQL,
    UNLABELLED_SQL,
    queue_table,
    recall_by_category,
    unguessed_queue,
)
from ..review.queue import RULES as REVIEW_RULES
from ..review.queue import review_queue as ordered_queue
from .common import (
    PREVIEW_ROWS,
    Heartbeat,
    careerpulse_asset,
    png_markdown,
    preview,
    rounded,
    table_metadata,
)
from .silver import silver_postings

# What decides whether to train: the labelled postings' categories and text keys (no texts).
LABELLED_KEYS_SQL = """
SELECT s.posting_id, s.category, s.category_source, {key_and_link}
FROM silver.silver_postings AS s WHERE s.category IS NOT NULL ORDER BY s.posting_id
"""
# What a training reads.
LABELLED_SQL = """
SELECT s.posting_id, s.title, s.description_text, s.category, s.category_source, s.categories,
       s.publication_date, {key_and_link}
FROM silver.silver_postings AS s WHERE s.category IS NOT NULL ORDER BY s.posting_id
"""
UNLABELLED_SHARE_SQL = """
SELECT avg(CASE WHEN category IS NULL THEN 1.0 ELSE 0.0 END) FROM silver.silver_postings
"""

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
    """Train whatever share of the labels changed; refused (the model reused, saying so) when
    the labels and code are those of the model in service: that training would learn the same
    model. `careerpulse_retrain` sets it."""
    retrain_at_labelled_change: float = RETRAIN_AT_LABELLED_CHANGE
    """Retrain once this share of the labelled postings changed since training; 0: on any."""

    def grid(self) -> KnnGrid:
        return KnnGrid(
            representations=((None, 1),)
            + (((None, 2),) if self.word_pairs else ())
            + tuple((float(w), 1) for w in self.title_weights),
            ks=tuple(self.ks),
            votes=tuple(self.vote_rules),
            prior_alphas=tuple(self.prior_alphas),
        )


@careerpulse_asset(
    layer="ml",
    group="ml",
    kinds={"scikitlearn", "mlflow"},
    deps=[silver_postings],
    io_manager_key="classifier_io_manager",
    # dagster-mlflow is a legacy resource, so resources are named here rather than as arguments.
    required_resource_keys={"mlflow", "duckdb", "quality_bars"},
    description="TF-IDF + cosine KNN that learns the category from title and description; vote "
    "rule, class-prior correction, title weight, word pairs and k chosen by stratified 5-fold CV "
    "on macro-F1. Judged out-of-fold over every labelled posting (settings chosen inside each "
    "outer fold): accuracy and macro-F1 at full coverage are the quality gate "
    "(`knn_holdout_accuracy`, `knn_holdout_macro_f1`). Its class scores are calibrated "
    "(isotonic, fitted out-of-fold) for counting the postings without a category "
    "(series/quantification.py) and for the per-posting rule: the most probable category is written "
    "where its probability reaches the threshold at which out-of-fold predictions are right "
    "CAREERPULSE_MIN_PRECISION (0.90) of the time. Registered in MLflow as "
    f"`{REGISTERED_MODEL_NAME}`: the alias `champion` is the version in service, `challenger` "
    "the newest trained. Retrains when reviewers' labels are new or changed, when 5 % or more "
    "of the champion's labelled postings changed, its settings or code changed, or when forced, "
    "never on the labels and code it was trained on; a challenger replaces the champion when it "
    "is not worse on the same postings and folds and passes the gate (or the champion does not "
    "pass it either).",
)
def knn_classifier(context: AssetExecutionContext, config: KnnClassifierConfig
                   ) -> ServingClassifier:
    duckdb, tracking = context.resources.duckdb, context.resources.mlflow
    quality_bars = context.resources.quality_bars
    bars = quality_bars.for_run(context.run_config)
    with duckdb.get_connection() as connection:
        key_and_link = key_and_link_sql(connection)
        labelled_keys = connection.execute(
            LABELLED_KEYS_SQL.format(key_and_link=key_and_link)).fetchdf().drop(columns="link")
        unlabelled_share = float(connection.execute(UNLABELLED_SHARE_SQL).fetchone()[0] or 0.0)

    def read_labelled() -> pd.DataFrame:
        with duckdb.get_connection() as connection:
            return connection.execute(
                LABELLED_SQL.format(key_and_link=key_and_link)).fetchdf().drop(columns="link")

    with Heartbeat(context.log.info, "knn_classifier") as beat:
        wiring = Wiring(bars, quality_bars.min_precision, tracking.training_run,
                        context.log.info, beat.phase)
        serving, labelled = serve(
            labelled_keys, read_labelled, config.grid(), config.min_postings_per_category,
            config.force_retrain, config.retrain_at_labelled_change,
            drift_flagged_model(context.instance), unlabelled_share, wiring)
    if serving.model is None:
        context.log.warning(serving.outcome.reason)
    else:
        context.log.info(f"quality gate: {serving.gate.reason}")
        context.log.info(f"per posting: {serving.policy.reason}")
    metadata = _classifier_metadata(serving, serving.run_id and tracking.run_url(serving.run_id),
                                    bars)
    if labelled is not None:
        metadata["labelled"] = labelled_parts(labelled, config.min_postings_per_category)
    context.add_output_metadata(metadata)
    return serving


def labelled_parts(labelled: LabelledSet, min_postings: int) -> dict:
    """Today's labelled postings as the summary names their parts."""
    return {"learnable": len(labelled.postings), "reposts_set_aside": labelled.reposts_removed,
            "too_rare_to_learn": labelled.excluded_categories, "min_postings": min_postings}


def drift_flagged_model(instance) -> str | None:
    """The model version the latest `category_drift` check flagged drift on, if it did."""
    evaluation = _latest_check_evaluation(instance, "imputed_silver", "category_drift")
    if evaluation is None or evaluation.passed:
        return None
    if "evaluated" in evaluation.metadata and not evaluation.metadata["evaluated"].value:
        return None  # a window too small to judge is not drift
    version = evaluation.metadata.get("model_version")
    return version.value if version is not None else None


def _latest_check_evaluation(instance, asset: str, check: str) -> AssetCheckEvaluation | None:
    key = AssetCheckKey(AssetKey(asset), check)
    # The newest records include this run's own, still only planned: skip to the last verdict.
    for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=5):
        event = record.event.dagster_event if record.event is not None else None
        evaluation = event.event_specific_data if event is not None else None
        if isinstance(evaluation, AssetCheckEvaluation):
            return evaluation
    return None


def _classifier_metadata(serving: ServingClassifier, run_url: str | None, bars: GateBars) -> dict:
    outcome, evaluation, calibration = serving.outcome, serving.evaluation, serving.calibration
    metadata = {
        "model_version": serving.version,
        "champion": serving.version,
        "retrained": outcome.retrained,
        "reason": outcome.reason,
        "labelled_changes_since_training": outcome.labelled_changes,
        "chosen": evaluation.chosen,
        # The quality gate: every posting its most probable category, nested out-of-fold.
        "quality_gate": serving.gate.reason if serving.gate else None,
        "bars": bars.describe(),
        **{f"oof_{name}": value for name, value in rounded(evaluation.estimate).items()},
        "oof_postings": evaluation.postings,
        "oof_method": evaluation.method,
        "judged_categories": list(evaluation.judged),
        "categories_too_rare_to_learn": evaluation.excluded_categories,
        "most_confused": evaluation.most_confused,
        "trained_on_postings": sum(serving.reference.training_counts.values()),
        "reviewer_labels_in_training": serving.reference.reviewer_labels,
    }
    if calibration is None:
        metadata |= {"imputation": outcome.reason, "imputation_threshold": None}
    else:
        policy, counting = calibration.policy, calibration.counting
        metadata |= {
            # What is written per posting, estimated nested.
            "imputation": policy.reason,
            "imputation_threshold": policy.threshold,
            "min_precision": policy.min_precision,
            "categories_withheld": rounded(policy.withheld),
            **{f"written_{name}": value for name, value in rounded(policy.estimate).items()},
            # How calibrated the probabilities the counts and the threshold rest on are.
            "calibration": calibration.report.describe(),
            **{f"calibration_{name}": value
               for name, value in rounded(calibration.report.figures()).items()},
            "reliability": _reliability_table(calibration.report.reliability),
            # What counting the postings without a category is expected to get wrong.
            "expected_count_error": rounded({f"{method} ({kind} mix)": value
                                             for method, kinds in counting.expected_l1.items()
                                             for kind, value in kinds.items()}),
        }
    if run_url:
        metadata["mlflow_run"] = MetadataValue.url(run_url)
    if outcome.challenger_version:
        metadata["challenger"] = outcome.challenger_version
        metadata["promotion"] = outcome.promotion
        metadata |= rounded(outcome.comparison)
    if evaluation.confusion_png is not None:
        metadata["confusion_matrix"] = png_markdown(
            evaluation.confusion_png, "out-of-fold confusion matrix"
        )
    return metadata


def _reliability_table(table: pd.DataFrame) -> MetadataValue:
    return MetadataValue.table(
        records=[TableRecord(rounded(row)) for row in table.to_dict(orient="records")],
        schema=TableSchema(columns=[
            TableColumn("confidence", "string"), TableColumn("postings", "int"),
            TableColumn("accuracy", "float"), TableColumn("mean_confidence", "float"),
        ]),
    )


@careerpulse_asset(
    layer="silver",
    group="ml",
    kinds={"duckdb", "pandas"},
    description="`silver.imputed_silver`: every silver posting with a category, never NULL: "
    "observed ones kept (`category_source` `api` or `label`); each one without a category gets "
    "`category_probabilities` (calibrated and corrected for the category mix of the postings "
    "without one: what gold counts) and its most probable category written (`imputed`, "
    "`is_imputed`) where that probability reaches the threshold at which out-of-fold "
    "predictions are right CAREERPULSE_MIN_PRECISION of the time, else `Unclassified` "
    "(`unclassified`). On every posting the model judged: `predicted_category`, "
    "`imputation_confidence` (its probability), the runner-up, the KNN's own `model_scores` and "
    "`model_version`. Also `silver.unlabelled_mix`: the postings without a category counted by "
    "category, with 90 % intervals, the method (PCC, or PACC under a prior shift) and its "
    "expected error; and `silver.written_categories`, every category written per posting "
    "(what reviewers' later labels are compared with). The step writes all three in one "
    "transaction (classification/imputed_store.py): every posting when the model, the precision "
    "bar or 1 % of the postings changed since the count was estimated, else only the postings "
    "new, changed or gone, corrected as the kept count corrects (classification/decisions.py "
    "`recount_decision`). Loaded through the `io_manager` like every table.",
)
def imputed_silver(
    context: AssetExecutionContext, knn_classifier: ServingClassifier, duckdb: DuckDBResource
) -> MaterializeResult:
    version, calibration = knn_classifier.version, knn_classifier.calibration
    min_precision = knn_classifier.policy.min_precision if knn_classifier.policy else None
    with duckdb.get_connection() as connection:
        changes = imputed_store.changed_postings(connection)
        kept = kept_count(imputed_store.kept_mix(connection) if changes is not None else None,
                          calibration.counting.classes if calibration else None)
        decision = recount_decision(kept and kept.facts, version, min_precision,
                                    changes.without_category if changes else 0,
                                    counting_fingerprint(calibration))
        replaced = None if decision.recount else changes.posting_ids
        postings, earlier = imputed_store.postings_and_earlier_scores(connection, version, replaced)
        replaced_sums = None if decision.recount else imputed_store.replaced_sums(connection, replaced)
        without_category = imputed_store.postings_without_category(connection)
    context.log.info(decision.reason)
    with Heartbeat(context.log.info, "imputed_silver") as beat:
        beat.phase(f"imputing {len(postings):,} postings with {version}" if version
                   else "no model: nothing to impute")
        imputation = impute_categories(postings, knn_classifier.model, version, calibration,
                                       earlier, texts=lambda ids: imputed_store.read_texts(duckdb, ids),
                                       kept=None if decision.recount else kept)
    rows = imputed_arrow(imputation.frame.sort_values("posting_id"))
    mix = (unlabelled_mix(imputation.counts, version, min_precision, without_category,
                          count_key=counting_fingerprint(calibration))
           if decision.recount else
           updated_mix(kept, replaced_sums, imputation.counts, without_category,
                       decision.changed_since))
    with duckdb.get_connection() as connection:
        imputed_store.write(connection, rows, mix, replaced)
        shown = imputed_store.summary(connection, 1 - NO_INFORMATION_DISTANCE, PREVIEW_ROWS)
        pairs = imputed_store.written_then_labelled(connection)
        table = table_metadata(connection, "silver.imputed_silver")
    realised = realised_precision(pairs["written"].to_numpy(), pairs["labelled"].to_numpy())
    return MaterializeResult(metadata={
        **table, **_imputation_metadata(shown, imputation, decision, knn_classifier, mix, kept),
        "realised_precision": realised.describe(),
        "realised_precision_postings": realised.postings})


def _imputation_metadata(shown: dict, imputation, decision, serving: ServingClassifier,
                         mix: pa.Table, kept) -> dict:
    """The asset's page: figures of the whole table (`shown`: imputed_store.summary), what this
    run imputed, and the count (silver.unlabelled_mix)."""
    without, written = shown["without_category"], shown["imputed"]
    policy = serving.policy
    metadata = {
        "postings_without_category": without,
        "imputed_postings": written,
        "unclassified_postings": without - written,
        "coverage": round(written / without, 3) if without else None,
        "imputation_threshold": policy.threshold if policy else None,
        "categories_withheld": list(policy.withheld) if policy else [],
        # Expected share right among the written ones, from their own probabilities: the
        # out-of-fold precision holds for the labelled mix, this for today's.
        "expected_precision_written": (round(float(shown["mean_confidence_written"]), 3)
                                       if written else None),
        "unclassified_by_guess": shown["unclassified_by_guess"],
        # Postings no labelled posting resembles: counted at the labelled mix, none written.
        "postings_like_no_labelled_one": shown["like_no_labelled_one"],
        # Rows written: every posting, or those new or changed (gone ones only deleted).
        "rows_written_in_this_run": imputation.frame.shape[0],
        "predicted_in_this_run": imputation.predicted,
        "recount": decision.reason,
        "model_version": serving.version,
        "imputed_rows": preview(shown["written_preview"]),
    }
    frame = mix.to_pandas()
    if len(frame):
        method, expected = frame["method"].iloc[0], float(frame["expected_share_error"].iloc[0])
        metadata |= {
            "count_method": method,
            "count_estimate": (imputation.counts.describe() if decision.recount else
                               f"{method} (correction kept from the estimate on "
                               f"{kept.facts.estimated_on:,} postings); expected error of the "
                               f"category shares {expected:.3f} (L1, out-of-fold)"),
            "expected_count_error": round(expected, 3),
            "unlabelled_mix": MetadataValue.md(frame[MIX_SHOWN].sort_values(
                "estimated_postings", ascending=False).to_markdown(index=False, floatfmt=".2f")),
        }
    return metadata


class ReviewQueueConfig(Config):
    rule: str = DEFAULT_RULE
    """least_confident, smallest_margin, low_recall_margin or one_per_duplicate (review/queue.py)."""


@careerpulse_asset(
    layer="silver",
    group="ml",
    kinds={"duckdb"},
    deps=[imputed_silver],
    description="`silver.review_queue`: the postings without a category in the order a "
    "reviewer's label would help most (priority 1 first): those left `Unclassified` first, then "
    "the imputed ones; with the model's guess, its share of the votes, the runner-up and the "
    f"reason. Rule `{DEFAULT_RULE}` by default (the smallest margin between "
    "the two top categories, one posting per repeated text): its first 30 are wrong guesses "
    "about four times as often as 30 random postings (BENCHMARKS.md). `make review N=50` "
    "writes the first N as a label file to fill in.",
)
def review_queue(
    context: AssetExecutionContext, config: ReviewQueueConfig, knn_classifier: ServingClassifier,
    duckdb: DuckDBResource,
) -> Output[pa.Table]:
    if config.rule not in REVIEW_RULES:
        raise Failure(f"unknown review rule {config.rule!r}; the rules are {', '.join(REVIEW_RULES)}")
    policy = knn_classifier.policy
    with duckdb.get_connection() as connection:
        if knn_classifier.model is None:
            queue = unguessed_queue(connection.execute(UNLABELLED_SQL.format(
                key_and_link=key_and_link_sql(connection))).fetchdf())
        else:
            queue = ordered_queue(connection.execute(PREDICTED_SQL.format(
                                      key_and_link=key_and_link_sql(connection))).fetchdf(),
                                  config.rule,
                                  recall_by_category(knn_classifier.evaluation.confusion),
                                  list(policy.withheld) if policy else ())
    queue = queue.sort_values("priority", kind="stable").reset_index(drop=True)
    return Output(queue_table(queue), metadata={
        "rule": config.rule,
        "model_version": knn_classifier.version,
        "first_in_queue": preview(queue.drop(columns=["link"], errors="ignore")),
    })
