"""Asset checks: model quality (blocking), and data quality of silver and gold."""

from datetime import timezone
import math

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetIn,
    Config,
    MetadataValue,
    asset_check,
)
from dagster_duckdb import DuckDBResource
import pandas as pd

from .assets.common import DUCKDB_POOL, rounded
from .ops.duckdb_file import one_row
from .assets.gold import gold_category_forecast, gold_daily_counts
from .series.forecast import BASELINE, BUSY_POSTED_SHARE
from .assets.ml import imputed_silver, knn_classifier
from .classification.imputed_store import WRITTEN_THEN_LABELLED_SQL
from .assets.silver import silver_postings
from .classification.serving import UNCLASSIFIED, ServingClassifier
from .series.drift import (
    DEFAULT_ALPHA,
    DEFAULT_MAX_IMPUTED_SHARE_JUMP,
    DEFAULT_MIN_JS_DISTANCE,
    DEFAULT_MIN_POSTINGS,
    DEFAULT_WINDOW_DAYS,
)
from .series.drift import category_drift as drift_statistics
from .ingestion.clock import CLOCK_TOLERANCE, describe_offset, reference_now, stored_offset
from .ingestion.postings import shorten
from .classification.per_posting_policy import MIN_REALISED_POSTINGS, realised_precision
from .review.taxonomy import load_taxonomy
from .resources import QualityBars


class MinAccuracyConfig(Config):
    min_accuracy: float | None = None
    """Accuracy at full coverage the model must reach; unset: CAREERPULSE_MIN_ACCURACY (0.75)."""


class MinMacroF1Config(Config):
    min_macro_f1: float | None = None
    """Macro-F1 at full coverage the model must reach; unset: CAREERPULSE_MIN_MACRO_F1 (0.70)."""


NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "coverage": "coverage",
         "precision": "precision"}


def _figure(values: dict, name: str) -> str:
    value, low, high = values[name], values[f"{name}_ci_low"], values[f"{name}_ci_high"]
    return f"{NAMES[name]} {value:.3f} (95 % interval {low:.3f}–{high:.3f})"


def gate_result(name: str, serving: ServingClassifier) -> AssetCheckResult:
    """`name` (accuracy or macro_f1) of the model in service at full coverage (every posting its
    most probable category), estimated nested out-of-fold, as the quality gate judged it in
    `knn_classifier` (`serving.gate`: the verdict and its bars, decided there once). No model,
    or a figure that cannot be estimated, fails: nothing shows a model good enough."""
    evaluation, gate = serving.evaluation, serving.gate
    bar = getattr(gate.bars, name) if gate is not None and gate.bars is not None else None
    metadata = {"threshold": bar, "model_version": serving.version,
                "estimated_on_postings": evaluation.postings,
                "judged_categories": list(evaluation.judged)}
    if serving.model is None:
        return AssetCheckResult(
            passed=False, severity=AssetCheckSeverity.ERROR,
            description=f"no model to judge: {serving.outcome.reason}; gold counts every posting "
            "without a category as Unclassified until one is trained",
            metadata=metadata | {"evaluated": False})
    value = evaluation.estimate.get(name, float("nan"))
    if math.isnan(value):
        return AssetCheckResult(
            passed=False, severity=AssetCheckSeverity.ERROR,
            description=f"{NAMES[name]} not estimated: no category has postings enough (20) among "
            f"the {evaluation.postings} labelled postings to estimate its F1; label more "
            "(`make review`)", metadata=metadata | {"evaluated": False})
    passed = getattr(gate, f"{name}_passed")
    over = (f" over the {len(evaluation.judged)} categories with 20+ labelled postings"
            if name == "macro_f1" else "")
    consequence = "" if passed else (
        ": the model still serves as the best available (counts with their stated error, a "
        "category written per posting only where its precision bar holds) unless a model that "
        "passes is in service; label postings (`make review`) to teach it")
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=(f"{_figure(evaluation.estimate, name)}{over} at full coverage (every posting "
                     f"its most probable category), nested out-of-fold over "
                     f"{evaluation.postings:,} labelled postings, {'>=' if passed else '<'} "
                     f"{bar:.2f}; model {serving.version}{consequence}"),
        metadata=metadata | {name: round(value, 3),
                             f"{name}_95ci": f"{evaluation.estimate[f'{name}_ci_low']:.3f}–"
                                             f"{evaluation.estimate[f'{name}_ci_high']:.3f}"},
    )


