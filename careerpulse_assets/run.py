"""`make run`: bring every asset up to date in one run and print what came out.

`python -m careerpulse_assets.run [JOB]` runs another job (`careerpulse_ingestion`,
`careerpulse_retrain`) the same way; `make run JOB=...` passes it. The run is recorded in the
Dagster instance at DAGSTER_HOME, so `make ui` shows it afterwards.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import duckdb

from .settings import redact_url

# The graph's order, for listing what a run did not materialise.
ASSET_ORDER = [
    "bronze_postings", "silver_postings", "knn_classifier", "imputed_silver", "gold_daily_counts",
    "gold_category_forecast", "review_queue",
]


def _dagster_home_path(settings) -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster")


def _dagster_home(settings) -> Path:
    from .instance import ensure_instance_file

    home = _dagster_home_path(settings)
    done = ensure_instance_file(home, postgres=bool(settings.dagster_postgres_url))
    if not done.endswith("up to date"):
        say(done)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _count(connection, sql: str):
    try:
        return connection.execute(sql).fetchone()[0]
    except duckdb.CatalogException:
        return None  # the table was not written (yet)


def _table_counts(path: Path) -> dict:
    with duckdb.connect(str(path), read_only=True) as connection:
        return {
            "bronze rows": _count(connection, "SELECT count(*) FROM bronze.bronze_postings"),
            "quarantined": _count(connection, "SELECT count(*) FROM bronze.bronze_quarantine"),
            "postings (silver)": _count(connection, "SELECT count(*) FROM silver.silver_postings"),
            "labelled": _count(
                connection, "SELECT count(*) FROM silver.silver_postings WHERE category IS NOT NULL"
            ),
            "imputed": _count(
                connection, "SELECT count(*) FROM silver.imputed_silver WHERE is_imputed"
            ),
            "gold rows": _count(connection, "SELECT count(*) FROM gold.gold_daily_counts"),
            "forecast rows": _count(connection, "SELECT count(*) FROM gold.gold_category_forecast"),
        }


def summary_lines(result, settings, seconds: float, asset_names: list[str]) -> list[str]:
    lines = [f"CareerPulse run {result.run_id}: {'succeeded' if result.success else 'FAILED'} "
             f"in {seconds:.1f} s"]
    if not settings.duckdb_path.exists():
        return lines + [f"  nothing was written to {settings.duckdb_path}"] + _step_failures(result)
    try:
        counts = _table_counts(settings.duckdb_path)
    except duckdb.Error as exc:
        return lines + [
            f"  cannot read {settings.duckdb_path}: {str(exc).splitlines()[0]}"
        ] + _step_failures(result)
    for name, value in counts.items():
        lines.append(f"  {name:<18} {'not written' if value is None else value}")

    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        meta = {k: v.value for k, v in materialization.metadata.items()}
        name = materialization.asset_key.to_user_string()
        if name == "bronze_postings" and "crawl" in meta:
            lines += _crawl_lines(meta)
        elif name == "silver_postings" and "reviewer_labels" in meta:
            lines.append(
                f"  labels             {meta['reviewer_labels']} from reviewers, "
                f"{meta['label_rows_quarantined']} rows quarantined (silver.label_quarantine), "
                f"{meta['label_rows_awaiting_review']} awaiting review"
            )
        elif name == "knn_classifier":
            lines += _classifier_lines(meta)
        elif name == "review_queue":
            lines.append(f"  review queue       {meta['dagster/row_count']} postings "
                         "(silver.review_queue; `make review N=50` writes a file to fill in)")
    lines.append("  checks:")
    for evaluation in result.get_asset_check_evaluations():
        status = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
        evaluated = evaluation.metadata.get("evaluated")
        if evaluated is not None and not evaluated.value:
            status = f"NOT EVALUATED ({evaluation.severity.value})"
        lines.append(
            f"    {evaluation.asset_check_key.name:<32} {status}"
            + (f": {_cut(evaluation.description)}" if evaluation.description else "")
        )
    lines += _step_failures(result)
    lines += _not_materialized(result, asset_names)
    artifacts = "kept by the server" if settings.mlflow_is_server else settings.mlflow_artifacts
    storage = (f", storage {redact_url(settings.dagster_postgres_url)}"
               if settings.dagster_postgres_url else "")
    lines += [
        f"  DuckDB            {settings.duckdb_path}",
        f"  MLflow            {redact_url(settings.mlflow_tracking_uri)} (artifacts {artifacts}); "
        f"UI {settings.mlflow_ui_url}",
        f"  Dagster instance  {_dagster_home_path(settings)}{storage}",
    ]
    return lines


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
    def interval(name: str) -> str:
        return (f"{meta[f'gate_{name}']:.3f} [{meta[f'gate_{name}_ci_low']:.3f}–"
                f"{meta[f'gate_{name}_ci_high']:.3f}]")

    lines = [
        f"  classifier         {meta['chosen']}",
        f"  {'trained' if meta['retrained'] else 'not trained':<18} because {_cut(meta['reason'])}",
    ]
    if "challenger" in meta:
        lines.append(f"  challenger         {meta['challenger']}: {_cut(meta['promotion'])}")
    lines += [
        f"  champion           {meta['champion']}",
        f"  quality gate       accuracy {interval('accuracy')}, macro-F1 {interval('macro_f1')} "
        f"(95 % intervals; {meta['gate_method']})",
    ]
    return lines


def _cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _root_message(error) -> str:
    while error is not None and error.cause is not None:
        error = error.cause  # the user-facing reason, not Dagster's wrapper
    return _cut(error.message.strip().splitlines()[0]) if error else "no error recorded"


def _step_failures(result) -> list[str]:
    lines = []
    for event in result.all_events:
        if event.is_step_failure and (
            event.step_failure_data.error.cls_name == "DagsterAssetCheckFailedError"
        ):
            # The check's own line above says what failed; say what helps.
            lines.append(
                f"  {event.step_key} stopped the run: label postings of the weak categories the "
                "classifier's metadata names; `make review N=50` hands out those it is least sure "
                "of (README: People in the loop)"
            )
        elif event.is_step_failure:
            lines.append(
                f"  step {event.step_key} failed: {_root_message(event.step_failure_data.error)}"
            )
        elif event.event_type_value == "RESOURCE_INIT_FAILURE":
            lines.append(
                f"  resources could not start: {_root_message(event.event_specific_data.error)}"
            )
    return lines


def _not_materialized(result, asset_names: list[str]) -> list[str]:
    done = {
        event.step_materialization_data.materialization.asset_key.to_user_string()
        for event in result.get_asset_materialization_events()
    }
    missing = [name for name in asset_names if name not in done]
    if not missing:
        return []
    return [f"  not materialised in this run: {', '.join(missing)} (tables keep earlier contents)"]


# A run waiting for the DuckDB pool says so this soon, then this often.
WAIT_FIRST_SAY_SECONDS = 3.0
WAIT_SAY_EVERY_SECONDS = 30.0


def say(line: str) -> None:
    print(f"careerpulse: {line}", flush=True)


@contextmanager
def watching_the_pool(instance, pool: str, run_id: str):
    """While the run waits for a slot of `pool`, say who holds it; and should the holder die
    while we wait, recover it (mark it failed, free its slot) so the wait ends."""
    from .recovery import recover_dead_runs, slot_holders

    stop = threading.Event()

    def watch() -> None:
        waiting_since, said_at = None, None
        while not stop.wait(1.0):
            info = instance.event_log_storage.get_concurrency_info(pool)
            waiting = [s.step_key for s in info.pending_steps
                       if s.run_id == run_id and s.assigned_timestamp is None]
            # Steps of this run also wait for each other's slot: only other holders are news.
            holders = slot_holders(instance, pool, except_run=run_id) if waiting else []
            if not holders:
                waiting_since = said_at = None
                continue
            now = time.monotonic()
            waiting_since = waiting_since or now
            for line in recover_dead_runs(instance):
                say(line)
            if now - waiting_since >= WAIT_FIRST_SAY_SECONDS and (
                said_at is None or now - said_at >= WAIT_SAY_EVERY_SECONDS
            ):
                say(
                    f"step {', '.join(waiting)} waits for pool {pool} "
                    f"({now - waiting_since:.0f} s), held by {'; '.join(holders)}"
                )
                said_at = now

    thread = threading.Thread(target=watch, daemon=True, name="careerpulse-pool-watch")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    from dagster import BetaWarning, DagsterInstance

    warnings.filterwarnings("ignore", category=BetaWarning)  # dagster-mlflow is marked beta

    from dagster._core.utils import make_new_run_id

    from .assets.common import DUCKDB_POOL
    from .preflight import problems
    from .recovery import WORKER_TAG, recover_dead_runs, worker_identity
    from .settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"careerpulse: {exc}", file=sys.stderr)
        return 1
    found = problems(settings, _dagster_home_path(settings))
    if found:
        print("\n".join(f"careerpulse: {problem}" for problem in found), file=sys.stderr)
        return 1
    _dagster_home(settings)
    # Imported only now: the module builds the default Definitions from the environment.
    from .definitions import build_definitions

    defs = build_definitions(settings)
    job_name = (argv if argv is not None else sys.argv[1:] or ["careerpulse_all"])[0]
    try:
        job = defs.resolve_job_def(job_name)
    except Exception:
        jobs = ", ".join(sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")))
        print(f"careerpulse: no job {job_name!r}; the jobs are {jobs}", file=sys.stderr)
        return 1
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    asset_names = [name for name in ASSET_ORDER if name in selected]
    started = time.monotonic()
    with DagsterInstance.get() as instance:
        for line in recover_dead_runs(instance):
            say(line)
        run_id = make_new_run_id()
        with watching_the_pool(instance, DUCKDB_POOL, run_id):
            result = job.execute_in_process(
                instance=instance,
                run_id=run_id,
                tags={WORKER_TAG: worker_identity()},
                raise_on_error=False,
                # Step starts, page counts and failures; Dagster's DEBUG events stay in the UI.
                run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            )
    print("\n".join(summary_lines(result, settings, time.monotonic() - started, asset_names)))
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
