"""Resources: the Muse source, the DuckDB IO manager, and MLflow tracking."""

from __future__ import annotations

import atexit
import pickle
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import mlflow
from dagster import (
    BetaWarning,
    ConfigurableIOManagerFactory,
    ConfigurableResource,
    DagsterInvariantViolationError,
    Field,
    Noneable,
    InitResourceContext,
    InputContext,
    OutputContext,
    StringSource,
    resource,
)
from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager
from dagster_duckdb import DuckDBResource
from upath import UPath

with warnings.catch_warnings():
    # dagster-mlflow marks its own run hook beta when imported: a warning in every command.
    warnings.simplefilter("ignore", BetaWarning)
    from dagster_mlflow.resources import CONFIG_SCHEMA as MLFLOW_CONFIG_SCHEMA
    from dagster_mlflow.resources import MlFlow
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from pydantic import PrivateAttr

from .assets.common import DUCKDB_POOL
from .classification.decisions import Bars
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
from .classification.registry import create_store, fail_abandoned_runs, load_model, relocate_artifacts


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
             previous_total: int | None = None, budget: RequestBudget | None = None
             ) -> ListingWalk:
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

    def bars(self) -> Bars:
        return Bars(self.min_accuracy, self.min_macro_f1)


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


class ModelStore(ConfigurableResource):
    """Fitted classifiers by registered version: pickles in `folder` in front of the registry.

    Loading a version through MLflow (skops) took 4.4 s at 100,000 postings, its pickle 0.5 s: a
    run that reuses the champion reads the pickle the run that trained it left here. This is the
    one place that knows where fitted models live; point `folder` at shared storage, or replace
    the resource, and nothing else changes.
    """

    folder: str
    keep: int = 3  # versions kept, newest used first

    def _path(self, version: str) -> Path:
        return Path(self.folder) / f"knn-category-v{version.rsplit('/', 1)[1]}.pkl"

    def save(self, version: str, model) -> None:
        path = self._path(version)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with partial.open("wb") as out:
            pickle.dump(model, out, protocol=pickle.HIGHEST_PROTOCOL)
        partial.replace(path)  # a reader never sees half a file
        for old in sorted(path.parent.glob("knn-category-v*.pkl"),
                          key=lambda p: p.stat().st_mtime, reverse=True)[self.keep:]:
            old.unlink(missing_ok=True)

    def load(self, version: str):
        path = self._path(version)
        try:
            with path.open("rb") as stored:
                model = pickle.load(stored)
            path.touch()  # recently used: kept longest
            return model
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            model = load_model(version)  # from the registry, then kept here
            self.save(version, model)
            return model


class RunScopedPickleIOManager(PickledObjectFilesystemIOManager):
    """Dagster's pickle IO manager with each run's output kept apart: an overlapping run (a
    `make run` beside a notebook's `execute_in_process`, which Dagster's run queue does not
    hold back) must not hand its classifier to another run's `imputed_silver`.

    An output goes to `<base>/<asset>.runs/<run_id>` and `<base>/<asset>.latest` names that run
    (replaced in one rename). A step loads its own run's output when its run made one, else the
    latest run's, else the file Dagster's FilesystemIOManager wrote at `<base>/<asset>` (stores
    from before). The newest KEEP_RUNS outputs are kept; older ones are deleted."""

    KEEP_RUNS = 3

    def get_asset_relative_path(self, context: InputContext | OutputContext) -> UPath:
        asset = "/".join(context.asset_key.path)
        if isinstance(context, OutputContext):
            return UPath(run_output_path(asset, context.run_id))
        try:
            run_id = context.step_context.run_id
        except DagsterInvariantViolationError:  # loaded outside a run (tests, a notebook)
            run_id = None
        return UPath(input_path(Path(str(self._base_path)), asset, run_id))

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        super().handle_output(context, obj)
        asset = "/".join(context.asset_key.path)
        record_latest_run(Path(str(self._base_path)), asset, context.run_id, self.KEEP_RUNS)


def run_output_path(asset: str, run_id: str) -> str:
    """Where a run's output of `asset` goes, relative to the IO manager's folder."""
    return f"{asset}.runs/{run_id}"


def input_path(base: Path, asset: str, run_id: str | None) -> str:
    """What a step of run `run_id` loads for `asset` (relative to `base`): its own run's output
    when there is one, else the latest run's, else the pre-run-scoped file `<asset>`."""
    if run_id is not None and (base / run_output_path(asset, run_id)).exists():
        return run_output_path(asset, run_id)
    latest = base / f"{asset}.latest"
    if latest.exists():
        return run_output_path(asset, latest.read_text().strip())
    return asset


def record_latest_run(base: Path, asset: str, run_id: str, keep: int) -> None:
    """Name `run_id` the latest run of `asset` (one rename: a reader sees the old or the new
    name) and delete all but the `keep` newest runs' outputs."""
    pointer = base / f"{asset}.latest"
    staged = pointer.with_name(f"{pointer.name}.{run_id}")
    staged.write_text(run_id)
    staged.replace(pointer)
    runs = base / f"{asset}.runs"
    older = sorted((p for p in runs.iterdir() if p.name != run_id),
                   key=lambda p: p.stat().st_mtime, reverse=True)[keep - 1:]
    for path in older:
        path.unlink(missing_ok=True)


class RunScopedFilesystemIOManager(ConfigurableIOManagerFactory):
    """`model_io_manager`: RunScopedPickleIOManager under `base_dir`."""

    base_dir: str

    def create_io_manager(self, context) -> RunScopedPickleIOManager:
        return RunScopedPickleIOManager(base_dir=self.base_dir)