GATE_DESCRIPTION = (
    "Judges the model in service at full coverage: every labelled posting predicted by a model "
    "that never saw it (repeated stratified 5-fold out-of-fold, its settings chosen inside each "
    "outer fold: nested), each given its most probable category, with a 95 % bootstrap interval. "
    "(The name says hold-out for history: the estimate is out-of-fold, on five times the "
    "postings a hold-out would use.) A model trained on shuffled labels fails it. Not blocking: "
    "gold, the forecast and the review queue are written whatever it says; a challenger that "
    "fails never replaces a champion that passes, and while no model passes the best available "
    "serves and this check stays red. The bar is this check's in the run config, else the "
    "setting: knn_classifier reads it (QualityBars.for_run) and judges its model once against "
    "it, for its promotion decision; this check reports that verdict."
)


def _gate_check(name: str, metric: str, config_type: type, description: str):
    """One check of the model's full-coverage `metric` against its bar."""

    @asset_check(name=name, asset=knn_classifier, blocking=False,
                 description=description + " " + GATE_DESCRIPTION)
    def gate(config: config_type, knn_classifier: ServingClassifier) -> AssetCheckResult:
        # `config` holds this run's bar; knn_classifier read it (QualityBars.for_run) and
        # judged its model against it: the verdict is reported, not made again.
        return gate_result(metric, knn_classifier)

    return gate


knn_holdout_accuracy = _gate_check(
    "knn_holdout_accuracy", "accuracy", MinAccuracyConfig,
    "Accuracy of the classifier at full coverage is at least `min_accuracy` (default "
    "CAREERPULSE_MIN_ACCURACY, 0.75); a posting of a category too rare to learn counts as an "
    "error.",
)
knn_holdout_macro_f1 = _gate_check(
    "knn_holdout_macro_f1", "macro_f1", MinMacroF1Config,
    "Macro-F1 of the classifier at full coverage is at least `min_macro_f1` (default "
    "CAREERPULSE_MIN_MACRO_F1, 0.70): the mean F1 of every category with 20 or more labelled "
    "postings in the estimate (an F1 on fewer is noise).",
)


class MinCoverageConfig(Config):
    min_coverage: float | None = None
    """Share of postings without a category that must get one; unset: CAREERPULSE_MIN_COVERAGE."""


COVERAGE_SQL = """
SELECT count(*) FILTER (WHERE category_source IN ('imputed', 'unclassified')) AS without_category,
       count(*) FILTER (WHERE is_imputed) AS imputed
FROM silver.imputed_silver
"""


@asset_check(
    asset=imputed_silver,
    additional_ins={"knn_classifier": AssetIn()},
    pool=DUCKDB_POOL,
    description="The share of postings without a category that get one written (coverage) is "
    "at least `min_coverage` (default CAREERPULSE_MIN_COVERAGE, 0.80). The rest are "
    "`Unclassified` per posting: the model is not sure enough of them for the precision bar "
    "(CAREERPULSE_MIN_PRECISION). WARN: gold counts them anyway (by their probabilities); label "
    "postings (`make review`, Unclassified ones first) to teach the model what it does not know.",
)
def imputation_coverage(
    config: MinCoverageConfig, knn_classifier: ServingClassifier, duckdb: DuckDBResource,
    quality_bars: QualityBars,
) -> AssetCheckResult:
    bar = quality_bars.min_coverage if config.min_coverage is None else config.min_coverage
    with duckdb.get_connection() as connection:
        without_category, imputed = connection.execute(COVERAGE_SQL).fetchone()
    policy = knn_classifier.policy
    metadata = {"postings_without_category": without_category, "imputed": imputed,
                "unclassified": without_category - imputed, "threshold": bar,
                "estimated_coverage_on_labelled": (round(policy.estimate["coverage"], 3)
                                                   if policy else None),
                "categories_withheld": list(policy.withheld) if policy else [],
                "imputation_threshold": policy.threshold if policy else None,
                "model_version": knn_classifier.version}
    if not without_category:
        return AssetCheckResult(passed=True, severity=AssetCheckSeverity.WARN,
                                description="every posting has a category: nothing to impute",
                                metadata=metadata)
    coverage = imputed / without_category
    passed = coverage >= bar
    why = policy.reason if policy else knn_classifier.outcome.reason
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"coverage {coverage:.1%} ({imputed} of {without_category} postings without a "
            f"category written, {without_category - imputed} Unclassified) "
            f"{'>=' if passed else '<'} {bar:.0%}"
            + ("" if passed else f": {why}; gold still counts every posting; label postings "
               "(`make review`, the Unclassified first)")
        ),
        metadata=metadata | {"coverage": round(coverage, 3)},
    )


