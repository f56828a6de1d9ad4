"""`make run` against a world that refuses: each problem is one clear line and exit status 1."""

import subprocess
import sys
from pathlib import Path

import pytest

from .muse_fixtures import synthetic_postings, write_archive
from .servers import REPO, careerpulse_env


def make_run(home: Path, archive: Path, job: str = "careerpulse_all",
             **settings) -> subprocess.CompletedProcess:
    env = careerpulse_env(home, CAREERPULSE_MUSE_ARCHIVE=str(archive), **settings)
    return subprocess.run([sys.executable, "-m", "careerpulse_assets.ops.run", job], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def archive(tmp_path):
    return write_archive(tmp_path / "archive", synthetic_postings())


# What `make run` must not print: Python warnings (SupersessionWarning among them), stack
# traces, Dagster's event lines and its "Dependencies for step ... Not executing" chatter.
NOISE = ("Warning", "Traceback", "Stack Trace", "Dependencies for step", "Not executing",
         " - dagster - ", "Successfully registered model")


def test_a_bad_setting_is_one_line_without_a_traceback(tmp_path, archive):
    done = make_run(tmp_path / "home", archive, CAREERPULSE_MAX_PAGES="abc")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "careerpulse: CAREERPULSE_MAX_PAGES must be a positive integer, got 'abc'"
    )


def test_a_broken_mlflow_store_is_named_with_what_to_do(tmp_path, archive):
    home = tmp_path / "home"
    home.mkdir()
    (home / "mlflow.db").write_text("not a database")
    done = make_run(home, archive)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"careerpulse: the MLflow store {home / 'mlflow.db'} is not a readable SQLite database "
        "(file is not a database): move it aside (a new one is created; its history is lost) or "
        "restore it from a backup"
    )


@pytest.mark.slow
def test_a_truncated_duckdb_file_is_named_and_a_fresh_one_rebuilds(tmp_path, archive):
    home = tmp_path / "home"
    first = make_run(home, archive)
    assert first.returncode == 0
    # A normal run prints its steps' progress and the summary, and nothing else.
    output = first.stdout + first.stderr
    assert [noise for noise in NOISE if noise in output] == []
    assert "careerpulse: bronze_postings: " in first.stdout
    assert "careerpulse: knn_classifier: logging the training to MLflow" in first.stdout
    assert "\nCareerPulse run " in first.stdout and "succeeded" in first.stdout
    database = home / "careerpulse.duckdb"
    database.write_bytes(database.read_bytes()[:100_000])
    done = make_run(home, archive)
    assert done.returncode == 1
    assert done.stderr.startswith(f"careerpulse: {database} is not a readable DuckDB database")
    assert "move it aside and run again" in done.stderr and "Traceback" not in done.stderr
    database.rename(tmp_path / "broken.duckdb")
    rebuilt = make_run(home, archive, job="careerpulse_ingestion")
    assert rebuilt.returncode == 0, rebuilt.stdout[-3000:] + rebuilt.stderr[-3000:]
    assert database.exists()


def test_a_home_on_a_read_only_filesystem_is_named_at_once(tmp_path, archive):
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(read_only)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    try:
        done = make_run(read_only, archive, DAGSTER_HOME=str(tmp_path / "dagster"))
    finally:
        subprocess.run(["umount", str(read_only)], check=True)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"careerpulse: cannot write to CAREERPULSE_HOME {read_only} (Read-only file system): "
        "point CAREERPULSE_HOME at a writable folder"
    )


@pytest.mark.slow
def test_a_first_run_without_the_api_says_the_offline_way_and_that_nothing_was_written_before(
    tmp_path
):
    from .servers import free_port

    env = careerpulse_env(tmp_path / "home",
                          CAREERPULSE_MUSE_BASE_URL=f"http://127.0.0.1:{free_port()}/api/public")
    done = subprocess.run([sys.executable, "-m", "careerpulse_assets.ops.run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert [noise for noise in NOISE if noise in output] == []
    assert ("step bronze_postings failed: GET http://127.0.0.1:" in done.stdout
            and "failed after retries: ConnectionError: the API cannot be reached from here; to "
                "work offline, point CAREERPULSE_MUSE_ARCHIVE at a folder of saved pages"
            in done.stdout)
    assert "earlier contents" not in done.stdout
    assert "never written yet:" in done.stdout or "nothing was written" in done.stdout
