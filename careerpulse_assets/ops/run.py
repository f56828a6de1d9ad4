"""`make run`: bring every asset up to date in one run and print what came out.

`python -m careerpulse_assets.ops.run [JOB] [--config FILE]` runs another job
(`careerpulse_ingestion`, `careerpulse_retrain`) the same way (`make run JOB=...`), with the run
config in a YAML file (`make run CONFIG=path.yaml`: op config, check bars). The run is recorded
in the Dagster instance at DAGSTER_HOME, so `make ui` shows it afterwards. It exits 0 when every
asset of the job was written, whatever a check said (failed checks head the summary), 1 when
one was not.

What it prints: the steps' own progress lines (`careerpulse: <step>: ...`) while the run goes on,
then the summary, which says what failed and what to do. Dagster's event chatter (step failures
with their stack traces, "Dependencies for step ... Not executing") and Python warnings stay out:
the Dagster UI shows the run's whole event log.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import warnings
from pathlib import Path

import duckdb

from .settings import redact_url

# The graph's order, for listing what a run did not materialise, with the table each writes.
ASSET_TABLES = {
    "bronze_postings": "bronze.bronze_postings", "silver_postings": "silver.silver_postings",
    "knn_classifier": None, "imputed_silver": "silver.imputed_silver",
    "gold_daily_counts": "gold.gold_daily_counts",
    "gold_category_forecast": "gold.gold_category_forecast", "review_queue": "silver.review_queue",
}
ASSET_ORDER = list(ASSET_TABLES)


def _count(connection, sql: str):
    try:
        return connection.execute(sql).fetchone()[0]
    except duckdb.CatalogException:
        return None  # the table was not written (yet)


def _table_counts(path: Path) -> tuple[dict, set[str]]:
    """The summary's counts (None: table not written), and every table that holds rows."""
    with duckdb.connect(str(path), read_only=True) as connection:
        tables = {f"{schema}.{table}" for schema, table, rows in connection.execute(
            "SELECT schema_name, table_name, estimated_size FROM duckdb_tables()").fetchall()
            if rows}
        counts = {
            "bronze": _count(connection, "SELECT count(*) FROM bronze.bronze_postings"),
            "quarantined": _count(connection, "SELECT count(*) FROM bronze.bronze_quarantine"),
            "silver": _count(connection, "SELECT count(*) FROM silver.silver_postings"),
            "from the API": _count(connection, "SELECT count(*) FROM silver.silver_postings "
                                   "WHERE category IS NOT NULL AND category_source = 'api'"),
            "from reviewers": _count(connection, "SELECT count(*) FROM silver.silver_postings "
                                     "WHERE category_source = 'label'"),
            "without": _count(connection, "SELECT count(*) FROM silver.silver_postings "
                              "WHERE category IS NULL"),
            "gold": _count(connection, "SELECT count(*) FROM gold.gold_daily_counts"),
            "gold days": _count(connection, "SELECT count(DISTINCT day) FROM gold.gold_daily_counts"),
            "forecast": _count(connection, "SELECT count(*) FROM gold.gold_category_forecast"),
            "queue": _count(connection, "SELECT count(*) FROM silver.review_queue"),
        }
        try:
            mix = connection.execute(
                "SELECT category, estimated_postings, estimated_low, estimated_high "
                "FROM silver.unlabelled_mix ORDER BY estimated_postings DESC").fetchall()
        except duckdb.CatalogException:
            mix = []
    return counts | {"mix": mix}, tables


def _not_evaluated(evaluation) -> bool:
    evaluated = evaluation.metadata.get("evaluated")
    return evaluated is not None and not evaluated.value


def _check_line(evaluation) -> str:
    status = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
    if _not_evaluated(evaluation):
        status = f"NOT EVALUATED ({evaluation.severity.value})"
    return (f"{evaluation.asset_check_key.name:<32} {status}"
            + (f": {_cut(evaluation.description)}" if evaluation.description else ""))


def delivered(result, asset_names: list[str]) -> bool:
    """Whether every asset of the run's job was written (`make run` exits 0 then, whatever a
    check said: the failed ones head the summary)."""
    return not _missing(result, asset_names)


def _metadata(result) -> dict[str, dict]:
    """Each materialised asset's metadata, as plain values."""
    out = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        out[materialization.asset_key.to_user_string()] = {
            k: v.value for k, v in materialization.metadata.items()}
    return out