@asset_check(
    asset=imputed_silver,
    pool=DUCKDB_POOL,
    description="How often a category written per posting was right, by the reviewers' labels "
    "of postings it was written on (silver.written_categories against their labels): with 20 or "
    "more such postings, fails (WARN) when the whole 95 % interval of that share is under "
    "CAREERPULSE_MIN_PRECISION (0.90). Reviewers label the least sure postings first, so the "
    "share is pessimistic; under 20 it reports and says 'not evaluated'.",
)
def written_precision_on_labels(duckdb: DuckDBResource, quality_bars: QualityBars
                                ) -> AssetCheckResult:
    with duckdb.get_connection() as connection:
        exists = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'silver' "
            "AND table_name = 'written_categories'").fetchone()[0]
        pairs = (connection.execute(WRITTEN_THEN_LABELLED_SQL).fetchdf() if exists
                 else pd.DataFrame({"written": [], "labelled": []}))
    realised = realised_precision(pairs["written"].to_numpy(), pairs["labelled"].to_numpy())
    bar = quality_bars.min_precision
    metadata = {"evaluated": realised.judged, "postings": realised.postings,
                "right": realised.right, "threshold": bar}
    if realised.postings:
        metadata |= {"precision": round(realised.precision, 3),
                     "precision_95ci": f"{realised.low:.3f}–{realised.high:.3f}"}
    if not realised.judged:
        return AssetCheckResult(
            passed=False, severity=AssetCheckSeverity.WARN, metadata=metadata,
            description=f"not evaluated: {realised.describe()}; judged from "
            f"{MIN_REALISED_POSTINGS}")
    failed = realised.clearly_below(bar)
    return AssetCheckResult(
        passed=not failed, severity=AssetCheckSeverity.WARN, metadata=metadata,
        description=realised.describe() + (
            f": clearly under {bar:.2f}; the out-of-fold estimate does not hold on these "
            "postings (a shifted mix?): the counts in gold do not depend on it" if failed
            else f"; not clearly under {bar:.2f}"))


@asset_check(
    asset=silver_postings, pool=DUCKDB_POOL, description="Every posting_id appears once in silver."
)
def silver_posting_id_unique(duckdb: DuckDBResource) -> AssetCheckResult:
    with duckdb.get_connection() as connection:
        rows, duplicated = connection.execute(
            """
            SELECT (SELECT count(*) FROM silver.silver_postings),
                   (SELECT count(*) FROM (SELECT posting_id FROM silver.silver_postings
                                          GROUP BY posting_id HAVING count(*) > 1))
            """
        ).fetchone()
    return AssetCheckResult(
        passed=duplicated == 0,
        metadata={"rows": rows, "duplicated_posting_ids": duplicated},
    )


