"""How the assets' values are stored: DuckDB tables, and the classifier in MLflow's registry.

`DuckDBTables` (the default `io_manager`) is dagster-duckdb's `DuckDBPandasIOManager`: an asset
that returns a frame has it written to the table of its name in the schema its metadata names,
and any asset can take any CareerPulse table as a pandas DataFrame input, whole or only some
columns (`AssetIn(metadata={"columns": [...]})`). The incremental tables (bronze page by page,
silver merged, imputed_silver's changed postings replaced) are written by their assets
(crash-safe, a transaction per page, slice or run) and are loaded through it all the same. It does better than dagster-duckdb in four things, each tested
(careerpulse_assets_tests/test_io_managers.py):

- the old rows are replaced and the new ones written in one transaction (dagster-duckdb deletes,
  then inserts, each on its own: a crash between left the table empty);
- an empty frame writes an empty table (dagster-duckdb skips it and leaves the old rows deleted
  or no table at all), and a table whose columns changed is replaced, not appended to;
- an Arrow table is written with its declared types (a list or map column whose first rows are
  empty would be guessed as something else from pandas);
- it opens the file as every CareerPulse step does (waits for another process a little, then
  names it: `ops/duckdb_file.py`), and only from steps in the pool `careerpulse_duckdb`, which
  dagster.yaml limits to one step at a time: a step outside it fails saying so, instead of
  fighting a running step for the file.

`ServingClassifierIOManager` hands `knn_classifier`'s value (the model in service, its
evaluation, calibration and gate verdict) to the steps of the run that made it, in memory (the
run's steps share one process: the in-process executor); a step of any other run gets the
champion from MLflow's registry, rebuilt from what the registry keeps of it. Nothing is stored
beside the registry: see docs/classifier.md for the measurement that decided it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pandas as pd
import pyarrow as pa
from dagster import (
    ConfigurableIOManager,
    DagsterInvariantViolationError,
    InputContext,
    OutputContext,
)
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasIOManager, DuckDBPandasTypeHandler

from .assets.common import DUCKDB_POOL, table_metadata
from .classification.serving import ServingClassifier
from .ops.duckdb_file import connect, transaction
from .resources import QualityBars


class PoolRequired(DagsterInvariantViolationError):
    """A step outside the pool `careerpulse_duckdb` asked for the DuckDB file."""


def _require_pool(context: InputContext | OutputContext) -> None:
    """The file takes one process at a time: only steps of the pool, which dagster.yaml limits to
    one step at a time across runs, may open it. Contexts built outside a run (a test, a
    notebook) have no step and pass."""
    try:
        op = context.op_def
    except (DagsterInvariantViolationError, AttributeError):
        return
    if op is None or getattr(op, "pool", None) == DUCKDB_POOL:
        return
    raise PoolRequired(
        f"{op.name} reads or writes careerpulse.duckdb through the `io_manager` but is not in the "
        f"pool `{DUCKDB_POOL}`: declare it with `pool=\"{DUCKDB_POOL}\"` (@asset, @asset_check), "
        "so it never holds the file while a CareerPulse step does (README, 'Your own assets')")


class _DuckDBFile(DuckDbClient):
    """dagster-duckdb's client, opening the file as every CareerPulse step does, in the pool only;
    what a step writes is one transaction."""

    @staticmethod
    def delete_table_slice(context: OutputContext, table_slice: TableSlice, connection) -> None:
        # Nothing to delete first: the handler replaces the whole table in the same transaction
        # (no CareerPulse table is partitioned).
        return None

    @staticmethod
    @contextmanager
    def connect(context, table_slice: TableSlice) -> Iterator:
        _require_pool(context)
        config = {"custom_user_agent": "dagster", **context.resource_config["connection_config"]}
        connection = connect(context.resource_config["database"], config)
        try:
            if not isinstance(context, OutputContext):
                yield connection
                return
            with transaction(connection):
                yield connection
        finally:
            connection.close()


class _FramesAndArrow(DuckDBPandasTypeHandler):
    """A pandas frame or an Arrow table (written with the types its schema declares) becomes the
    whole table, empty or not; a table is loaded as a pandas frame, or as Arrow when asked."""

    def handle_output(self, context: OutputContext, table_slice: TableSlice,
                      obj: pd.DataFrame | pa.Table, connection) -> dict:
        name = f"{table_slice.schema}.{table_slice.table}"
        if isinstance(obj, pd.DataFrame):
            # A user's own frame has no declared types: pyarrow reads every value to type a
            # column, where DuckDB would guess from a sample of rows (issue 29: a sample of
            # empty lists made a column NULL[]). CareerPulse's own tables arrive as Arrow.
            obj = pa.Table.from_pandas(obj, preserve_index=False)
        connection.register("careerpulse_output", obj)
        try:
            connection.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM careerpulse_output")
        finally:
            connection.unregister("careerpulse_output")
        return table_metadata(connection, name)

    def load_input(self, context: InputContext, table_slice: TableSlice, connection):
        select = DuckDbClient.get_select_statement(table_slice)
        if context.dagster_type.typing_type is pa.Table:
            return connection.sql(select).to_arrow_table()
        return connection.execute(select).fetchdf()

    @property
    def supported_types(self) -> Sequence[type]:
        return [pd.DataFrame, pa.Table]


class DuckDBTables(DuckDBPandasIOManager):
    """`io_manager`: every CareerPulse table, in and out, as pandas frames (Arrow tables too)."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [_FramesAndArrow()]

    @staticmethod
    def default_load_type() -> type:
        return pd.DataFrame

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=_DuckDBFile(), database=self.database, schema=self.schema_,
            type_handlers=self.type_handlers(), default_load_type=self.default_load_type(),
            io_manager_name="DuckDBTables",
        )


# The classifier each run served, for the run's later steps (same process: in-process executor).
# A few runs at most: a notebook's runs one after another in one process.
_SERVED: OrderedDict[str, ServingClassifier] = OrderedDict()
_KEEP_RUNS = 2


class ServingClassifierIOManager(ConfigurableIOManager):
    """`classifier_io_manager`: `knn_classifier`'s value for the steps of its own run (in memory);
    for a step of another run (imputed_silver or a check materialised alone), the champion as
    MLflow's registry keeps it, judged against the run's bars (`QualityBars.for_run`)."""

    tracking_uri: str
    quality_bars: QualityBars

    def handle_output(self, context: OutputContext, obj: ServingClassifier) -> None:
        _SERVED[context.run_id] = obj
        while len(_SERVED) > _KEEP_RUNS:
            _SERVED.popitem(last=False)

    def load_input(self, context: InputContext) -> ServingClassifier:
        try:
            run_id, run_config = context.step_context.run_id, context.step_context.run_config
        except DagsterInvariantViolationError:  # loaded outside a run (a test, a notebook)
            run_id, run_config = None, {}
        if run_id in _SERVED:
            return _SERVED[run_id]
        import mlflow

        from .classification.service import serve_champion

        mlflow.set_tracking_uri(self.tracking_uri)
        return serve_champion(self.quality_bars.for_run(run_config),
                              self.quality_bars.min_precision)