def summary_lines(result, settings, seconds: float, asset_names: list[str]) -> list[str]:
    """What a data engineer reads in 20 seconds: what was delivered, what failed and what to do;
    every figure in one place, the detail in the UI's metadata."""
    verdict = ("succeeded" if result.success
               else "delivered, with failures listed below" if delivered(result, asset_names)
               else "FAILED")
    lines = [f"CareerPulse run {result.run_id}: {verdict} in {seconds:.1f} s"]
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    if failed:
        lines.append("  failed checks:")
        lines += [f"    {_check_line(e)}" for e in failed]
    lines += _step_failures(result)
    if not settings.duckdb_path.exists():
        return lines + [f"  nothing was written to {settings.duckdb_path}"]
    try:
        counts, tables = _table_counts(settings.duckdb_path)
    except duckdb.Error as exc:
        return lines + [f"  cannot read {settings.duckdb_path}: {str(exc).splitlines()[0]}"]
    meta = _metadata(result)
    lines += _not_materialized(result, asset_names, tables)
    lines.append("  delivered          " + _delivered(counts))
    if "bronze_postings" in meta and "crawl" in meta["bronze_postings"]:
        lines += _crawl_lines(meta["bronze_postings"])
    lines += _postings_lines(counts, meta.get("knn_classifier"), meta.get("silver_postings"))
    if "knn_classifier" in meta:
        lines += _classifier_lines(meta["knn_classifier"])
    if "imputed_silver" in meta:
        lines += _counting_lines(meta["imputed_silver"], counts["mix"],
                                 meta.get("knn_classifier", {}))
    if "gold_category_forecast" in meta:
        forecast = meta["gold_category_forecast"]
        lines.append("  forecast           " + (
            f"skipped: {forecast['skipped']}" if "skipped" in forecast else
            f"{forecast['first_day']} to {forecast['last_day']} per category, learnt from the "
            f"estimated counts until {forecast['data_until']} ({forecast['data_age_days']} days "
            "before today)" + ("; made earlier today, nothing it learns from moved"
                                if str(forecast.get("made", "")).startswith("kept") else "")))
    evaluations = result.get_asset_check_evaluations()
    passed = sum(e.passed for e in evaluations)
    unjudged = sum(not e.passed and _not_evaluated(e) for e in evaluations)
    if evaluations:
        lines.append(f"  checks             {passed} passed"
                     + (f", {len(failed) - unjudged} failed" if len(failed) > unjudged else "")
                     + (f", {unjudged} not evaluated" if unjudged else "")
                     + (" (above)" if failed else "")
                     + "; every check's figures are on its asset in the UI (`make ui`)")
    artifacts = "kept by the server" if settings.mlflow_is_server else settings.mlflow_artifacts
    storage = (f", storage {redact_url(settings.dagster_postgres_url)}"
               if settings.dagster_postgres_url else "")
    lines += [
        f"  files              DuckDB {settings.duckdb_path}; MLflow "
        f"{redact_url(settings.mlflow_tracking_uri)} (artifacts {artifacts}), UI "
        f"{settings.mlflow_ui_url}; Dagster instance {settings.dagster_home}{storage}",
    ]
    return lines


def _number(value) -> str:
    return "not written" if value is None else f"{value:,}"


def _delivered(counts: dict) -> str:
    gold = (f"gold {_number(counts['gold'])} rows ({_number(counts['gold days'])} days × "
            "categories)" if counts["gold"] is not None else "gold not written")
    forecast = ("forecast not written" if counts["forecast"] is None
                else f"forecast {counts['forecast']:,} rows")
    return (f"bronze {_number(counts['bronze'])} rows ({_number(counts['quarantined'])} "
            f"quarantined), silver {_number(counts['silver'])} postings, {gold}, {forecast}, "
            f"review queue {_number(counts['queue'])}")