@asset_check(
    asset=silver_postings,
    pool=DUCKDB_POOL,
    description="Every category name the postings list is a current Muse name or an old one "
    "mapped in careerpulse_assets/review/muse_categories.yaml, compared after normalising case, "
    "spaces and `&`/and (so 'Data & Analytics' is 'Data and Analytics'). Fails (WARN) naming the "
    "others, with the advice to map them: a new taxonomy may be arriving. Until mapped, each is "
    "counted (and learned) as a category of its own, its spellings as one.",
)
def category_names_known(duckdb: DuckDBResource) -> AssetCheckResult:
    taxonomy = load_taxonomy()
    with duckdb.get_connection() as connection:
        counts = dict(
            connection.execute(
                "SELECT name, count(*) FROM (SELECT unnest(categories) AS name "
                "FROM silver.silver_postings) GROUP BY name"
            ).fetchall()
        )
    # A name can be anything a server sent, 10 kB of it: shown shortened.
    unknown = {shorten(name, 60): count for name, count in taxonomy.unknown(counts).items()}
    return AssetCheckResult(
        passed=not unknown,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{len(unknown)} category names neither current nor mapped: {', '.join(unknown)}; "
            "map each to a current name (old_to_current) or add it to current in "
            "careerpulse_assets/review/muse_categories.yaml and bump its version"
            if unknown else f"all {len(counts)} category names known (taxonomy v{taxonomy.version})"
        ),
        metadata={
            "unknown_names": unknown,
            "taxonomy_version": taxonomy.version,
            "names_seen": len(counts),
        },
    )


# The newest $min_postings postings, or every posting of the last $days days up to the newest
# one when those are more: category counts, and the window's first and last publication time.
RECENT_WINDOW_SQL = """
WITH ranked AS (
    SELECT category, category_source, publication_date,
           row_number() OVER (ORDER BY publication_date DESC, posting_id DESC) AS newest_rank,
           max(publication_date) OVER () AS last_published
    FROM silver.imputed_silver
),
window_rows AS (
    SELECT * FROM ranked
    WHERE newest_rank <= $min_postings OR publication_date > last_published - to_days($days)
)
SELECT category, count(*) AS postings,
       count(*) FILTER (WHERE category_source IN ('imputed', 'unclassified')) AS without_category,
       min(min(publication_date)) OVER () AS first_day, max(max(publication_date)) OVER () AS last_day
FROM window_rows GROUP BY category
"""


class CategoryDriftConfig(Config):
    window_days: int = DEFAULT_WINDOW_DAYS
    min_postings: int = DEFAULT_MIN_POSTINGS
    alpha: float = DEFAULT_ALPHA
    min_js_distance: float = DEFAULT_MIN_JS_DISTANCE
    max_imputed_share_jump: float = DEFAULT_MAX_IMPUTED_SHARE_JUMP


@asset_check(
    asset=imputed_silver,
    additional_ins={"knn_classifier": AssetIn()},
    pool=DUCKDB_POOL,
    description="The category mix of the newest `min_postings` (500) postings, or of the last "
    "`window_days` (7) days when those are more, against the mix the model in service was "
    "trained on: chi-square p < alpha and Jensen–Shannon distance ≥ min_js_distance is drift. "
    "Also fails when the share of postings without a category jumps by more than "
    "max_imputed_share_jump. With fewer postings than `min_postings` in all it cannot judge: it "
    "says 'not evaluated' (metadata `evaluated: false`) and warns, rather than reading as a "
    "pass. WARN: the model keeps imputing, but its reference no longer describes the postings.",
)
def category_drift(
    config: CategoryDriftConfig, knn_classifier: ServingClassifier, duckdb: DuckDBResource
) -> AssetCheckResult:
    with duckdb.get_connection() as connection:
        window = connection.execute(
            RECENT_WINDOW_SQL, {"days": config.window_days, "min_postings": config.min_postings}
        ).fetchdf()
    # Unclassified postings have no category to compare: the mix is the others', and they count
    # in the share without a category. The window is judged when it holds min_postings postings.
    mix = window[window["category"] != UNCLASSIFIED]
    full_window = int(window["postings"].sum()) >= config.min_postings
    result = drift_statistics(
        knn_classifier.reference.training_counts,
        dict(zip(mix["category"], mix["postings"].astype(int), strict=True)),
        alpha=config.alpha,
        min_js_distance=config.min_js_distance,
        min_postings=1 if full_window else config.min_postings,
    )
    metadata = {
        "evaluated": result.enough_data,
        "window": (f"{result.window_postings} newest postings, {window['first_day'].iloc[0]} to "
                   f"{window['last_day'].iloc[0]}" if len(window) else "no postings"),
        "window_postings": result.window_postings,
        "model_version": knn_classifier.version,
    }
    imputed_jump = False
    if result.enough_data:
        recent_imputed = float(window["without_category"].sum() / window["postings"].sum())
        reference_imputed = knn_classifier.reference.unlabelled_share or 0.0
        imputed_jump = recent_imputed - reference_imputed > config.max_imputed_share_jump
        metadata |= rounded({
            "chi2": result.chi2,
            "p_value": result.p_value,
            "js_distance": result.js_distance,
            "imputed_share_reference": reference_imputed,
            "imputed_share_recent": recent_imputed,
        }, 4) | {
            "shares": MetadataValue.md(result.shares.to_markdown(index=False, floatfmt=".3f")),
        }
    description = result.summary() + (
        f"; postings without a category jumped to {metadata['imputed_share_recent']:.0%}"
        if imputed_jump else ""
    )
    return AssetCheckResult(
        # Not evaluated must not read as a pass: it warns, and says why.
        passed=result.enough_data and not (result.drifted or imputed_jump),
        severity=AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata,
    )


