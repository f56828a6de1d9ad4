"""Resources: the Muse source, the DuckDB file, MLflow tracking, the quality bars and reviewers'
labels (the IO managers are in io_managers.py)."""

from __future__ import annotations

import atexit
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import mlflow
from dagster import (
    BetaWarning,
    ConfigurableResource,
    Field,
    Noneable,
    InitResourceContext,
    StringSource,
    resource,
)
from dagster_duckdb import DuckDBResource

with warnings.catch_warnings():
    # dagster-mlflow marks its own run hook beta when imported: a warning in every command.
    warnings.simplefilter("ignore", BetaWarning)
    from dagster_mlflow.resources import CONFIG_SCHEMA as MLFLOW_CONFIG_SCHEMA
    from dagster_mlflow.resources import MlFlow
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from pydantic import PrivateAttr

from .assets.common import DUCKDB_POOL
from .classification.decisions import GateBars
from .ops.duckdb_file import (
    LOCK_WAIT_SECONDS,
    SNAPSHOT_NAME,
    DuckDBFileLocked,
    connect,
    write_snapshot,
)
from .review.labels import LabelFile
from .ingestion.postings import InvalidPosting, check_item, parse_publication_date
from .review.taxonomy import load_taxonomy
from .ingestion.archive import iter_archive_pages
from .ingestion.muse_api import ListingWalk, RequestBudget, fetch_page, iter_api_pages, make_session
from .ingestion.listings import PLAIN, Listing
from .ingestion.pages import PAGE_SIZE, RawPage
from .ops.recovery import WORKER_TAG, PoolWatch, recover_dead_runs, worker_identity
from .ops.settings import (
    DEFAULT_MAX_COUNT_ERROR,
    DEFAULT_MIN_ACCURACY,
    DEFAULT_MIN_COVERAGE,
    DEFAULT_MIN_MACRO_F1,
    DEFAULT_MIN_PRECISION,
    DEFAULT_MUSE_BASE_URL,
)
from .classification.registry import create_store, fail_abandoned_runs, relocate_artifacts


# The API's experience levels (its documentation's `level` values).
MUSE_LEVELS = ("Entry Level", "Mid Level", "Senior Level", "management", "Internship")


class MuseApi(ConfigurableResource):
    """The Muse public jobs API, or a folder of saved pages read in its place."""

    base_url: str = DEFAULT_MUSE_BASE_URL
    api_key: str | None = None
    archive_dir: str | None = None
    max_pages: int | None = None
    timeout_seconds: float = 30.0
    retries: int = 4
    backoff_seconds: float = 0.5
    max_rate_limit_wait_seconds: float = 3600.0
    # Requests one run may make (None: no limit); a crawl goes on in the next run.
    max_requests_per_run: int | None = None
    # A full crawl starts when the last one started this many days ago (None: only when asked).
    full_crawl_days: int | None = None
    # Overrides: the only categories / levels a capped listing is parted by.
    crawl_categories: list[str] = []
    crawl_levels: list[str] = []

    @property
    def description(self) -> str:
        if self.archive_dir:
            return f"archive {self.archive_dir}"
        return f"API {self.base_url}"

    @property
    def is_archive(self) -> bool:
        return bool(self.archive_dir)

    def walk(self, listing: Listing = PLAIN, start_page: int = 0, page_cap: int | None = None,
             previous_total: int | None = None, budget: RequestBudget | None = None,
             read_ahead: Callable[[RawPage], bool] | None = None) -> ListingWalk:
        """A walk of one listing from `start_page` (iterate it for the pages)."""
        return iter_api_pages(
            self.base_url,
            api_key=self.api_key,
            max_pages=self.max_pages,
            timeout=self.timeout_seconds,
            session=self._session(),
            max_rate_limit_wait=self.max_rate_limit_wait_seconds,
            listing=listing,
            start_page=start_page,
            page_cap=page_cap,
            previous_total=previous_total,
            budget=budget,
            read_ahead=read_ahead,
        )

    def partition_values(self) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
        """(known, fixed): the values a capped listing may be parted by that are known
        beforehand (the taxonomy's current categories, the API's levels), and the overrides
        (CAREERPULSE_CRAWL_CATEGORIES / _LEVELS), the only values used for their kind."""
        known = {"category": tuple(sorted(load_taxonomy().current)), "level": MUSE_LEVELS}
        fixed = {kind: tuple(values) for kind, values in
                 (("category", self.crawl_categories), ("level", self.crawl_levels)) if values}
        return known, fixed

    def iter_pages(self) -> Iterator[RawPage]:
        """Every page of the archive, or of the plain listing."""
        if self.archive_dir:
            yield from iter_archive_pages(self.archive_dir)
            return
        yield from self.walk()

    def _session(self):
        return make_session(self.retries, self.backoff_seconds, self.max_rate_limit_wait_seconds)

    def listing_state(self) -> tuple[dict[str, Any], list[int]]:
        """What is newest at the source, from one request (page 0, newest first): ({newest_id,
        newest_publication_date, total}, the ids of the valid postings on page 0).

        In archive mode it is read from the files instead: the newest posting, the count, and
        the ids of the 20 newest postings.
        """
        fetched_at = None  # now, by this machine's clock
        if self.archive_dir:
            items = [item for page in iter_archive_pages(self.archive_dir) for item in page.items]
            total = len(items)
        else:
            page = fetch_page(self._session(), self.base_url, 0, self.api_key, self.timeout_seconds)
            # By the API's clock when this machine's is wrong (ingestion/clock.py).
            items, total, fetched_at = page.items, page.total, page.fetched_at
        postings = []
        for item in items:
            try:
                posting = check_item(item, fetched_at)
            except InvalidPosting:
                continue
            postings.append((parse_publication_date(item.get("publication_date")), posting))
        postings.sort(key=lambda dated: dated[0], reverse=True)  # stable: ties as listed
        newest_date, newest_id = postings[0] if postings else (None, None)
        state = {
            "newest_id": newest_id,
            "newest_publication_date": newest_date.isoformat() if newest_date else None,
            "total": total,
        }
        return state, [posting for _, posting in postings[:PAGE_SIZE]]


