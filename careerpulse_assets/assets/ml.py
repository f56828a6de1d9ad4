import pandas as pd
from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
)
from dagster_duckdb import DuckDBResource

from ..core.classifier import (
    DriftReference,
    Evaluation,
    Outcome,
    ServingClassifier,
    impute_categories,
)
from ..core.decisions import (
    Bars,
    PromotionDecision,
    TrainingDecision,
    promotion_decision,
    training_decision,
)
from ..core.evaluation import (
    MIN_POSTINGS_PER_CATEGORY,
    TEXT_KEY_SQL,
    LabelledSet,
    labelled_set,
)
from ..core.review import DEFAULT_RULE, JUDGED_SQL, recall_by_category
from ..core.review import RULES as REVIEW_RULES
from ..core.review import review_queue as ordered_queue
from ..core.sql import transaction_with
from ..core.selection import KnnGrid, NotEnoughLabels
from ..core.selective import ImputationPolicy, imputation_policy
from ..core.training import evaluation_of, params_from_mlflow, train
from ..tracking import (
    REGISTERED_MODEL_NAME,
    RegisteredVersion,
    champion,
    latest,
    load_evaluation,
    load_out_of_fold,
    log_training,
    model_facts,
    record_promotion,
    set_champion,
)
from .common import (
    Heartbeat,
    careerpulse_asset,
    png_markdown,
    preview,
    rounded,
    table_metadata,
)
from .silver import silver_postings

# What decides whether to train: the labelled postings' categories and text keys (no texts).
LABELLED_KEYS_SQL = f"""
SELECT posting_id, category, category_source, {TEXT_KEY_SQL} AS text_key
FROM silver.silver_postings WHERE category IS NOT NULL ORDER BY posting_id
"""
# What a training reads.
LABELLED_SQL = f"""
SELECT posting_id, title, description_text, category, category_source, categories,
       publication_date, {TEXT_KEY_SQL} AS text_key
FROM silver.silver_postings WHERE category IS NOT NULL ORDER BY posting_id
"""
# Only postings without a category need their text (to be classified). The texts stay in
# silver: the imputed table is the lean one users count and join.
POSTINGS_SQL = """
SELECT posting_id, bronze_row_id, title,
       CASE WHEN category IS NULL THEN description_text END AS description_text,
       category, category_raw, category_source, categories, level, locations, company,
       publication_date, publication_day
FROM silver.silver_postings ORDER BY posting_id
"""
EARLIER_PREDICTIONS_SQL = """
SELECT posting_id, bronze_row_id, predicted_category, imputation_confidence, runner_up_category,
       runner_up_share
FROM silver.imputed_silver
WHERE model_version = $model_version AND predicted_category IS NOT NULL
"""
# The checks whose run config holds the bars (`min_accuracy`, `min_macro_f1`): the classifier
# chooses its imputation threshold for the bars they will judge it by.
BAR_OPS = {"accuracy": ("knn_classifier_knn_holdout_accuracy", "min_accuracy"),
           "macro_f1": ("knn_classifier_knn_holdout_macro_f1", "min_macro_f1")}
# A model is reused while fewer than this share of the labelled postings it learned from are
# new, changed or gone: a page of 20 new postings every few minutes should not cost a training
# (minutes at 100,000 postings). The daily_retraining schedule retrains regardless.
RETRAIN_AT_LABELLED_CHANGE = 0.05


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


def run_bars(run_config: dict, settings: Bars) -> Bars:
    """The bars of this run: the checks' `min_accuracy` / `min_macro_f1` where the run config
    sets them, else the settings (CAREERPULSE_MIN_ACCURACY / CAREERPULSE_MIN_MACRO_F1)."""
    ops = run_config.get("ops") or {}
    bars = {}
    for name, (op, key) in BAR_OPS.items():
        value = ((ops.get(op) or {}).get("config") or {}).get(key)
        bars[name] = getattr(settings, name) if value is None else float(value)
    return Bars(**bars)