GOLD_GRID_SQL = """
WITH g AS (SELECT * FROM gold.gold_daily_counts),
source AS (
    SELECT count(*) AS postings, count(*) FILTER (WHERE is_imputed) AS imputed
    FROM silver.imputed_silver
)
SELECT
    (SELECT count(*) FROM g) AS rows,
    (SELECT count(DISTINCT day) FROM g) AS days,
    (SELECT date_diff('day', min(day), max(day)) + 1 FROM g) AS days_in_range,
    (SELECT count(DISTINCT category) FROM g) AS categories,
    (SELECT count(*) FROM (SELECT 1 FROM g GROUP BY day, category HAVING count(*) > 1))
        AS duplicated_cells,
    (SELECT count(*) FROM g WHERE postings IS NULL OR imputed_postings IS NULL
        OR postings < 0 OR imputed_postings < 0 OR imputed_postings > postings) AS bad_counts,
    (SELECT count(*) FROM g WHERE observed IS NULL OR complete IS NULL
        OR (complete AND NOT observed)) AS bad_flags,
    (SELECT count(*) FROM g WHERE estimated_postings IS NULL OR estimated_low IS NULL
        OR estimated_high IS NULL OR estimated_low > estimated_postings + 1e-9
        OR estimated_high < estimated_postings - 1e-9 OR estimated_low < -1e-9) AS bad_estimates,
    (SELECT count(*) FROM (SELECT g.day, sum(g.estimated_postings) AS estimated,
                                  max(d.postings) AS postings
                           FROM g LEFT JOIN (SELECT publication_day AS day, count(*) AS postings
                                             FROM silver.imputed_silver GROUP BY ALL) d
                           ON d.day = g.day GROUP BY g.day)
     WHERE abs(estimated - coalesce(postings, 0)) > 1e-6) AS days_estimates_off,
    (SELECT count(DISTINCT day) FROM g WHERE observed) AS days_observed,
    (SELECT count(DISTINCT day) FROM g WHERE complete) AS days_complete,
    (SELECT sum(postings) FROM g) AS gold_postings,
    (SELECT postings FROM source) AS silver_postings,
    (SELECT sum(imputed_postings) FROM g) AS gold_imputed,
    (SELECT imputed FROM source) AS silver_imputed
"""


