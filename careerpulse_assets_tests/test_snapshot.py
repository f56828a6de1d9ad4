"""The snapshot people read: a byte copy of the live file, brought up to date by rewriting only
what changed in the snapshot before last, never under a reader (ops/duckdb_file.py)."""

import filecmp
import os
import shutil
import subprocess
import sys

import duckdb
import numpy as np
import pytest

from careerpulse_assets.ops import duckdb_file
from careerpulse_assets.ops.duckdb_file import copy_changed, write_snapshot

# A reader that opens a file read-only and answers each query it is sent until its input ends.
READER = """
import sys, duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
for line in sys.stdin:
    print(connection.execute(line).fetchall()[0][0], flush=True)
"""
ROWS = "SELECT count(*) FROM t"


def random_bytes(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("before, after", [
    (0, 5_000), (5_000, 0), (5_000, 5_000), (5_000, 12_345), (12_345, 5_000), (4_096, 4_096),
])
def test_copying_what_changed_gives_the_bytes_a_whole_copy_gives(tmp_path, monkeypatch, before,
                                                                   after):
    monkeypatch.setattr(duckdb_file, "COPY_CHUNK_BYTES", 1_024)
    source, target, whole = tmp_path / "source", tmp_path / "target", tmp_path / "whole"
    old = random_bytes(before, 1)
    new = bytearray(random_bytes(after, 1))  # the same bytes where both reach...
    new[100:200] = random_bytes(100, 2)[:len(new[100:200])]  # ...but some
    new[3_000:3_001] = b"\x00" if len(new) > 3_000 else b""
    source.write_bytes(bytes(new))
    target.write_bytes(old)

    assert copy_changed(source, target)

    shutil.copyfile(source, whole)
    assert filecmp.cmp(target, whole, shallow=False)


def test_an_open_snapshot_is_not_written_over_but_copied_whole(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    source.write_bytes(random_bytes(10_000, 1))
    target.write_bytes(random_bytes(10_000, 2))
    kept = target.read_bytes()
    with open(target, "rb"):  # this process reads it (a notebook's connection)
        assert copy_changed(source, target) is False
    assert target.read_bytes() == kept

    # Another process that reads it without DuckDB (a backup's copy, say).
    plain = subprocess.Popen([sys.executable, "-c", "import sys, time\nf = open(sys.argv[1], 'rb')"
                              "\nprint('open', flush=True)\ntime.sleep(60)", str(target)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert plain.stdout.readline().strip() == "open"
        assert copy_changed(source, target) is False
    finally:
        plain.kill()
        plain.wait()
    assert target.read_bytes() == kept
    # Another name for it: a hard link of a backup.
    os.link(target, tmp_path / "backup")
    assert copy_changed(source, target) is False
    assert target.read_bytes() == kept
    os.unlink(tmp_path / "backup")
    assert copy_changed(source, target) is True

    with duckdb.connect(str(tmp_path / "db.duckdb")) as connection:
        connection.execute("CREATE TABLE t AS SELECT 1 AS a")
    reader = subprocess.Popen([sys.executable, "-c", READER, str(tmp_path / "db.duckdb")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "open"  # another process's DuckDB reader
        kept = (tmp_path / "db.duckdb").read_bytes()
        assert copy_changed(source, tmp_path / "db.duckdb") is False
        assert (tmp_path / "db.duckdb").read_bytes() == kept
    finally:
        reader.kill()
        reader.wait()


def test_a_reader_keeps_its_snapshot_while_runs_go_on_and_each_snapshot_is_the_file(tmp_path):
    live, snapshot = tmp_path / "careerpulse.duckdb", tmp_path / "snapshot.duckdb"
    connection = duckdb.connect(str(live))
    connection.execute("CREATE TABLE t AS SELECT range AS a FROM range(1000)")
    write_snapshot(connection, live, snapshot)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(snapshot)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "open"
        seen = snapshot.read_bytes()
        # The file the reader has open, wherever it is renamed or unlinked to.
        (held,) = [f"/proc/{reader.pid}/fd/{fd}" for fd in os.listdir(f"/proc/{reader.pid}/fd")
                   if _same_file(f"/proc/{reader.pid}/fd/{fd}", snapshot)]
        for rows in (50_000, 200_000, 300_000):  # three runs: the reader's file is kept twice
            connection.execute(f"INSERT INTO t SELECT range FROM range({rows})")
            write_snapshot(connection, live, snapshot)
            assert filecmp.cmp(live, snapshot, shallow=False)
            assert open(held, "rb").read() == seen  # never written over
            reader.stdin.write(ROWS + "\n")
            reader.stdin.flush()
            assert reader.stdout.readline().strip() == "1000"  # its view, unchanged
        with duckdb.connect(str(snapshot), read_only=True) as fresh:
            assert fresh.execute(ROWS).fetchall()[0][0] == 551_000
    finally:
        reader.kill()
        reader.wait()
        connection.close()
    # With nobody reading, the next snapshot is the one before last brought up to date.
    before = os.stat(tmp_path / "snapshot.duckdb.next").st_ino
    with duckdb.connect(str(live)) as connection:
        connection.execute("DELETE FROM t WHERE a < 10")
        write_snapshot(connection, live, snapshot)
        assert os.stat(snapshot).st_ino == before
        assert filecmp.cmp(live, snapshot, shallow=False)


def _same_file(a, b) -> bool:
    try:
        first, second = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def test_a_kept_snapshot_that_cannot_be_written_over_is_replaced_by_a_whole_copy(tmp_path,
                                                                                monkeypatch):
    live, snapshot = tmp_path / "careerpulse.duckdb", tmp_path / "snapshot.duckdb"
    with duckdb.connect(str(live)) as connection:
        connection.execute("CREATE TABLE t AS SELECT range AS a FROM range(1000)")
        write_snapshot(connection, live, snapshot)
        write_snapshot(connection, live, snapshot)
        assert (tmp_path / "snapshot.duckdb.next").exists()

        def refused(source, target):  # read-only, another user's: as root a test cannot be
            raise PermissionError(13, "Permission denied", str(target))

        monkeypatch.setattr(duckdb_file, "copy_changed", refused)
        connection.execute("INSERT INTO t SELECT range FROM range(5000)")
        write_snapshot(connection, live, snapshot)
        assert filecmp.cmp(live, snapshot, shallow=False)


def test_a_log_left_beside_the_snapshot_by_a_killed_writer_does_not_spoil_the_next(tmp_path):
    live, snapshot = tmp_path / "careerpulse.duckdb", tmp_path / "snapshot.duckdb"
    with duckdb.connect(str(live)) as connection:
        connection.execute("CREATE TABLE t AS SELECT range AS a FROM range(1000)")
        write_snapshot(connection, live, snapshot)
    # Someone opens the snapshot read-write, changes it and is killed: its log stays.
    writer = subprocess.run(
        [sys.executable, "-c", "import duckdb, os, sys\nc = duckdb.connect(sys.argv[1])\n"
         "c.execute('SET checkpoint_threshold = \\'1GB\\'')\n"
         "c.execute('INSERT INTO t SELECT range FROM range(10)')\nos._exit(9)", str(snapshot)])
    assert writer.returncode == 9 and (tmp_path / "snapshot.duckdb.wal").exists()
    with duckdb.connect(str(live)) as connection:
        connection.execute("INSERT INTO t SELECT range FROM range(500)")
        write_snapshot(connection, live, snapshot)
    with duckdb.connect(str(snapshot), read_only=True) as reader:
        assert reader.execute(ROWS).fetchall()[0][0] == 1_500
