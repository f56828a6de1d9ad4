"""The one DuckDB file: opening it for a run, a transaction over in-memory frames, and the copy
people read while runs go on.

DuckDB lets one process hold a database file (a read-write connection excludes every other
process, readers included). Runs queue behind each other in Dagster's pool, so when the file is
locked, the holder is another process: a notebook, a `duckdb` CLI, a reader opened with
`read_only=True`. `connect` waits for it a little (a run that just ended may still be closing
the file) and then fails naming it, instead of the 104 s of silent retries of
`DuckDBResource.get_connection`. People read `snapshot.duckdb` instead: a copy of the file, made
beside it at the end of every run and put in place in one rename, so a reader never blocks a run
and never sees half a copy. The snapshot before the last is kept beside it (`snapshot.duckdb.next`,
the next one) and brought up to date by rewriting only the parts of it that differ from the
file, when nothing may be reading it (`write_snapshot`).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb
import pandas as pd
import pyarrow as pa

# How long a run waits for another process to let go of the file before it fails.
LOCK_WAIT_SECONDS = 20.0
SNAPSHOT_NAME = "snapshot.duckdb"


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
        # One line: a `python -c` script's newlines would cut the message that follows.
        command = " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                           .decode(errors="replace").split())
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


T = TypeVar("T")


def read_if_free(database: Path, read: Callable[[duckdb.DuckDBPyConnection], T]) -> T | None:
    """`read(connection)` over a read-only connection to `database`, opened only if no process
    holds the file, and closed at once: None when one does (a run: it is not kept waiting)
    or the file cannot be read. For a look from outside the runs (the sensor)."""
    try:
        with duckdb.connect(str(database), read_only=True) as connection:
            return read(connection)
    except duckdb.Error:
        return None


def write_snapshot(connection: duckdb.DuckDBPyConnection, database: Path, snapshot: Path) -> None:
    """Copy `database`, which `connection` holds read-write, to `snapshot`: checkpointed first
    (the write-ahead log merged into the file) so the file alone is the whole database, copied
    while the held connection keeps every other writer out, then put in place in one rename.
    The snapshot it replaces is kept as `<snapshot>.next`, the next call's copy: brought up to
    date by `copy_changed` when no process has it open, else copied whole.

    A byte copy, not a copy of the tables through SQL: at 100,000 postings (a 582 MB file) 2.7 s
    against 42-64 s for CREATE TABLE ... AS of every table but the raw payloads. Only what
    changed: at 400,000 postings (a 1.77 GB file) an incremental run's copy took 3.9 s and the
    rename 1.2 s more (freeing the replaced file's blocks), 5.1 s of a 31 s run (issue 29).
    The cost is a third copy of the file on disk.
    """
    connection.execute("CHECKPOINT")
    following = snapshot.with_name(snapshot.name + ".next")
    try:
        updated = following.exists() and copy_changed(database, following)
    except OSError:  # not writable here, say: a whole new copy instead
        updated = False
    if not updated:
        following.unlink(missing_ok=True)  # a reader may hold it: a new file, not written over
        shutil.copyfile(database, following)
    kept = snapshot.with_name(snapshot.name + ".kept")
    kept.unlink(missing_ok=True)  # left by a run killed between the renames below
    if snapshot.exists() and not snapshot.is_symlink():
        try:
            os.link(snapshot, kept)
        except OSError:
            pass  # a file system without hard links: the next copy is whole
    # A write-ahead log beside the snapshot is someone's who opened it read-write and was
    # killed: DuckDB would replay it into the new snapshot and refuse every reader.
    snapshot.with_name(snapshot.name + ".wal").unlink(missing_ok=True)
    os.replace(following, snapshot)
    if kept.exists():
        os.replace(kept, following)


# The parts `copy_changed` compares: large enough that Python's loop costs nothing beside the
# reads, small enough that a changed block rewrites little (DuckDB writes 256 KiB blocks).
COPY_CHUNK_BYTES = 4 * 1024 * 1024


def copy_changed(source: Path, target: Path) -> bool:
    """Make `target` a byte copy of `source` by rewriting only the chunks of COPY_CHUNK_BYTES that
    differ (and truncating or extending it), holding an exclusive lock on it meanwhile, on disk
    (fsync) when it returns True. False, with `target` untouched, when anything may read it: a
    descriptor open on it in a process whose descriptors this one can see (`open_elsewhere`:
    this process and its user's), a DuckDB connection's lock in any process (fcntl), another
    name for it (a hard link or a symlink: a backup's copy, say); or where that cannot be told
    (no /proc, no fcntl). Raises OSError when it cannot be opened for writing."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        return False
    if target.is_symlink():
        return False
    with open(target, "r+b") as out:
        if os.fstat(out.fileno()).st_nlink != 1 or open_elsewhere(target, out.fileno()):
            return False
        try:
            fcntl.lockf(out, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        with open(source, "rb") as into:
            wanted, held = bytearray(COPY_CHUNK_BYTES), bytearray(COPY_CHUNK_BYTES)
            offset = 0
            while read := into.readinto(wanted):
                there = out.readinto(held)
                # Whole chunks compared as they are: a slice would copy 4 MiB twice.
                same = there == read and (wanted == held if read == COPY_CHUNK_BYTES
                                          else wanted[:read] == held[:read])
                if not same:
                    out.seek(offset)
                    out.write(memoryview(wanted)[:read])
                offset += read
        out.truncate(offset)
        out.flush()
        # Its blocks were written over, not new: on disk before the rename publishes them.
        os.fsync(out.fileno())
    return True


def open_elsewhere(path: Path, own: int) -> bool:
    """Whether a descriptor other than this process's `own` is open on `path`, in any process
    whose descriptors this one can read (/proc/<pid>/fd: its user's); True when /proc cannot be
    read. Another user's DuckDB readers show in fcntl (`copy_changed`)."""
    inode = os.stat(path)
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return True
    me = str(os.getpid())
    for pid in pids:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # ended meanwhile, or another user's
        for name in descriptors:
            if pid == me and name == str(own):
                continue
            try:
                found = os.stat(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue  # closed meanwhile
            if (found.st_dev, found.st_ino) == (inode.st_dev, inode.st_ino):
                return True
    return False


def one_row(connection: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> dict:
    """The one row `sql` returns, as {column name: value}."""
    cursor = connection.execute(sql, params or {})
    return dict(zip([column[0] for column in cursor.description], cursor.fetchone(), strict=True))


@contextmanager
def transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """The block in one transaction: committed when it ends, rolled back when it raises."""
    connection.execute("BEGIN TRANSACTION")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def declared_table(frame: pd.DataFrame, types: Mapping[str, pa.DataType]) -> pa.Table:
    """`frame` as an Arrow table whose columns are `types`' names, in that order, of exactly
    those types: what every frame handed to DuckDB goes through.

    DuckDB types a pandas column of Python objects from a sample of its rows: in issue 29 a
    silver slice of 5,000 rows whose sampled rows (every 5th) all listed no category made
    `categories` NULL[], and the merge failed on the first row that listed one ("Failed to cast
    value: Unimplemented type for cast (VARCHAR -> NULL)"). Declared types leave nothing to guess.
    Raises ValueError when the frame's columns are not `types`' names (a column left out would be
    written as NULLs), pyarrow's ArrowInvalid / ArrowTypeError when a value does not fit."""
    if set(frame.columns) != set(types):
        raise ValueError(f"columns {sorted(map(str, frame.columns))} are not the declared "
                         f"{sorted(types)}")
    return pa.Table.from_pandas(frame[list(types)], schema=pa.schema(list(types.items())),
                                preserve_index=False)


@contextmanager
def transaction_with(
    connection: duckdb.DuckDBPyConnection, **tables: pa.Table
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Register Arrow `tables` as views by name and run the block in one transaction: all or
    nothing. Raises TypeError for a pandas frame (its types would be guessed from a sample of
    rows: make it a `declared_table`)."""
    with registered(connection, **tables), transaction(connection):
        yield connection


@contextmanager
def registered(
    connection: duckdb.DuckDBPyConnection, **tables: pa.Table
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Register Arrow `tables` as views by name for the block (in whatever transaction the
    caller holds). Raises TypeError for a pandas frame (make it a `declared_table`)."""
    for name, table in tables.items():
        if not isinstance(table, pa.Table):
            raise TypeError(f"{name}: hand DuckDB an Arrow table of declared types "
                            f"(declared_table), not {type(table).__name__}")
    for name, table in tables.items():
        connection.register(name, table)
    try:
        yield connection
    finally:
        for name in tables:
            connection.unregister(name)