@asset_check(
    asset=gold_daily_counts,
    additional_deps=["imputed_silver"],
    pool=DUCKDB_POOL,
    description="Gold is a full day × category grid with no gaps or duplicates, counts are "
    "non-negative, every day says whether it was observed and complete (never complete without "
    "being observed), the counts add up to every posting in imputed silver, and each day's "
    "`estimated_postings` add up to the day's postings, each inside its interval.",
)
def gold_full_grid_sums_to_silver(duckdb: DuckDBResource) -> AssetCheckResult:
    with duckdb.get_connection() as connection:
        stats = {name: int(value or 0) for name, value in one_row(connection, GOLD_GRID_SQL).items()}
    problems = []
    if stats["days"] != stats["days_in_range"]:
        problems.append(f"{stats['days_in_range'] - stats['days']} days missing from the range")
    if stats["rows"] != stats["days"] * stats["categories"]:
        problems.append(
            f"{stats['rows']} rows, expected {stats['days']} days × {stats['categories']} categories"
        )
    if stats["duplicated_cells"]:
        problems.append(f"{stats['duplicated_cells']} duplicated day × category cells")
    if stats["bad_counts"]:
        problems.append(f"{stats['bad_counts']} rows with NULL, negative or inconsistent counts")
    if stats["bad_flags"]:
        problems.append(f"{stats['bad_flags']} rows with NULL flags or complete but not observed")
    if stats["bad_estimates"]:
        problems.append(f"{stats['bad_estimates']} rows with an estimate NULL or outside its "
                        "interval")
    if stats["days_estimates_off"]:
        problems.append(f"on {stats['days_estimates_off']} days the estimated postings do not "
                        "add up to the day's postings in silver")
    if stats["gold_postings"] != stats["silver_postings"]:
        problems.append(
            f"gold counts {stats['gold_postings']} postings, silver has {stats['silver_postings']}"
        )
    if stats["gold_imputed"] != stats["silver_imputed"]:
        problems.append(
            f"gold counts {stats['gold_imputed']} imputed, silver has {stats['silver_imputed']}"
        )
    return AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) or (
            f"full grid, sums match imputed silver; {stats['days_observed']} of {stats['days']} "
            f"days observed, {stats['days_complete']} complete"),
        metadata=stats,
    )


COUNT_ERROR_SQL = """
SELECT any_value(method) AS method, any_value(expected_share_error) AS expected_error,
       sum(estimated_postings) AS postings, any_value(model_version) AS model_version
FROM silver.unlabelled_mix
"""


class MaxCountErrorConfig(Config):
    max_count_error: float | None = None
    """Largest expected L1 error of the category shares of the postings without a category;
    unset: CAREERPULSE_MAX_COUNT_ERROR (0.25)."""


@asset_check(
    asset=gold_daily_counts,
    additional_deps=["imputed_silver"],
    additional_ins={"knn_classifier": AssetIn()},
    pool=DUCKDB_POOL,
    description="How far gold's counts of the postings without a category are expected to be "
    "from the truth: the L1 distance between estimated and true category shares (0 exact, 2 all "
    "wrong) the count method in use (PCC, or PACC when the postings without a category show a "
    "prior shift) makes on labelled postings it never saw, estimated out-of-fold "
    "(series/quantification.py), at most `max_count_error` (CAREERPULSE_MAX_COUNT_ERROR, 0.25). "
    "The estimate assumes a model that works and a prior shift (the postings without a category "
    "differ from the labelled ones in their mix, not in kind): it fails while the model in service "
    "fails the quality gate, and cannot see postings of a kind no labelled posting is (those like "
    "no labelled one are counted at the labelled mix and named in imputed_silver's metadata). "
    "WARN: the counts are written with their intervals either way; labels of postings without a "
    "category (`make review`) shrink the error.",
)
def gold_count_error(config: MaxCountErrorConfig, knn_classifier: ServingClassifier,
                     duckdb: DuckDBResource, quality_bars: QualityBars) -> AssetCheckResult:
    bar = quality_bars.max_count_error if config.max_count_error is None else config.max_count_error
    with duckdb.get_connection() as connection:
        has_mix = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'silver' "
            "AND table_name = 'unlabelled_mix'").fetchone()[0]
        row = connection.execute(COUNT_ERROR_SQL).fetchone() if has_mix else None
    if row is None or row[0] is None:
        return AssetCheckResult(
            passed=False, severity=AssetCheckSeverity.WARN,
            description="no count estimate: no model spreads the postings without a category "
            "(they are counted as Unclassified)",
            metadata={"evaluated": False, "threshold": bar})
    method, expected, postings, version = row
    expected, postings = float(expected), float(postings)
    if knn_classifier.gate is not None and not knn_classifier.gate.passed:
        return AssetCheckResult(
            passed=False, severity=AssetCheckSeverity.WARN,
            description=f"{method} counts the {postings:,.0f} postings without a category, but "
            f"the model in service fails the quality gate ({knn_classifier.gate.reason}): the "
            f"expected error ({expected:.3f}, out-of-fold) assumes a model that works; a model "
            "of shuffled labels would count the labelled mix back with a small error",
            metadata={"evaluated": False, "method": method, "expected_error": round(expected, 3),
                      "threshold": bar, "model_version": version})
    passed = expected <= bar
    return AssetCheckResult(
        passed=passed, severity=AssetCheckSeverity.WARN,
        description=(f"{method} counts the {postings:,.0f} postings without a category with an "
                     f"expected L1 error of the category shares of {expected:.3f} (out-of-fold) "
                     f"{'<=' if passed else '>'} {bar:.2f}; model {version}"
                     + ("" if passed else ": the intervals in gold say how far each count may "
                        "be off; labels of postings without a category (`make review`) help")),
        metadata={"evaluated": True, "method": method, "expected_error": round(expected, 3),
                  "threshold": bar, "postings_without_category": round(postings, 1),
                  "model_version": version})