def _postings_lines(counts: dict, classifier: dict | None, silver: dict | None) -> list[str]:
    """One count of the labelled postings with its parts named, and why reviewers' labels were
    or were not learned."""
    if counts["silver"] is None:
        return []
    labelled = (counts["from the API"] or 0) + (counts["from reviewers"] or 0)
    lines = [f"  postings           {counts['silver']:,} in silver: {labelled:,} with a category "
             f"({counts['from the API']:,} from the API, {counts['from reviewers']:,} from "
             f"reviewers), {counts['without']:,} without"]
    parts = (classifier or {}).get("labelled")
    if parts:
        rare = parts["too_rare_to_learn"]
        lines.append(
            f"  labelled           {parts['learnable']:,} to learn from: of the {labelled:,}, "
            f"{parts['reposts_set_aside']:,} set aside as reposts of another labelled text, "
            f"{sum(rare.values()):,} in {len(rare)} categories too rare to learn (fewer than "
            f"{parts['min_postings']} each)")
    if silver is not None and "reviewer_labels" in silver:
        line = (f"  labels             {silver['reviewer_labels']} from reviewers, "
                f"{silver['label_rows_quarantined']} rows quarantined (silver.label_quarantine), "
                f"{silver['label_rows_awaiting_review']} awaiting review")
        learnt = (classifier or {}).get("reviewer_labels_in_training")
        if silver["reviewer_labels"] and learnt is not None:
            line += (f"; the model in service learnt {learnt} of them"
                     + ("" if learnt >= silver["reviewer_labels"] else
                        f" ({'trained in this run' if classifier.get('retrained') else 'not retrained in this run: ' + _cut(str(classifier.get('reason')), 120)}"
                        "; labels in categories too rare to learn or on reposts are not learnt)"))
        lines.append(line)
    return lines


def _interval(meta: dict, prefix: str, name: str, percent: bool = False) -> str:
    value = meta.get(f"{prefix}_{name}")
    if value is None or value != value:  # absent, or NaN: not estimated
        return "not estimated"
    low, high = meta[f"{prefix}_{name}_ci_low"], meta[f"{prefix}_{name}_ci_high"]
    if percent:
        return f"{value:.1%} [{low:.1%}–{high:.1%}]"
    return f"{value:.3f} [{low:.3f}–{high:.3f}]"


def _crawl_lines(meta: dict) -> list[str]:
    """The crawl's progress: a capped listing or a spent budget is no failure, say what comes."""
    lines = [f"  crawl              {line.removeprefix('- ')}"
             for line in str(meta["crawl"]).splitlines() if line.strip()]
    if meta.get("crawl_unfinished"):
        lines.append("  crawl              unfinished: the next run goes on where this one "
                     "stopped (CAREERPULSE_MAX_REQUESTS_PER_RUN; muse_new_pages_sensor starts "
                     "it)")
    return lines


def _classifier_lines(meta: dict) -> list[str]:
    if meta.get("model_version") is None:
        return [f"  model              none: {_cut(str(meta.get('reason')))}"]
    trained = ("trained in this run" if meta["retrained"] else "reused") + (
        f" ({_cut(str(meta['reason']), 160)})")
    lines = [f"  model              {meta['model_version']} in service, {trained}; "
             f"{meta['chosen']}"]
    if "challenger" in meta and meta["challenger"] != meta["model_version"]:
        lines.append(f"  challenger         {meta['challenger']} not promoted: "
                     f"{_cut(str(meta['promotion']), 200)}")
    gate = str(meta.get("quality_gate") or "")
    verdict = gate.split(":")[0] if gate else "not judged"
    lines.append(
        f"  quality            accuracy {_interval(meta, 'oof', 'accuracy')}, macro-F1 "
        f"{_interval(meta, 'oof', 'macro_f1')} at full coverage, nested out-of-fold over "
        f"{meta['oof_postings']:,} labelled postings (those too rare to learn count as errors): "
        f"{verdict} (bars: {meta['bars']})")
    return lines


