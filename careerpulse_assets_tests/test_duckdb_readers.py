"""Reading the tables while runs go on: the snapshot never blocks a run; a process holding the
live file makes a run fail soon, naming that process."""

import subprocess
import sys
import time

import duckdb
import pytest
from dagster import DagsterInstance, materialize

from careerpulse_assets.assets.bronze import bronze_postings
from careerpulse_assets.assets.silver import silver_postings
from careerpulse_assets.ops.duckdb_file import SNAPSHOT_NAME, lock_holder
from careerpulse_assets.definitions import build_resources

from .muse_fixtures import synthetic_postings, write_archive
from .servers import wait_for

# A reader that opens a file read-only, says so, and keeps it open until killed.
HOLD = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
print(connection.execute(sys.argv[2]).fetchone()[0], flush=True)
time.sleep(600)
"""
POSTINGS = "SELECT count(*) FROM silver.silver_postings"


def ingest(settings):
    return materialize([bronze_postings, silver_postings], resources=build_resources(settings),
                       instance=DagsterInstance.ephemeral(), raise_on_error=False)


def hold(path, sql: str) -> tuple[subprocess.Popen, str]:
    reader = subprocess.Popen([sys.executable, "-c", HOLD, str(path), sql],
                              stdout=subprocess.PIPE, text=True)
    return reader, reader.stdout.readline().strip()


def test_the_lock_error_names_the_process_that_holds_the_file():
    # A script of two lines, as a notebook's or `python -c`'s: the holder is named on one line.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time\ntime.sleep(60)"])
    try:
        wait_for(lambda: open(f"/proc/{sleeper.pid}/cmdline").read().endswith("sleep(60)\0"), 10,
                 "the process to start", every=0.05)
        message = (f'IO Error: Could not set lock on file "/x/careerpulse.duckdb": Conflicting '
                   f"lock is held in {sys.executable} (PID {sleeper.pid}) by user root.")
        assert lock_holder(message) == f'process {sleeper.pid} ({sys.executable} -c import time time.sleep(60))'
    finally:
        sleeper.kill()
        sleeper.wait()
    assert lock_holder("IO Error: something else") == "another process"


@pytest.mark.slow
def test_a_run_reads_on_while_the_snapshot_is_held_and_fails_soon_naming_a_holder_of_the_live_file(
    tmp_path, settings_for
):
    first, more = synthetic_postings(), synthetic_postings(first_id=200_000)
    archive = write_archive(tmp_path / "archive", first)
    settings = settings_for(archive=archive)
    assert ingest(settings).success
    snapshot = settings.home / SNAPSHOT_NAME
    reader, seen = hold(snapshot, POSTINGS)  # the documented way to read
    try:
        write_archive(tmp_path / "archive", first + more)
        assert ingest(settings).success  # not blocked by the reader
        assert seen == str(len(first))  # the reader kept its view
        with duckdb.connect(str(snapshot), read_only=True) as fresh:
            assert fresh.execute(POSTINGS).fetchone()[0] == len(first) + len(more)
            copied = fresh.execute("FROM duckdb_tables() SELECT schema_name, table_name, "
                                   "estimated_size ORDER BY ALL").fetchall()
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as live:
            assert copied == live.execute("FROM duckdb_tables() SELECT schema_name, table_name, "
                                          "estimated_size ORDER BY ALL").fetchall()
    finally:
        reader.kill()
        reader.wait()

    holder, _ = hold(settings.duckdb_path, POSTINGS)  # what the README used to advise
    try:
        started = time.monotonic()
        result = ingest(settings)
        seconds = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert not result.success and seconds < 30
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.cause.message
    assert f"is held by process {holder.pid} (" in message
    assert f"read the tables from {snapshot} instead" in message
