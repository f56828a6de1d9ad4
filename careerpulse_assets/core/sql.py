"""A DuckDB transaction over in-memory frames, shared by the bronze and silver writers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pandas as pd
import pyarrow as pa


@contextmanager
def transaction_with(
    connection: duckdb.DuckDBPyConnection, **frames: pd.DataFrame | pa.Table
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Register `frames` (pandas or Arrow) as views by name and run the block in one
    transaction: all or nothing."""
    for name, frame in frames.items():
        connection.register(name, frame)
    try:
        connection.execute("BEGIN TRANSACTION")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    finally:
        for name in frames:
            connection.unregister(name)
