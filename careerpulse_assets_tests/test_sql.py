import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from careerpulse_assets.ops.duckdb_file import declared_table, transaction_with


def test_a_failing_block_leaves_nothing_behind_and_unregisters_its_frames():
    with duckdb.connect() as connection:
        connection.execute("CREATE TABLE t (x INTEGER)")
        with pytest.raises(duckdb.Error):
            with transaction_with(connection, rows=pa.table({"x": [1, 2]})):
                connection.execute("INSERT INTO t SELECT x FROM rows")
                connection.execute("INSERT INTO t SELECT 'not a number'")
        assert connection.execute("SELECT count(*) FROM t").fetchone()[0] == 0
        with pytest.raises(duckdb.CatalogException):
            connection.execute("SELECT * FROM rows")

        with transaction_with(connection, rows=pa.table({"x": [1, 2]})):
            connection.execute("INSERT INTO t SELECT x FROM rows")
        assert connection.execute("SELECT sum(x) FROM t").fetchone()[0] == 3


def test_a_frame_goes_to_duckdb_with_its_declared_types_only():
    # Every 5th row (what DuckDB samples) has no category: the declared type holds anyway.
    frame = pd.DataFrame({"categories": [[] if i % 5 == 0 else ["Sales"] for i in range(5_000)],
                          "note": [None] * 5_000})
    rows = declared_table(frame, {"categories": pa.list_(pa.string()), "note": pa.string()})
    with duckdb.connect() as connection:
        with transaction_with(connection, rows=rows):
            kinds = connection.execute("DESCRIBE SELECT * FROM rows").fetchall()
            listed = connection.execute("SELECT count(*) FROM rows WHERE len(categories) = 1"
                                        ).fetchone()[0]
        with pytest.raises(TypeError, match="declared"):
            with transaction_with(connection, rows=frame):
                pass
    assert [(name, kind) for name, kind, *_ in kinds] == [("categories", "VARCHAR[]"),
                                                          ("note", "VARCHAR")]
    assert listed == 4_000
    with pytest.raises(ValueError, match="declared"):
        declared_table(frame, {"categories": pa.list_(pa.string())})  # `note` left out
