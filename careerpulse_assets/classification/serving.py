"""The trained category classifier as the rest of the graph sees it, and imputation with it:
every posting without a category gets calibrated, shift-corrected probabilities (what gold counts)
and, where the policy allows, a category written (what a user reading one posting sees)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.pipeline import Pipeline

from .calibration import CalibrationReport, calibration_report
from .decisions import CountFacts, GateVerdict
from .knn import NO_INFORMATION_DISTANCE, scores_in_slices
from .out_of_fold import OutOfFold
from ..series.quantification import (
    CountEstimate,
    CountModel,
    corrected_with,
    count_interval,
    count_model_from,
    estimate_counts,
)
from ..series.quantification import nested_calibrated
from ..ops.duckdb_file import declared_table
from .per_posting_policy import DEFAULT_MIN_PRECISION, ImputationPolicy, imputation_policy

# The category of a posting without one that the model in service may not impute: counted in
# gold like any category, so gold still sums to silver and every series stays gap-free.
UNCLASSIFIED = "Unclassified"


@dataclass(frozen=True)
class Evaluation:
    """How a model scored: what the quality gate, the summary and the UI read."""

    chosen: str  # its settings, in words
    # accuracy, macro_f1, weighted_f1, each with _ci_low / _ci_high (95 %)
    estimate: dict[str, float]
    postings: int  # labelled postings the estimate rests on
    method: str  # how it was estimated, in words
    excluded_categories: dict[str, int] = field(default_factory=dict)  # too rare to learn
    reliability: list[dict] = field(default_factory=list)  # accuracy by confidence bucket
    most_confused: list[dict] = field(default_factory=list)
    confusion: pd.DataFrame | None = None  # true × predicted
    confusion_png: bytes | None = None  # the same, drawn once
    judged: tuple[str, ...] = ()  # the categories macro-F1 averages over (20+ postings)


@dataclass(frozen=True)
class DriftReference:
    """What a model learned from: the category mix (the drift check's reference), the share of
    postings without a category then, and how many of its labels reviewers gave."""

    training_counts: dict[str, int] = field(default_factory=dict)
    unlabelled_share: float | None = None
    reviewer_labels: int = 0


# evaluation.json: what a stored model's Evaluation and DriftReference are read back from (the
# confusion matrix and its picture are artifacts of their own).
# (`reviewer_labels` came later: a summary without it counts none.)
SUMMARY_KEYS = ("chosen", "estimate", "postings", "method", "excluded_categories",
                "reliability", "most_confused", "training_counts", "unlabelled_share")


def summary_of(evaluation: Evaluation, reference: DriftReference) -> dict:
    return {
        "chosen": evaluation.chosen, "estimate": evaluation.estimate,
        "postings": evaluation.postings, "method": evaluation.method,
        "excluded_categories": evaluation.excluded_categories,
        "reliability": evaluation.reliability, "most_confused": evaluation.most_confused,
        "judged": list(evaluation.judged),
        "training_counts": reference.training_counts,
        "unlabelled_share": reference.unlabelled_share,
        "reviewer_labels": reference.reviewer_labels,
    }


def from_summary(
    summary: dict, confusion: pd.DataFrame, confusion_png: bytes
) -> tuple[Evaluation, DriftReference]:
    """summary_of's inverse; KeyError when a key is missing (written by older code)."""
    evaluation = Evaluation(
        chosen=summary["chosen"], estimate=summary["estimate"], postings=summary["postings"],
        method=summary["method"], excluded_categories=summary["excluded_categories"],
        reliability=summary["reliability"], most_confused=summary["most_confused"],
        confusion=confusion, confusion_png=confusion_png,
        judged=tuple(summary.get("judged", ())),
    )
    reference = DriftReference(summary["training_counts"], summary["unlabelled_share"],
                               summary.get("reviewer_labels", 0))
    return evaluation, reference


@dataclass(frozen=True)
class Outcome:
    """What this run decided about the classifier, and why."""

    retrained: bool
    reason: str
    labelled_changes: int = 0  # since the model in service was trained
    challenger_version: str | None = None  # trained in this run
    promotion: str | None = None  # why the challenger was or was not promoted
    comparison: dict[str, float] = field(default_factory=dict)  # champion vs challenger figures


@dataclass(frozen=True)
class ModelCalibration:
    """What a model counts and writes with, derived from its out-of-fold predictions: the
    `counting` model (calibration, shift test, count errors), the per-posting `policy`, and the
    `report` of how calibrated its probabilities are."""

    counting: CountModel
    policy: ImputationPolicy
    report: CalibrationReport


def calibrate_model(oof: OutOfFold, min_precision: float = DEFAULT_MIN_PRECISION,
                    count_errors: dict | None = None,
                    policy: ImputationPolicy | None = None) -> ModelCalibration:
    """`count_errors`: the model's simulated count errors as its training kept them
    (quantification.count_model_from), else simulated here; `policy`: the per-posting policy its
    training chose, used when chosen for `min_precision` (the same out-of-fold predictions
    give the same policy), else chosen here. ValueError when the out-of-fold predictions lack
    class scores or hold fewer than 2 learned categories."""
    if oof.scores is None:
        raise ValueError("out-of-fold predictions without class scores (saved before issue 26)")
    nested = nested_calibrated(oof)
    if policy is None or policy.min_precision != min_precision:
        policy = imputation_policy(nested, oof.truth, oof.fold, oof.classes, min_precision)
    repeats = oof.scores.shape[0]
    report = calibration_report(oof.scores.reshape(-1, len(oof.classes)),
                                nested.reshape(-1, len(oof.classes)),
                                np.tile(np.asarray(oof.truth).astype(str), repeats),
                                np.asarray(oof.classes).astype(str))
    return ModelCalibration(count_model_from(oof, nested, count_errors), policy, report)


@dataclass(frozen=True)
class ServingClassifier:
    """What `knn_classifier` hands downstream: the model in service after this run (None when
    none could be trained), its calibration and imputation policy, and the quality gate's
    verdict on it."""

    model: Pipeline | None
    version: str | None  # models:/careerpulse-knn-category/N
    run_id: str | None  # its MLflow run
    evaluation: Evaluation
    reference: DriftReference
    outcome: Outcome
    calibration: ModelCalibration | None
    gate: GateVerdict | None

    @property
    def policy(self) -> ImputationPolicy | None:
        return self.calibration.policy if self.calibration else None


# What the model says of a posting without a category, written or not (the raw class scores
# are what a later run reuses instead of predicting again).
PREDICTION_COLUMNS = ["predicted_category", "imputation_confidence", "runner_up_category",
                      "runner_up_share", "category_probabilities", "model_scores",
                      "nearest_similarity"]


# A {category: score} column, as imputed_silver stores it.
SCORES_MAP = pa.map_(pa.string(), pa.float64())


def _scores_matrix(maps: pd.Series, classes: np.ndarray) -> np.ndarray:
    """A column of {category: score} maps (dicts, (category, score) pairs or an Arrow-backed
    map column; None for none) as postings × `classes` (a category not in `classes`: left
    out). Vectorised through Arrow: a Python loop over 280,000 maps took seconds (issue 29)."""
    array = pa.array(maps, type=SCORES_MAP, from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    out = np.zeros((len(array), len(classes)))
    # As a list of (key, value) structs: Arrow's list kernels have no map kernels.
    pairs = array.cast(pa.list_(pa.struct([pa.field("key", pa.string(), nullable=False),
                                           pa.field("value", pa.float64())])))
    lengths = pairs.value_lengths().fill_null(0).to_numpy()
    entries = pairs.flatten()  # the entries of the non-null maps, in row order
    rows = np.repeat(np.arange(len(array)), lengths)
    columns = pd.Index([str(c) for c in classes]).get_indexer(
        entries.field(0).to_numpy(zero_copy_only=False))
    known = columns >= 0
    out[rows[known], columns[known]] = entries.field(1).to_numpy(zero_copy_only=False)[known]
    return out


def _map_column(matrix: np.ndarray, classes: np.ndarray, rows: np.ndarray, length: int,
                nonzero_only: bool) -> pd.Series:
    """Row i of `matrix` as the map {class: value} (its nonzero values only, or all) at
    position rows[i] of a column of `length` (rows ascending), null elsewhere: an Arrow-backed
    column built from the arrays, not from a Python dict per posting (seconds at 280,000:
    issue 29)."""
    counts = np.zeros(length, dtype=np.int64)
    if nonzero_only:
        kept = matrix != 0
        counts[rows] = kept.sum(axis=1)
        at, column = np.nonzero(kept)  # row by row, each row's classes in order
        values = matrix[at, column]
    else:  # every value: the matrix row by row as it lies in memory
        counts[rows] = matrix.shape[1]
        column = np.tile(np.arange(matrix.shape[1]), len(matrix))
        values = np.ascontiguousarray(matrix).ravel()
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    names = pa.array([str(c) for c in classes], pa.string())
    is_null = np.ones(length, dtype=bool)
    is_null[rows] = False
    array = pa.MapArray.from_arrays(pa.array(offsets), names.take(pa.array(column, pa.int32())),
                                    pa.array(values, pa.float64()), mask=pa.array(is_null))
    return pd.Series(pd.arrays.ArrowExtensionArray(array))


@dataclass(frozen=True)
class Imputation:
    """`frame`: the silver postings asked for with their category (see `impute_categories`); `predicted`:
    how many postings the model scored in this call (the rest were observed or reused);
    `counts`: the count estimate of the postings without a category (None without a model)."""

    frame: pd.DataFrame
    predicted: int
    counts: CountEstimate | None


def impute_categories(
    silver: pd.DataFrame,
    model: Pipeline | None,
    model_version: str | None,
    calibration: ModelCalibration | None,
    earlier: pd.DataFrame | None = None,
    texts: Callable[[pd.Series], pd.DataFrame] | None = None,
    kept: KeptCount | None = None,
) -> Imputation:
    """Every silver posting, with a category: observed ones kept (`category_source` `api` or
    `label`); each missing one gets `category_probabilities` (calibrated, corrected for the
    estimated prior of the postings without a category: `quantification.estimate_counts`, summed
    by gold) and its most probable category written (`imputed`, `is_imputed`) where the policy's
    rule allows, else `Unclassified` (`unclassified`; every one without a model).

    On every posting the model judged: `predicted_category` (its most probable category),
    `imputation_confidence` (that probability), `runner_up_category` / `runner_up_share` (the
    next one's), `model_scores` (the KNN's own class scores, nonzero ones), `nearest_similarity`
    (cosine similarity to the most alike labelled posting; under 0.1 its neighbours tell nothing
    and no category is written on it) and `model_version`; NULL on observed rows. `earlier` holds
    what this same model version said before (posting_id, bronze_row_id, model_scores,
    nearest_similarity): a posting whose silver row is unchanged is not predicted again.
    `texts(posting_ids)`: the title and description_text of those postings in that order, read
    a slice at a time for the postings predicted (`knn.scores_in_slices`); without it they are
    `silver`'s own columns. `kept`: the count an earlier call made with this model version, whose
    method and correction `silver`'s postings (then a few new or changed ones) are corrected
    with instead of being estimated on them (`quantification.corrected_with`;
    decisions.recount_decision says when).
    """
    imputed = silver.reset_index(drop=True)
    missing = imputed["category"].isna().to_numpy()
    imputed["is_imputed"] = False
    for column in PREDICTION_COLUMNS:
        imputed[column] = None
    imputed["imputation_confidence"] = np.nan
    imputed["runner_up_share"] = np.nan
    imputed["nearest_similarity"] = np.nan
    imputed["model_version"] = None
    if model is None or calibration is None or not missing.any():
        imputed.loc[missing, "category"] = UNCLASSIFIED
        imputed.loc[missing, "category_source"] = "unclassified"
        return Imputation(imputed, 0, None)
    classes = np.asarray(model.classes_)
    rows = np.flatnonzero(missing)
    scores = np.zeros((len(rows), len(classes)))
    nearest = np.zeros(len(rows))
    to_predict = np.ones(len(rows), dtype=bool)
    if earlier is not None and len(earlier) and "nearest_similarity" in earlier:
        keys = ["posting_id", "bronze_row_id"]
        known = (imputed.loc[rows, keys].reset_index(names="_row")
                 .merge(earlier[keys + ["model_scores", "nearest_similarity"]], on=keys,
                        how="inner"))
        where = np.searchsorted(rows, known["_row"].to_numpy())
        scores[where] = _scores_matrix(known["model_scores"], classes)
        nearest[where] = known["nearest_similarity"].to_numpy(dtype=float)
        to_predict[where] = False
    if to_predict.any():
        scores[to_predict], distance = scores_in_slices(model, imputed.loc[rows[to_predict]],
                                                         texts)
        nearest[to_predict] = 1 - distance
    # A posting no labelled posting resembles learns nothing from its neighbours: it is counted
    # at the classes' shares among the labelled postings, and no category is written on it.
    informed = nearest >= 1 - NO_INFORMATION_DISTANCE
    scores[~informed] = model[-1].class_priors_
    counts = (estimate_counts(calibration.counting, scores) if kept is None else
              corrected_with(calibration.counting, scores, kept.method,
                             kept.weights_for(calibration.counting.classes)))
    probabilities, classes = counts.probabilities, counts.classes
    order = np.argsort(-probabilities, axis=1, kind="stable")
    at = np.arange(len(rows))
    predicted = classes[order[:, 0]].astype(object)
    confidence = probabilities[at, order[:, 0]]
    imputed["predicted_category"] = imputed["predicted_category"].astype(object)
    imputed.loc[rows, "predicted_category"] = predicted
    imputed.loc[rows, "imputation_confidence"] = confidence
    if len(classes) > 1:
        imputed.loc[rows, "runner_up_category"] = classes[order[:, 1]].astype(object)
        imputed.loc[rows, "runner_up_share"] = probabilities[at, order[:, 1]]
    imputed["category_probabilities"] = _map_column(probabilities, classes, rows, len(imputed),
                                                    nonzero_only=False).set_axis(imputed.index)
    imputed["model_scores"] = _map_column(scores, classes, rows, len(imputed),
                                          nonzero_only=True).set_axis(imputed.index)
    imputed.loc[rows, "nearest_similarity"] = nearest
    imputed.loc[rows, "model_version"] = model_version
    written = calibration.policy.rule.writes(predicted, confidence) & informed
    imputed.loc[rows[written], "category"] = predicted[written]
    imputed.loc[rows[written], "category_source"] = "imputed"
    imputed.loc[rows[written], "is_imputed"] = True
    imputed.loc[rows[~written], "category"] = UNCLASSIFIED
    imputed.loc[rows[~written], "category_source"] = "unclassified"
    return Imputation(imputed, int(to_predict.sum()), counts)


# silver.unlabelled_mix: per category the estimated postings, their 90 % interval, the per-posting
# variance Σ q(1 − q) and systematic share error σ_c behind it, the correction's weight (NULL for
# a category too rare to learn); the method and its expected error; and what the count was made
# with, for the next run's recount_decision.
MIX_ARROW_TYPES = {"category": pa.string(), "estimated_postings": pa.float64(),
                   "estimated_low": pa.float64(), "estimated_high": pa.float64(),
                   "share_error": pa.float64(), "method": pa.string(),
                   "expected_share_error": pa.float64(), "model_version": pa.string(),
                   "variance": pa.float64(), "prior_weight": pa.float64(),
                   "min_precision": pa.float64(), "estimated_on": pa.int64(),
                   "changed_since": pa.int64(), "count_key": pa.string()}
# What the summary and the asset's page show of it.
MIX_SHOWN = ["category", "estimated_postings", "estimated_low", "estimated_high", "share_error",
             "method", "expected_share_error"]


@dataclass(frozen=True)
class KeptCount:
    """The count silver.unlabelled_mix keeps: per counted category (`classes`) its `counts`,
    `variance` and `share_error`, the correction's `weights` ({learned category: weight}), the
    `method` and its `expected_l1`, and the `facts` recount_decision weighs."""

    classes: np.ndarray
    counts: np.ndarray
    variance: np.ndarray
    share_error: np.ndarray
    weights: dict[str, float]
    method: str
    expected_l1: float
    facts: CountFacts

    def weights_for(self, classes: np.ndarray) -> np.ndarray:
        """The correction's weights in the order of `classes` (the learned categories). KeyError
        for a category the kept count has no weight for."""
        return np.array([self.weights[str(c)] for c in classes], dtype=float)


def kept_count(mix: pd.DataFrame | None, classes: np.ndarray | None) -> KeptCount | None:
    """silver.unlabelled_mix (MIX_ARROW_TYPES' columns) as a KeptCount whose correction has a
    weight for each of `classes` (the learned categories of the model in service); None when
    there is none, no model counted (no method), or its weights are for other categories."""
    if mix is None or classes is None or not len(mix) or mix["method"].isna().all():
        return None
    first = mix.iloc[0]
    learned = mix[mix["prior_weight"].notna()]
    if sorted(learned["category"].astype(str)) != sorted(str(c) for c in classes):
        return None
    return KeptCount(
        classes=mix["category"].astype(str).to_numpy(),
        counts=mix["estimated_postings"].to_numpy(dtype=float),
        variance=mix["variance"].to_numpy(dtype=float),
        share_error=mix["share_error"].to_numpy(dtype=float),
        weights=dict(zip(learned["category"].astype(str), learned["prior_weight"].astype(float))),
        method=str(first["method"]), expected_l1=float(first["expected_share_error"]),
        facts=CountFacts(first["model_version"], float(first["min_precision"]),
                         int(first["estimated_on"]), int(first["changed_since"]),
                         str(first["count_key"])))


def unlabelled_mix(counts: CountEstimate | None, model_version: str | None,
                   min_precision: float | None = None, estimated_on: int = 0,
                   changed_since: int = 0, count_key: str = "") -> pa.Table:
    """The postings without a category counted by category (one row per category the model
    knows; none without a model), as silver.unlabelled_mix keeps them (MIX_ARROW_TYPES)."""
    if counts is None:
        return declared_table(pd.DataFrame({name: [] for name in MIX_ARROW_TYPES}),
                              MIX_ARROW_TYPES)
    learned = len(counts.weights)
    return declared_table(pd.DataFrame({
        "category": [str(c) for c in counts.classes],
        "estimated_postings": counts.counts, "estimated_low": counts.low,
        "estimated_high": counts.high, "share_error": counts.share_error,
        "method": counts.method, "expected_share_error": counts.expected_l1,
        "model_version": model_version, "variance": counts.variance,
        "prior_weight": [float(w) for w in counts.weights]
        + [None] * (len(counts.classes) - learned),
        "min_precision": min_precision, "estimated_on": estimated_on,
        "changed_since": changed_since, "count_key": count_key,
    }), MIX_ARROW_TYPES)


def updated_mix(kept: KeptCount, replaced: pd.DataFrame, added: CountEstimate | None,
                postings: int, changed_since: int) -> pa.Table:
    """The kept count after some postings were replaced: minus what the `replaced` ones added
    (category, counts, variance: imputed_store.replaced_sums), plus the `added` ones (their
    CountEstimate, corrected with the kept correction); the 90 % intervals again for the
    `postings` without a category there are now (quantification.count_interval). Rows in the
    kept count's category order; a category neither knows is left out."""
    index = pd.Index(kept.classes)

    def aligned(frame_classes, values) -> np.ndarray:
        return pd.Series(np.asarray(values, dtype=float),
                         index=pd.Index(np.asarray(frame_classes).astype(str))
                         ).reindex(index).fillna(0.0).to_numpy()

    counts = kept.counts - aligned(replaced["category"], replaced["counts"])
    variance = kept.variance - aligned(replaced["category"], replaced["variance"])
    if added is not None:
        counts += aligned(added.classes, added.counts)
        variance += aligned(added.classes, added.variance)
    # Sums taken away and added again leave float residue (-1e-12): no count is below 0.
    counts, variance = np.clip(counts, 0.0, None), np.clip(variance, 0.0, None)
    low, high = count_interval(counts, variance, kept.share_error, postings)
    return declared_table(pd.DataFrame({
        "category": kept.classes, "estimated_postings": counts, "estimated_low": low,
        "estimated_high": high, "share_error": kept.share_error, "method": kept.method,
        "expected_share_error": kept.expected_l1, "model_version": kept.facts.model_version,
        "variance": variance,
        "prior_weight": [kept.weights.get(str(c)) for c in kept.classes],
        "min_precision": kept.facts.min_precision, "estimated_on": kept.facts.estimated_on,
        "changed_since": changed_since, "count_key": kept.facts.fingerprint,
    }), MIX_ARROW_TYPES)


def counting_fingerprint(calibration: ModelCalibration | None) -> str:
    """What a kept count rests on besides the model version, as a digest: the calibration's
    reference probabilities and class prior, the categories too rare to learn, the per-posting
    rule, and the columns of imputed_silver and unlabelled_mix (code that changes them makes
    every posting imputed again). Empty without a calibration."""
    if calibration is None:
        return ""
    counting, rule = calibration.counting, calibration.policy.rule
    digest = hashlib.sha256()
    for array in (counting.reference, counting.train_prior, counting.rare_shares):
        digest.update(np.ascontiguousarray(array, dtype=float).tobytes())
    # Plain str and float: a policy chosen in a run holds NumPy's, the same policy read back from
    # evaluation.json Python's, and their reprs differ (np.str_('Sales') against 'Sales').
    threshold = None if rule.threshold is None else float(rule.threshold)
    withheld = sorted((str(name), float(share)) for name, share in rule.withheld.items())
    digest.update(repr((list(map(str, counting.classes)), list(map(str, counting.rare_classes)),
                        threshold, withheld,
                        list(map(str, IMPUTED_ARROW_TYPES.items())),
                        list(map(str, MIX_ARROW_TYPES.items())))).encode())
    return digest.hexdigest()[:16]


# `silver.imputed_silver`'s columns, as imputed_silver hands them to DuckDB (declared_table).
IMPUTED_ARROW_TYPES = {
    "posting_id": pa.int64(), "bronze_row_id": pa.int64(), "title": pa.string(),
    "category": pa.string(), "category_raw": pa.string(), "category_source": pa.string(),
    "categories": pa.list_(pa.string()), "level": pa.string(),
    "locations": pa.list_(pa.string()), "company": pa.string(),
    "publication_date": pa.timestamp("us", tz="UTC"), "publication_day": pa.date32(),
    "is_imputed": pa.bool_(), "predicted_category": pa.string(),
    "imputation_confidence": pa.float64(), "runner_up_category": pa.string(),
    "runner_up_share": pa.float64(),
    "category_probabilities": pa.map_(pa.string(), pa.float64()),
    "model_scores": pa.map_(pa.string(), pa.float64()), "nearest_similarity": pa.float64(),
    "model_version": pa.string(),
}


def imputed_arrow(imputed: pd.DataFrame) -> pa.Table:
    """`imputed` (impute_categories' frame without `description_text`) as an Arrow table of
    IMPUTED_ARROW_TYPES: DuckDB would guess a pandas column's type from a sample of rows (a
    sample of empty lists makes a column of NULLs: issue 29)."""
    return declared_table(imputed, IMPUTED_ARROW_TYPES)