def name_the_worker(context: InitResourceContext) -> None:
    """Tag the run with this process, so that a later run can tell when it died (ops/recovery.py)."""
    instance, run = context.instance, context.dagster_run
    if instance is not None and run is not None and run.tags.get(WORKER_TAG) != worker_identity():
        instance.add_run_tags(run.run_id, {WORKER_TAG: worker_identity()})


SNAPSHOT_LOCK_WAIT_SECONDS = 3.0


class CareerPulseDuckDB(DuckDBResource):
    """The DuckDB file, as every run opens it, whichever way the run started (`make run`, the UI,
    the sensor, the Python API, `dagster asset materialize`, `dg launch`).

    When a run starts it names its worker process in a run tag, recovers runs whose worker died
    (their pool slots) and watches the pool while its steps wait, saying who holds it
    (ops/recovery.py). A connection waits at most LOCK_WAIT_SECONDS for another process holding the
    file and then fails naming it. When the run ends, the tables are copied to `snapshot.duckdb`
    beside the file, for people to read while runs go on (ops/duckdb_file.py).
    """

    _pool_watch: PoolWatch | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        name_the_worker(context)
        if context.instance is None or context.dagster_run is None:
            return  # built for a direct call, not for a run
        for line in recover_dead_runs(context.instance):
            context.log.warning(line)
        self._pool_watch = PoolWatch(context.instance, DUCKDB_POOL, context.dagster_run.run_id,
                                     say=context.log.warning).start()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._pool_watch is not None:
            self._pool_watch.stop()
        if self.database == ":memory:" or not Path(self.database).exists():
            return
        try:
            # Briefly: a run that failed on a held file should not wait for it a second time.
            with self.get_connection(wait_seconds=SNAPSHOT_LOCK_WAIT_SECONDS) as connection:
                live = Path(self.database)
                write_snapshot(connection, live, live.with_name(SNAPSHOT_NAME))
        except (duckdb.Error, DuckDBFileLocked, OSError) as exc:
            context.log.warning(f"{SNAPSHOT_NAME} not refreshed: {str(exc).splitlines()[0]}")

    @contextmanager
    def get_connection(self, wait_seconds: float = LOCK_WAIT_SECONDS):
        connection = connect(self.database, {"custom_user_agent": "dagster",
                                             **self.connection_config}, wait_seconds)
        try:
            yield connection
        finally:
            connection.close()


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str | None) -> str | None:
    """Create the experiment with its artifacts under CAREERPULSE_HOME, not MLflow's ./mlruns
    (with a tracking server, where the server keeps them: `artifact_location` None). An
    experiment whose artifacts moved with the home is pointed at them (classification/registry.py
    `relocate_artifacts`): returns what was done then, else None."""
    create_store(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    if client.get_experiment_by_name(name) is not None:
        if artifact_location is None:
            return None
        return relocate_artifacts(tracking_uri, name, Path(artifact_location))
    if artifact_location is not None:
        Path(artifact_location).mkdir(parents=True, exist_ok=True)
    try:
        client.create_experiment(
            name, artifact_location=artifact_location and Path(artifact_location).as_uri()
        )
    except MlflowException:
        if client.get_experiment_by_name(name) is None:
            raise  # not another process creating it first
    return None


class TrainingTracking(MlFlow):
    """dagster-mlflow's MLflow resource with one change: it opens no MLflow run when it starts.

    dagster-mlflow opens a run for every Dagster run that uses the resource, so a run that reused
    the model left an empty MLflow run named after the job. Here the only MLflow run is the one
    a training asks for with `training_run`, which owns it from start to end.
    """

    def _setup(self):
        atexit.unregister(mlflow.end_run)  # as dagster-mlflow does: runs end where they start

    def run_url(self, run_id: str) -> str:
        """The run's page in the MLflow UI that serves this tracking store (every training's
        run is in this resource's experiment)."""
        return f"{self.ui_url}/#/experiments/{self.experiment.experiment_id}/runs/{run_id}"

    @contextmanager
    def training_run(self, name: str, tags: dict[str, str] | None = None):
        """One MLflow run for one training, tagged with the Dagster run id: FINISHED when the
        block ends, FAILED when it raises."""
        run = mlflow.start_run(
            experiment_id=self.experiment.experiment_id, run_name=name,
            tags={"dagster_run_id": self.dagster_run_id, **(self.extra_tags or {}), **(tags or {})},
        )
        try:
            yield run
        except BaseException:
            mlflow.end_run(status=RunStatus.to_string(RunStatus.FAILED))
            raise
        mlflow.end_run(status=RunStatus.to_string(RunStatus.FINISHED))


@resource(
    config_schema={
        **MLFLOW_CONFIG_SCHEMA,
        "artifact_location": Field(
            Noneable(StringSource), default_value=None,
            description="Folder for MLflow artifacts (None: where the tracking server keeps them).",
        ),
        "ui_url": Field(StringSource, description="Where people open the MLflow UI."),
    },
    description="dagster-mlflow tracking: creates its experiment with a chosen artifact folder "
    "and opens an MLflow run only for a training (one run per training, none for a reuse).",
)
def mlflow_tracking(context: InitResourceContext):
    config = context.resource_config
    relocated = ensure_experiment(
        config["mlflow_tracking_uri"], config["experiment_name"], config["artifact_location"]
    )
    if relocated:
        context.log.warning(relocated)
    tracking = TrainingTracking(context)
    tracking.ui_url = config["ui_url"].rstrip("/")
    instance = context.instance

    def over(dagster_run_id: str) -> bool:
        # Runs this instance does not know (another deployment's) are not ours to end.
        run = instance.get_run_by_id(dagster_run_id) if instance and dagster_run_id else None
        return run is not None and run.is_finished

    for run_id in fail_abandoned_runs(tracking.experiment.experiment_id, over):
        context.log.warning(f"MLflow run {run_id} was left RUNNING by a Dagster run that is "
                            "over (killed?): marked FAILED")
    return tracking


# The gate checks' ops (asset `knn_classifier`, checks `knn_holdout_accuracy` / `_macro_f1`),
# whose config holds the bars of a run.
GATE_CHECK_OPS = {"accuracy": "knn_classifier_knn_holdout_accuracy",
                  "macro_f1": "knn_classifier_knn_holdout_macro_f1"}


class QualityBars(ConfigurableResource):
    """The classifier's quality gate (`CAREERPULSE_MIN_ACCURACY`, `CAREERPULSE_MIN_MACRO_F1`:
    accuracy and macro-F1 at full coverage), the precision a category written on a posting must
    have (`CAREERPULSE_MIN_PRECISION`), the coverage below which `imputation_coverage` warns
    (`CAREERPULSE_MIN_COVERAGE`) and the expected count error above which `gold_count_error`
    warns (`CAREERPULSE_MAX_COUNT_ERROR`); read by `knn_classifier` and by the checks."""

    min_accuracy: float = DEFAULT_MIN_ACCURACY
    min_macro_f1: float = DEFAULT_MIN_MACRO_F1
    min_precision: float = DEFAULT_MIN_PRECISION
    min_coverage: float = DEFAULT_MIN_COVERAGE
    max_count_error: float = DEFAULT_MAX_COUNT_ERROR

    def for_run(self, run_config: dict) -> GateBars:
        """The quality gate's bars for a run: the gate checks' `min_accuracy` /
        `min_macro_f1` where the run config sets them (the job config the contract names, on ops
        `knn_classifier_knn_holdout_accuracy` / `_macro_f1`), else the settings. Read here only:
        `knn_classifier` judges its model once against them (`GateVerdict.bars`), and the checks
        report that verdict."""
        ops = run_config.get("ops") or {}
        bars = {}
        for name, op in GATE_CHECK_OPS.items():
            value = ((ops.get(op) or {}).get("config") or {}).get(f"min_{name}")
            bars[name] = getattr(self, f"min_{name}") if value is None else float(value)
        return GateBars(**bars)


class ReviewerLabels(ConfigurableResource):
    """The folder of reviewers' label files (CAREERPULSE_LABELS_DIR); see review/labels.py."""

    folder: str

    def files(self) -> list[LabelFile]:
        folder = Path(self.folder)
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() == ".csv":
                try:
                    modified_at = path.stat().st_mtime
                    found.append(LabelFile(path.name, path.read_bytes(), modified_at=modified_at))
                except OSError as exc:
                    found.append(LabelFile(path.name, b"", error=exc.strerror or str(exc)))
        return found
