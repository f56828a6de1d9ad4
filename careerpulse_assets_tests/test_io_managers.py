"""The DuckDB `io_manager`: each way it does better than dagster-duckdb's, on tiny assets of
its own; and the classifier's, which hands a run's classifier to its own steps only."""

import gc

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from dagster import AssetIn, DagsterInstance, asset, materialize
from dagster_duckdb_pandas import DuckDBPandasIOManager

from careerpulse_assets.assets.common import DUCKDB_POOL
from careerpulse_assets.classification.serving import ServingClassifier
from careerpulse_assets.io_managers import DuckDBTables, ServingClassifierIOManager
from careerpulse_assets.resources import QualityBars

ROWS = {"frame": pd.DataFrame({"posting_id": [1, 2], "title": ["Nurse", "Welder"]})}


@asset(pool=DUCKDB_POOL, metadata={"schema": "silver"})
def postings() -> pd.DataFrame:
    return ROWS["frame"]


def run(io_manager, *assets):
    return materialize(list(assets) or [postings], resources={"io_manager": io_manager},
                       instance=DagsterInstance.ephemeral(), raise_on_error=False)


def rows(path) -> list[tuple]:
    gc.collect()  # dagster-duckdb's connection of a failed write lingers until collected
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute("SELECT * FROM silver.postings ORDER BY 1").fetchall()


@pytest.mark.parametrize("io_manager, kept", [(DuckDBPandasIOManager, False), (DuckDBTables, True)])
def test_a_write_that_fails_leaves_the_old_rows(tmp_path, io_manager, kept):
    """dagster-duckdb deletes the old rows, then inserts: a failure between (here a value DuckDB
    cannot store; a kill does the same) left an empty table. One transaction keeps them."""
    database = tmp_path / "t.duckdb"
    ROWS["frame"] = pd.DataFrame({"posting_id": [1, 2], "title": ["Nurse", "Welder"]})
    assert run(io_manager(database=str(database))).success
    ROWS["frame"] = pd.DataFrame({"posting_id": [3, 4], "title": [1 + 2j, 3j]})
    assert not run(io_manager(database=str(database))).success
    assert rows(database) == ([(1, "Nurse"), (2, "Welder")] if kept else [])


def test_an_empty_frame_writes_an_empty_table_and_changed_columns_replace_the_table(tmp_path):
    database = tmp_path / "t.duckdb"
    ROWS["frame"] = pd.DataFrame({"posting_id": [1, 2], "title": ["Nurse", "Welder"]})
    assert run(DuckDBTables(database=str(database))).success
    ROWS["frame"] = ROWS["frame"].head(0)  # dagster-duckdb: skipped, the old rows deleted
    result = run(DuckDBTables(database=str(database)))
    assert result.success and rows(database) == []
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["dagster/row_count"].value == 0
    ROWS["frame"] = pd.DataFrame({"posting_id": [7], "title": ["Cook"], "company": ["Acme"]})
    assert run(DuckDBTables(database=str(database))).success  # dagster-duckdb: INSERT fails
    assert rows(database) == [(7, "Cook", "Acme")]


@asset(pool=DUCKDB_POOL, metadata={"schema": "silver"})
def nested() -> pa.Table:
    kinds = {"categories": pa.list_(pa.string()),
             "category_probabilities": pa.map_(pa.string(), pa.float64())}
    return pa.table({"categories": pa.array([[], []], kinds["categories"]),
                     "category_probabilities": pa.array([None, [("Sales", 1.0)]],
                                                        kinds["category_probabilities"])})


def test_an_arrow_table_keeps_its_declared_nested_types(tmp_path):
    """From pandas, DuckDB guesses a column's type from its first rows: empty lists made a column
    of NULLs, and a dict a STRUCT. imputed_silver's list and map columns are declared in Arrow."""
    database = tmp_path / "t.duckdb"
    assert run(DuckDBTables(database=str(database)), nested).success
    with duckdb.connect(str(database), read_only=True) as connection:
        types = dict(connection.execute("SELECT column_name, data_type FROM "
                                        "information_schema.columns WHERE table_name = 'nested'"
                                        ).fetchall())
    assert types == {"categories": "VARCHAR[]", "category_probabilities": "MAP(VARCHAR, DOUBLE)"}


def test_a_users_asset_takes_only_the_columns_it_names_and_must_be_in_the_pool(tmp_path):
    database = tmp_path / "t.duckdb"
    ROWS["frame"] = pd.DataFrame({"posting_id": [1, 2], "title": ["Nurse", "Welder"]})

    @asset(ins={"postings": AssetIn(metadata={"columns": ["title"]})}, pool=DUCKDB_POOL)
    def titles(postings: pd.DataFrame) -> pd.DataFrame:
        return postings

    @asset(ins={"postings": AssetIn()})
    def outside_the_pool(postings: pd.DataFrame) -> pd.DataFrame:
        return postings

    result = run(DuckDBTables(database=str(database)), postings, titles)
    assert result.success
    assert result.output_for_node("titles").columns.tolist() == ["title"]
    refused = run(DuckDBTables(database=str(database)), postings, outside_the_pool)
    assert not refused.success
    failure = next(e for e in refused.all_events if e.is_step_failure)
    assert "not in the pool `careerpulse_duckdb`" in failure.step_failure_data.error.message


def test_the_classifier_goes_to_the_steps_of_its_own_run_only(tmp_path):
    """Two runs overlapping in one process (a notebook beside `make run`): each step gets its own
    run's classifier; a run that made none gets the registry's champion (none here)."""
    io_manager = ServingClassifierIOManager(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", quality_bars=QualityBars())
    served = {}

    @asset(io_manager_key="classifier_io_manager")
    def knn_classifier(context) -> ServingClassifier:
        return served[context.run.tags["which"]]

    @asset
    def uses(knn_classifier: ServingClassifier) -> str:
        return knn_classifier.version or knn_classifier.outcome.reason

    from .test_checks_direct import serving

    import dataclasses

    served["a"] = dataclasses.replace(serving(), version="models:/m/4")
    served["b"] = dataclasses.replace(serving(), version="models:/m/3")
    resources = {"classifier_io_manager": io_manager}
    instance = DagsterInstance.ephemeral()
    a = materialize([knn_classifier], resources=resources, instance=instance, tags={"which": "a"})
    b = materialize([knn_classifier], resources=resources, instance=instance, tags={"which": "b"})
    assert a.success and b.success
    from careerpulse_assets.io_managers import _SERVED

    assert _SERVED[a.run_id].version == "models:/m/4" and _SERVED[b.run_id].version == "models:/m/3"
    alone = materialize([uses, knn_classifier.to_source_asset()], resources=resources,
                        instance=instance, selection=[uses.key])
    assert alone.success
    assert alone.output_for_node("uses").startswith(
        "no classifier can be trained (no champion in MLflow's registry yet)")