def _counting_lines(meta: dict, mix: list, classifier: dict) -> list[str]:
    without = meta["postings_without_category"]
    lines = []
    if without and meta.get("count_method"):
        shown = [f"{name} {n:.0f} [{low:.0f}–{high:.0f}]" for name, n, low, high in mix
                 if high >= 0.5][:6]
        lines.append(
            f"  counts             {without:,} postings without a category counted by "
            f"{meta['count_method']}, expected error {meta['expected_count_error']:.3f} (L1 of "
            f"the category shares, out-of-fold): {', '.join(shown)} (90 % intervals; every "
            "category and day in gold.gold_daily_counts.estimated_postings)")
    elif without:
        lines.append(f"  counts             {without:,} postings without a category counted as "
                     "Unclassified: no model to spread them")
    written, coverage = meta["imputed_postings"], meta.get("coverage")
    line = (f"  per posting        {written:,} of {without:,} postings without a category get "
            f"one written (coverage {coverage:.1%}), {meta['unclassified_postings']:,} "
            "Unclassified" if without else "  per posting        every posting has a category")
    if without and "written_precision" in classifier:
        threshold = classifier.get("imputation_threshold")
        line += (f"; on labelled postings the rule (probability ≥ "
                 f"{0 if threshold is None else threshold:.2f}"
                 + (f", not {', '.join(classifier['categories_withheld'])}"
                    if classifier.get("categories_withheld") else "")
                 + f") is right {_interval(classifier, 'written', 'precision')} at coverage "
                 f"{_interval(classifier, 'written', 'coverage', percent=True)}"
                 if threshold is not None else "; no threshold reaches the precision bar")
    if meta.get("postings_like_no_labelled_one"):
        line += (f"; {meta['postings_like_no_labelled_one']:,} resemble no labelled posting "
                 "(nearest under 10 % alike): counted at the labelled mix, none written")
    if meta.get("realised_precision_postings"):
        line += f"; {meta['realised_precision']}"
    lines.append(line)
    return lines


def _cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _root_message(error) -> str:
    while error is not None and error.cause is not None:
        error = error.cause  # the user-facing reason, not Dagster's wrapper
    if error is None:
        return "no error recorded"
    first = error.message.strip().splitlines()[0]
    # "package.module.SomeError: what happened": what happened.
    return _cut(re.sub(rf"^[\w.]*{re.escape(error.cls_name)}: ", "", first))


def _step_failures(result) -> list[str]:
    lines = []
    for event in result.all_events:
        if event.is_step_failure and (
            event.step_failure_data.error.cls_name == "DagsterAssetCheckFailedError"
        ):
            # The check's own line above says what failed; say what helps.
            lines.append(
                f"  {event.step_key} stopped the run: the imputations it would write fall short "
                "of a bar set in the run config; the classifier chooses its threshold for the "
                "bars the checks use (docs/classifier.md)"
            )
        elif event.is_step_failure:
            message = _root_message(event.step_failure_data.error)
            lines.append(f"  step {event.step_key} failed: {message}")
        elif event.event_type_value == "RESOURCE_INIT_FAILURE":
            lines.append(
                f"  resources could not start: {_root_message(event.event_specific_data.error)}"
            )
    return lines


def _missing(result, asset_names: list[str]) -> list[str]:
    done = {
        event.step_materialization_data.materialization.asset_key.to_user_string()
        for event in result.get_asset_materialization_events()
    }
    return [name for name in asset_names if name not in done]


def _not_materialized(result, asset_names: list[str], tables: set[str]) -> list[str]:
    """Which assets the run left out, and whether their tables keep contents of earlier runs."""
    missing = _missing(result, asset_names)
    if not missing:
        return []
    missing_tables = [ASSET_TABLES[name] for name in missing if ASSET_TABLES[name]]
    kept = [table for table in missing_tables if table in tables]
    never = [table for table in missing_tables if table not in tables]
    notes = ([f"earlier contents kept: {', '.join(kept)}"] if kept else []) + (
        [f"never written yet: {', '.join(never)}"] if never else [])
    return [f"  not materialised in this run: {', '.join(missing)}"
            + (f" ({'; '.join(notes)})" if notes else "")]


def say(line: str) -> None:
    print(f"careerpulse: {line}", flush=True)


class _ProgressOnly(logging.Filter):
    """What a person watching `make run` reads: the steps' own messages. Dagster's events (a
    failure's stack trace among them) and its "Dependencies for step ... Not executing" lines
    are left to the UI; the summary says what failed and what to do."""

    def filter(self, record: logging.LogRecord) -> bool:
        meta = getattr(record, "dagster_meta", None)
        if meta is None:
            return True
        if meta.get("dagster_event") is not None:
            return False
        return not meta["orig_message"].startswith("Dependencies for step ")


class _ProgressFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        where = meta.get("step_key") or meta.get("resource_name")
        message = meta.get("orig_message", record.getMessage())
        if not where:
            return f"careerpulse: {message}"
        return f"careerpulse: {where}: {message.removeprefix(f'{where}: ')}"