def build_newest_posting_age_check(max_age_days: int):
    """`newest_posting_age` on silver_postings: the newest posting is at most `max_age_days`
    old (CAREERPULSE_MAX_POSTING_AGE_DAYS)."""

    @asset_check(
        name="newest_posting_age",
        asset=silver_postings,
        pool=DUCKDB_POOL,
        description=f"The newest posting in silver was published at most {max_age_days} days "
        "before the check (CAREERPULSE_MAX_POSTING_AGE_DAYS). Fails (WARN) with its age "
        "otherwise: the source stopped delivering new postings (a stalled sensor, a failing "
        "API, an old archive), and the forecast, dated from today, runs that many days past its "
        "data. Now is the API's time when this machine's clock disagrees with it (measured by "
        "the latest run against the API); postings dated after now are named, not counted as "
        "fresh.",
    )
    def newest_posting_age(duckdb: DuckDBResource) -> AssetCheckResult:
        with duckdb.get_connection() as connection:
            # By the API's clock when this machine's disagreed with it (ingestion/clock.py).
            now, offset = reference_now(connection), stored_offset(connection)
            newest, postings, ahead, furthest = connection.execute(
                "SELECT max(publication_date) FILTER (WHERE publication_date <= $until), "
                "count(*), count(*) FILTER (WHERE publication_date > $until), "
                "max(publication_date) FROM silver.silver_postings",
                {"until": now + CLOCK_TOLERANCE},
            ).fetchone()
        clock = f" ({describe_offset(offset)}: now is the API's time)" if offset else ""
        # Dated after now: by its employer (bronze accepts up to 7 days ahead), or this
        # machine's clock is behind and no run measured the API's. Either way it says nothing
        # of whether postings still come in.
        future = (f"; {ahead} postings are dated after now ({now:%Y-%m-%d %H:%M} UTC), the "
                  f"latest {furthest.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC: dated ahead "
                  "by their employers, or this machine's clock is behind" if ahead else "")
        if newest is None:
            return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN,
                                    description=(f"no postings in silver published by now"
                                                 if postings else "no postings in silver")
                                    + future + clock,
                                    metadata={"max_age_days": max_age_days,
                                              "postings_dated_after_now": ahead})
        age_days = (now - newest).total_seconds() / 86_400
        passed = age_days <= max_age_days
        # In whole UTC days, as the forecast counts its data_age_days: 154.5 days rounded was
        # 155 here while the forecast said 154.
        forecast_days = (now.astimezone(timezone.utc).date()
                         - newest.astimezone(timezone.utc).date()).days
        return AssetCheckResult(
            passed=passed,
            severity=AssetCheckSeverity.WARN,
            description=(
                f"the newest of {postings} postings was published "
                f"{newest.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC, {age_days:.1f} days ago "
                + ("" if passed else f"(more than {max_age_days}): no new postings are coming "
                   f"in, and the forecast runs {forecast_days} days past its data")
            ).rstrip() + future + clock,
            metadata={"newest_publication_date": newest.astimezone(timezone.utc).isoformat(),
                      "age_days": round(age_days, 1), "max_age_days": max_age_days,
                      "postings_dated_after_now": ahead,
                      "clock_offset_hours": round(offset.total_seconds() / 3600, 2)},
        )

    return newest_posting_age


