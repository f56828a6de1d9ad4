"""The one DuckDB file: opening it for a run, and the copy people read while runs go on.

DuckDB lets one process hold a database file (a read-write connection excludes every other
process, readers included). Runs queue behind each other in Dagster's pool, so when the file is
locked, the holder is another process: a notebook, a `duckdb` CLI, a reader opened with
`read_only=True`. `connect` waits for it a little (a run that just ended may still be closing
the file) and then fails naming it, instead of the 104 s of silent retries of
`DuckDBResource.get_connection`. People read `snapshot.duckdb` instead: a copy of the tables,
written beside the live file at the end of every run and put in place in one rename, so a reader
never blocks a run and never sees half a copy.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import duckdb

# How long a run waits for another process to let go of the file before it fails.
LOCK_WAIT_SECONDS = 20.0
SNAPSHOT_NAME = "snapshot.duckdb"
# Left out of the snapshot: the raw payload history, the largest table and one only the
# pipeline reads (bronze.bronze_quarantine keeps what could not be stored, with its reason).
NOT_IN_SNAPSHOT = {("bronze", "bronze_postings")}


class DuckDBFileLocked(RuntimeError):
    """Another process holds the DuckDB file; the message names it and what to do."""


def lock_holder(message: str) -> str:
    """'process PID (its command line)' from DuckDB's lock error ('... Conflicting lock is held
    in /usr/bin/python3 (PID 1234) by user ...'), or 'another process' when it names none."""
    found = re.search(r"PID (\d+)", message)
    if not found:
        return "another process"
    pid = found.group(1)
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        command = ""
    return f"process {pid} ({command[:160]})" if command else f"process {pid}"


def is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def connect(
    database: str, config: dict | None = None, wait_seconds: float = LOCK_WAIT_SECONDS
) -> duckdb.DuckDBPyConnection:
    """A read-write connection to `database`. While another process holds the file it retries
    every half second for `wait_seconds`, then raises DuckDBFileLocked naming the process."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return duckdb.connect(database, read_only=False, config=config or {})
        except duckdb.IOException as exc:
            if not is_lock_error(exc):
                raise
            if time.monotonic() >= deadline:
                raise DuckDBFileLocked(
                    f"{database} is held by {lock_holder(str(exc))} for more than "
                    f"{wait_seconds:.0f} s: close that connection and run again (read the "
                    f"tables from {Path(database).with_name(SNAPSHOT_NAME)} instead: it never "
                    "blocks a run)"
                ) from None
            time.sleep(0.5)


def write_snapshot(connection: duckdb.DuckDBPyConnection, snapshot: Path) -> list[str]:
    """Copy every table of the connection's database but NOT_IN_SNAPSHOT into `snapshot` (a new
    DuckDB file put in place by one rename); the tables copied, as schema.table."""
    partial = snapshot.with_name(snapshot.name + ".partial")
    partial.unlink(missing_ok=True)
    tables = [
        (schema, table) for schema, table in connection.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = current_database() ORDER BY schema_name, table_name"
        ).fetchall()
        if (schema, table) not in NOT_IN_SNAPSHOT
    ]
    connection.execute("ATTACH ? AS careerpulse_snapshot", [str(partial)])
    try:
        for schema in sorted({schema for schema, _ in tables}):
            connection.execute(f'CREATE SCHEMA careerpulse_snapshot."{schema}"')
        for schema, table in tables:
            connection.execute(f'CREATE TABLE careerpulse_snapshot."{schema}"."{table}" AS '
                               f'FROM "{schema}"."{table}"')
    finally:
        connection.execute("DETACH careerpulse_snapshot")
    os.replace(partial, snapshot)
    return [f"{schema}.{table}" for schema, table in tables]