@careerpulse_asset(
    layer="ml",
    group="ml",
    kinds={"scikitlearn", "mlflow"},
    deps=[silver_postings],
    io_manager_key="model_io_manager",
    # dagster-mlflow is a legacy resource, so resources are named here rather than as arguments.
    required_resource_keys={"mlflow", "duckdb", "model_store", "quality_bars"},
    description="TF-IDF + cosine KNN that learns the category from title and description; vote "
    "rule, class-prior correction, title weight, word pairs and k chosen by stratified 5-fold CV "
    "on macro-F1. Judged out-of-fold over every labelled posting (settings chosen inside each "
    "outer fold). Imputes what it knows: postings whose confidence reaches a threshold and whose "
    "category is served (a category with postings enough to judge is served only when its own "
    "F1 meets the macro-F1 bar), chosen for the largest coverage at which the imputations "
    "written meet the accuracy bar; estimated nested (each fold's threshold and categories "
    "chosen on the other folds); when that estimate misses a bar nothing is imputed. Registered in MLflow as "
    f"`{REGISTERED_MODEL_NAME}`: the alias `champion` is the version in service, `challenger` "
    "the newest trained. Retrains when reviewers' labels are new or changed, when 5 % or more "
    "of the champion's labelled postings changed, its settings or code changed, or when forced, "
    "never on the labels and code it was trained on; a challenger replaces the champion only "
    "when it is not worse on the same postings and folds.",
)
def knn_classifier(
    context: AssetExecutionContext, config: KnnClassifierConfig
) -> ServingClassifier:
    bars = run_bars(context.run_config, context.resources.quality_bars.bars())
    with context.resources.duckdb.get_connection() as connection:
        silver_labelled = connection.execute(LABELLED_KEYS_SQL).fetchdf()
        unlabelled_share = float(connection.execute(
            "SELECT avg(CASE WHEN category IS NULL THEN 1.0 ELSE 0.0 END) "
            "FROM silver.silver_postings"
        ).fetchone()[0] or 0.0)
    try:
        labelled = labelled_set(silver_labelled, config.min_postings_per_category)
    except NotEnoughLabels as exc:
        serving = _no_model(silver_labelled, bars, unlabelled_share, str(exc))
        context.log.warning(f"no classifier: {exc}")
        context.add_output_metadata(_classifier_metadata(serving, None))
        return serving
    grid = config.grid()
    settings = f"{grid!r}|min_postings={config.min_postings_per_category}"
    drift_version = drift_flagged_model(context.instance)
    in_service, newest = champion(), latest()
    champion_facts = in_service and model_facts(in_service, labelled, settings, drift_version)
    latest_facts = (
        champion_facts if newest is None or (in_service and newest.version == in_service.version)
        else model_facts(newest, labelled, settings, drift_version)
    )
    decision = training_decision(
        champion_facts, latest_facts, config.force_retrain, config.retrain_at_labelled_change
    )
    context.log.info(f"{'training' if decision.train else 'no training'}: {decision.reason}")
    serving = None
    if not decision.train:
        reused = in_service if in_service and decision.reuse.version == in_service.version else newest
        # A challenger that passed promotion but lost its handover is made champion this time.
        serving = _reuse(context, reused, decision,
                         in_service is None or reused.version != in_service.version, bars)
        if serving is None:
            decision = TrainingDecision(
                True, f"{reused.version} cannot be read back from MLflow: training a new one"
            )
    if serving is None:
        with context.resources.duckdb.get_connection() as connection:
            texts = connection.execute(LABELLED_SQL).fetchdf()
        labelled = labelled_set(texts, config.min_postings_per_category)
        serving = _train(context, grid, labelled, settings, decision, in_service,
                         unlabelled_share, bars)
    context.log.info(f"imputation: {serving.policy.reason}")
    context.add_output_metadata(
        _classifier_metadata(serving, context.resources.mlflow.run_url(serving.run_id))
    )
    return serving