BACKTEST_SQL = """
SELECT count(*) AS categories,
       count(*) FILTER (WHERE chosen_mase IS NOT NULL) AS scored,
       count(*) FILTER (WHERE busy AND chosen_mase IS NOT NULL) AS busy_scored,
       avg(chosen_mase) FILTER (WHERE busy) AS busy_chosen,
       avg(baseline_mase) FILTER (WHERE busy AND chosen_mase IS NOT NULL) AS busy_baseline,
       avg(interval_coverage) FILTER (WHERE busy) AS busy_coverage,
       count(*) FILTER (WHERE NOT busy AND chosen_rmsse IS NOT NULL) AS sparse_scored,
       count(*) FILTER (WHERE NOT busy AND chosen_rmsse < baseline_rmsse) AS sparse_better,
       avg(chosen_rmsse) FILTER (WHERE NOT busy) AS sparse_chosen,
       avg(baseline_rmsse) FILTER (WHERE NOT busy AND chosen_rmsse IS NOT NULL) AS sparse_baseline,
       avg(pit_coverage) AS pit_coverage
FROM (SELECT *, posted_day_share >= $busy AS busy FROM gold.gold_forecast_backtest)
"""


@asset_check(
    asset=gold_category_forecast,
    pool=DUCKDB_POOL,
    description="On the categories posted on most days, the chosen models' mean MASE on the "
    "later half of the rolling-origin backtest (each model chosen on the earlier half) is below "
    "seasonal naive's (same weekday last week): equality means nothing beat last week's count, "
    "and fails. Intermittent categories are reported (RMSSE, which their models are chosen by), "
    "not judged: on counts that are mostly 0 the mean absolute error rewards forecasting no "
    "posting at all. With no busy category scored it says 'not evaluated'. WARN. The numbers "
    "per category, with 80 % interval coverage, are in `gold.gold_forecast_backtest`.",
)
def forecast_beats_seasonal_naive(duckdb: DuckDBResource) -> AssetCheckResult:
    with duckdb.get_connection() as connection:
        stats = one_row(connection, BACKTEST_SQL, {"busy": BUSY_POSTED_SHARE})
    sparse = (f"intermittent: {stats['sparse_better']} of {stats['sparse_scored']} scored "
              f"categories beat {BASELINE} (RMSSE {stats['sparse_chosen']:.3f} vs "
              f"{stats['sparse_baseline']:.3f})" if stats["sparse_scored"] else
              "no intermittent category scored")
    metadata = {key: round(float(value), 3) if isinstance(value, float) else value
                for key, value in stats.items() if value is not None}
    if not stats["busy_scored"]:
        return _forecast_result(
            False, "not evaluated: no category posted on most days has a scored backtest "
            f"({stats['categories']} categories in the backtest); {sparse}",
            {**metadata, "evaluated": False})
    chosen, baseline = float(stats["busy_chosen"]), float(stats["busy_baseline"])
    return _forecast_result(
        chosen < baseline,
        f"mean MASE {chosen:.3f} (models chosen on earlier windows) vs {baseline:.3f} "
        f"({BASELINE}) on the later windows over the {stats['busy_scored']} categories posted on "
        f"most days" + ("" if chosen < baseline else ": nothing beat last week's count")
        + f", 80 % intervals cover {stats['busy_coverage']:.0%} of their days; {sparse}",
        {**metadata, "evaluated": True},
    )


def _forecast_result(passed: bool, description: str, metadata: dict | None = None):
    return AssetCheckResult(
        passed=passed, severity=AssetCheckSeverity.WARN, description=description,
        metadata=metadata or {},
    )