def _progress_logger():
    """The `console` logger of `make run`'s job: INFO and above, progress lines only."""
    from dagster import logger

    @logger(description="make run's console: the steps' messages, one line each")
    def progress(_init_context) -> logging.Logger:
        out = logging.getLogger("careerpulse.run")
        out.setLevel(logging.INFO)
        out.propagate = False
        if not out.handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.addFilter(_ProgressOnly())
            handler.setFormatter(_ProgressFormatter())
            out.addHandler(handler)
        return out

    return progress


def _quiet_libraries() -> None:
    """No Python warnings (deprecations, scikit-learn's notes on small folds) and no MLflow
    chatter ("Creating initial MLflow database tables", "Successfully registered model") in
    `make run`'s output; MLflow's warnings and errors still show."""
    warnings.simplefilter("ignore")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # Imported first: importing it switches MLflow's event stream back on when it is done.
    import mlflow.types.responses  # noqa: F401
    from mlflow.utils.logging_utils import disable_logging

    disable_logging()  # MLflow's event stream (eprint): registration notices


# make run's own console logger (_progress_logger); without it Dagster adds its own console.
LOGGERS = {"console": {}}


def run_config_from(path: str | None) -> dict:
    """The run config in a YAML file (a mapping: `ops`, `resources`, ...), with the console
    logger of `make run` (progress lines only) unless it sets `loggers`; ValueError saying what is wrong with it."""
    if path is None:
        return {"loggers": LOGGERS}
    import yaml

    try:
        config = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"cannot read the run config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"the run config {path} is not YAML: {str(exc).splitlines()[0]}") from None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValueError(f"the run config {path} must be a mapping (ops: ..., resources: ...), "
                         f"not a {type(config).__name__}")
    return {"loggers": LOGGERS, **config}


def main(argv: list[str] | None = None) -> int:
    import argparse

    from .preflight import settings_for_command

    parser = argparse.ArgumentParser(prog="python -m careerpulse_assets.ops.run")
    parser.add_argument("job", nargs="?", default="careerpulse_all")
    parser.add_argument("--config", help="a YAML file of run config")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])

    settings = settings_for_command()
    if settings is None:
        return 1
    _quiet_libraries()
    from dagster import DagsterInstance, DagsterInvalidConfigError
    from dagster._core.utils import make_new_run_id

    from .instance import ensure_instance_file
    from .recovery import WORKER_TAG, worker_identity

    try:
        run_config = run_config_from(args.config)
    except ValueError as exc:
        print(f"careerpulse: {exc}", file=sys.stderr)
        return 1
    done = ensure_instance_file(settings.dagster_home, bool(settings.dagster_postgres_url))
    if not done.endswith("up to date"):
        say(done)
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    # MLflow draws a progress bar on the terminal for every artifact it downloads (five per run
    # that reuses a model): the summary is what this terminal is for.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Imported only now: the module builds the default Definitions from the environment.
    from ..definitions import build_definitions

    defs = build_definitions(settings)
    job_name = args.job
    try:
        job = defs.resolve_job_def(job_name)
    except Exception:
        jobs = ", ".join(sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")))
        print(f"careerpulse: no job {job_name!r}; the jobs are {jobs}", file=sys.stderr)
        return 1
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    asset_names = [name for name in ASSET_ORDER if name in selected]
    started = time.monotonic()
    # The run recovers dead runs' slots and watches the pool itself (its DuckDB resource).
    with DagsterInstance.get() as instance:
        try:
            result = job.with_logger_defs({"console": _progress_logger()}).execute_in_process(
                instance=instance,
                run_id=make_new_run_id(),
                tags={WORKER_TAG: worker_identity()},
                raise_on_error=False,
                run_config=run_config,
            )
        except DagsterInvalidConfigError as exc:
            errors = "; ".join(error.message for error in exc.errors) or str(exc)
            print(f"careerpulse: the run config {args.config or ''} does not fit job "
                  f"{job_name}: {_cut(errors)}", file=sys.stderr)
            return 1
    print("\n".join(summary_lines(result, settings, time.monotonic() - started, asset_names)))
    return 0 if delivered(result, asset_names) else 1


if __name__ == "__main__":
    sys.exit(main())