def _no_model(
    silver_labelled: pd.DataFrame, bars: Bars, unlabelled_share: float, why: str
) -> ServingClassifier:
    """What is served when no classifier can be trained: nothing is imputed, and gold, the
    forecast and the queue are still written (every posting without a category Unclassified)."""
    counts = silver_labelled["category"].value_counts()
    reason = f"no classifier can be trained ({why}): nothing is imputed"
    return ServingClassifier(
        model=None, version=None, run_id=None,
        evaluation=Evaluation("no model", {}, 0, "not estimated: no model"),
        reference=DriftReference({str(k): int(v) for k, v in counts.items()}, unlabelled_share),
        outcome=Outcome(False, reason),
        policy=ImputationPolicy(None, bars, reason, None, {}, 0),
    )


def _reuse(
    context: AssetExecutionContext,
    registered: RegisteredVersion,
    decision: TrainingDecision,
    becomes_champion: bool,
    bars: Bars,
) -> ServingClassifier | None:
    loaded = load_evaluation(registered)
    if loaded is None:
        return None
    evaluation, reference, stored = loaded
    policy = _policy_for(registered, stored, bars)
    if policy is None:
        return None
    return ServingClassifier(
        model=context.resources.model_store.load(registered.version),
        version=registered.version,
        run_id=registered.run_id,
        evaluation=evaluation,
        reference=reference,
        outcome=Outcome(False, decision.reason, decision.reuse.labelled_changed),
        policy=policy,
        becomes_champion=becomes_champion,
    )


def _policy_for(
    registered: RegisteredVersion, stored: ImputationPolicy | None, bars: Bars
) -> ImputationPolicy | None:
    """A version's imputation policy for `bars`: the one chosen at its training, or chosen again
    from its out-of-fold predictions when the bars changed since; None when neither is readable."""
    if stored is not None and stored.bars == bars:
        return stored
    oof = load_out_of_fold(registered)
    return imputation_policy(oof, bars) if oof is not None else None


def _train(
    context: AssetExecutionContext,
    grid: KnnGrid,
    labelled: LabelledSet,
    settings: str,
    decision: TrainingDecision,
    in_service: RegisteredVersion | None,
    unlabelled_share: float,
    bars: Bars,
) -> ServingClassifier:
    champion_params = params_from_mlflow(in_service.params) if in_service else None
    context.log.info(
        f"training on {len(labelled.postings):,} labelled postings in "
        f"{labelled.labels.nunique()} categories ({labelled.reposts_removed} reposts removed)"
    )
    name = f"training: {decision.reason}"[:240]
    with context.resources.mlflow.training_run(name) as run, Heartbeat(
        context.log.info, "knn_classifier"
    ) as beat:
        training = train(labelled, grid, champion_params, progress=beat.phase)
        beat.phase("choosing the imputation threshold")
        policy = imputation_policy(training.challenger.oof, bars)
        beat.phase("logging the training to MLflow and registering the model")
        version, evaluation, reference = log_training(
            training, labelled, settings, decision.reason, unlabelled_share, policy
        )
        comparison = training.comparison
        if in_service is not None and comparison is None:
            promotion = PromotionDecision(
                True, f"champion {in_service.version}'s settings cannot be read from MLflow: "
                "the challenger replaces it"
            )
        else:
            promotion = promotion_decision(
                in_service.version if in_service else None,
                comparison.challenger if comparison else None,
                comparison.champion if comparison else None,
                comparison.intervals if comparison else None,
            )
        record_promotion(run.info.run_id, promotion.promote, promotion.reason)
    context.resources.model_store.save(version, training.model)
    context.log.info(f"{version}: {'promoted' if promotion.promote else 'not promoted'}: "
                     f"{promotion.reason}")
    outcome = Outcome(
        retrained=True, reason=decision.reason, challenger_version=version,
        promotion=promotion.reason, comparison=comparison.flat() if comparison else {},
    )
    if promotion.promote:
        return ServingClassifier(training.model, version, run.info.run_id, evaluation, reference,
                                 outcome, policy, becomes_champion=True)
    # The champion stays in service, judged on today's postings on the same folds; it imputes
    # as its own nested estimate allows (its settings scored on today's folds were chosen on
    # about these postings: no threshold is chosen on that).
    kept = load_evaluation(in_service)
    return ServingClassifier(
        model=context.resources.model_store.load(in_service.version),
        version=in_service.version,
        run_id=in_service.run_id,
        evaluation=evaluation_of(training.champion, champion_params.describe(), labelled),
        reference=kept[1] if kept else reference,
        outcome=outcome,
        policy=(kept and _policy_for(in_service, kept[2], bars))
        or imputation_policy(training.champion.oof, bars),
    )


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


