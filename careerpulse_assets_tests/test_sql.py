import duckdb
import pandas as pd
import pytest

from careerpulse_assets.ops.duckdb_file import transaction_with


def test_a_failing_block_leaves_nothing_behind_and_unregisters_its_frames():
    with duckdb.connect() as connection:
        connection.execute("CREATE TABLE t (x INTEGER)")
        with pytest.raises(duckdb.Error):
            with transaction_with(connection, rows=pd.DataFrame({"x": [1, 2]})):
                connection.execute("INSERT INTO t SELECT x FROM rows")
                connection.execute("INSERT INTO t SELECT 'not a number'")
        assert connection.execute("SELECT count(*) FROM t").fetchone()[0] == 0
        with pytest.raises(duckdb.CatalogException):
            connection.execute("SELECT * FROM rows")

        with transaction_with(connection, rows=pd.DataFrame({"x": [1, 2]})):
            connection.execute("INSERT INTO t SELECT x FROM rows")
        assert connection.execute("SELECT sum(x) FROM t").fetchone()[0] == 3