GATE_CHECKS = ("knn_holdout_accuracy", "knn_holdout_macro_f1")


def gate_passed(instance, version: str) -> bool:
    """Whether the latest verdict of both blocking checks was a pass for this model version."""
    for check in GATE_CHECKS:
        evaluation = _latest_check_evaluation(instance, "knn_classifier", check)
        judged = evaluation.metadata.get("model_version") if evaluation is not None else None
        if evaluation is None or not evaluation.passed or judged is None or judged.value != version:
            return False
    return True


def _classifier_metadata(serving: ServingClassifier, run_url: str | None) -> dict:
    outcome, evaluation, policy = serving.outcome, serving.evaluation, serving.policy
    champion_after = (
        f"{serving.version} once the quality gate passes" if serving.becomes_champion
        else serving.version
    )
    metadata = {
        "model_version": serving.version,
        "champion": champion_after,
        "retrained": outcome.retrained,
        "reason": outcome.reason,
        "labelled_changes_since_training": outcome.labelled_changes,
        "chosen": evaluation.chosen,
        # What the checks judge: the imputations written above the threshold.
        "imputation": policy.reason,
        "imputation_threshold": policy.threshold,
        "bars": policy.bars.describe(),
        **{f"written_{name}": value for name, value in rounded(policy.written).items()},
        # The threshold and categories chosen on every out-of-fold prediction, and the nested
        # estimate of what they write (the same as written_* when in use).
        "candidate_threshold": policy.candidate,
        **{f"candidate_{name}": value for name, value in rounded(policy.estimate).items()},
        "judged_categories": policy.judged_categories,
        "served_categories": policy.served,
        "served_judged_f1": rounded(policy.served_f1),
        # The judged categories left out: their F1 at the threshold, and their best F1 (at
        # best_threshold). Labels teach the model them (`make review`).
        "categories_not_imputed": {name: rounded(f1s) for name, f1s in policy.left_out.items()},
        # The model's every out-of-fold prediction, the threshold aside.
        **{f"oof_{name}": value for name, value in rounded(evaluation.estimate).items()},
        "oof_postings": evaluation.postings,
        "oof_method": evaluation.method,
        "categories_too_rare_to_learn": evaluation.excluded_categories,
        "most_confused": evaluation.most_confused,
        "reliability": MetadataValue.table(
            records=[
                TableRecord(rounded(row))
                for row in evaluation.reliability
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
        "trained_on_postings": sum(serving.reference.training_counts.values()),
        "reviewer_labels_in_training": serving.reference.reviewer_labels,
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


@careerpulse_asset(
    layer="silver",
    group="ml",
    kinds={"duckdb", "pandas"},
    description="`silver.imputed_silver`: every silver posting with a category, never NULL: "
    "observed ones kept (`category_source` `api` or `label`); missing ones imputed by the "
    "champion classifier (`imputed`, `is_imputed`) when its confidence reaches the threshold "
    "chosen for the quality bars and its category is served, else `Unclassified` "
    "(`unclassified`). On every posting the "
    "model judged: its guess (`predicted_category`), `imputation_confidence` (share of neighbour "
    "votes), the runner-up and `model_version`. A new model that passed the quality gate is "
    "made champion here, before it imputes.",
)
def imputed_silver(
    context: AssetExecutionContext, knn_classifier: ServingClassifier, duckdb: DuckDBResource
) -> MaterializeResult:
    version, policy = knn_classifier.version, knn_classifier.policy
    if knn_classifier.becomes_champion:
        # Blocking checks stop this asset in a run whose gate failed; materialised on its own,
        # it asks the checks' latest verdicts.
        if not gate_passed(context.instance, version):
            raise Failure(
                f"{version} has not passed the quality gate: materialise knn_classifier with its "
                "checks first"
            )
        set_champion(version)
        context.log.info(f"{version} passed the quality gate: it is now the champion")
    with duckdb.get_connection() as connection:
        postings = connection.execute(POSTINGS_SQL).fetchdf()
        earlier = _earlier_imputations(connection, version) if version else None
    with Heartbeat(context.log.info, "imputed_silver") as beat:
        beat.phase(f"imputing with {version}" if version else "no model: nothing to impute")
        imputed, predicted = impute_categories(postings, knn_classifier.model, version,
                                               policy.threshold, policy.imputed_categories,
                                               earlier)
    # The texts stay in silver: the imputed table is the lean one users count and join.
    imputed = imputed.drop(columns=["description_text"])
    with duckdb.get_connection() as connection:
        with transaction_with(connection, imputed_rows=imputed):
            connection.execute("CREATE OR REPLACE TABLE silver.imputed_silver AS "
                               "SELECT * FROM imputed_rows ORDER BY posting_id")
        metadata = table_metadata(connection, "silver.imputed_silver")
    written = imputed["is_imputed"]
    without_category = int(imputed["category_source"].isin(["imputed", "unclassified"]).sum())
    unclassified = imputed[imputed["category_source"] == "unclassified"]
    below_threshold = unclassified["predicted_category"].isin(policy.imputed_categories)
    confidence = imputed.loc[written, "imputation_confidence"]
    return MaterializeResult(metadata={
        **metadata,
        "imputed_postings": int(written.sum()),
        "unclassified_postings": without_category - int(written.sum()),
        "coverage": round(int(written.sum()) / without_category, 3) if without_category else None,
        "imputation_threshold": policy.threshold,
        "served_categories": policy.imputed_categories,
        # Why the Unclassified are: a guess under the threshold, or in a category not imputed.
        "unclassified_below_threshold": int(below_threshold.sum()),
        "unclassified_not_served": {
            str(k): int(v) for k, v in
            unclassified.loc[~below_threshold, "predicted_category"].value_counts().items()},
        "predicted_in_this_run": predicted,
        "mean_imputation_confidence": round(float(confidence.mean()), 3) if len(confidence) else None,
        "model_version": version,
        "imputed_rows": preview(imputed[written].drop(columns=["categories", "locations"])),
    })


def _earlier_imputations(connection, model_version: str) -> pd.DataFrame | None:
    # Asked first: DuckDB would look a missing table up among this module's Python names.
    has_columns = connection.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'silver' "
        "AND table_name = 'imputed_silver' AND column_name IN ('bronze_row_id', 'predicted_category')"
    ).fetchone()[0]
    if has_columns < 2:  # no imputed table yet, or one written before it kept these
        return None
    return connection.execute(EARLIER_PREDICTIONS_SQL, {"model_version": model_version}).fetchdf()


class ReviewQueueConfig(Config):
    rule: str = DEFAULT_RULE
    """least_confident, smallest_margin, low_recall_margin or one_per_duplicate (core/review.py)."""


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
) -> MaterializeResult:
    if config.rule not in REVIEW_RULES:
        raise Failure(f"unknown review rule {config.rule!r}; the rules are {', '.join(REVIEW_RULES)}")
    with duckdb.get_connection() as connection:
        judged = connection.execute(JUDGED_SQL).fetchdf()
        policy = knn_classifier.policy
        queue = ordered_queue(judged, config.rule,
                              recall_by_category(knn_classifier.evaluation.confusion),
                              list(policy.left_out) if policy.imputes else ())
        with transaction_with(connection, review_rows=queue):
            connection.execute("CREATE SCHEMA IF NOT EXISTS silver")
            connection.execute("CREATE OR REPLACE TABLE silver.review_queue AS "
                               "SELECT * FROM review_rows ORDER BY priority")
        metadata = table_metadata(connection, "silver.review_queue")
    return MaterializeResult(metadata={
        **metadata,
        "rule": config.rule,
        "model_version": knn_classifier.version,
        "first_in_queue": preview(queue.drop(columns=["link"], errors="ignore")),
    })
