"""The ways in a Dagster user takes, outside `make`: plain `dagster dev` from the repository's
root (no DAGSTER_HOME), `dg check defs` on the classic layout, and `make ui`'s entry point from
a fresh clone driven through Dagster's GraphQL API."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from careerpulse_assets.ops.settings import Settings

from .graph import query
from .muse_fixtures import synthetic_postings
from .muse_server import serve_muse
from .servers import (
    REPO,
    free_port,
    graphql,
    launch_job,
    location_load_error,
    run_errors,
    runs,
    serving,
    wait_for,
)

# What Dagster reads from the root, and what git is told to ignore there.
ROOT_FILES = ["dagster.yaml", "workspace.yaml", "pyproject.toml", ".gitignore"]


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def fresh_root(tmp_path) -> Path:
    """The repository's root files in a git repository of their own, as a fresh clone has
    them (the package itself is the installed one)."""
    root = tmp_path / "careerpulse"
    root.mkdir()
    for name in ROOT_FILES:
        (root / name).write_text((REPO / name).read_text())
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "root")
    return root


def plain_env(**settings: str) -> dict:
    """The environment of someone who never set DAGSTER_HOME or CAREERPULSE_HOME."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CAREERPULSE_", "DAGSTER_", "MLFLOW_"))}
    return {**env, **settings}


def default_sigint() -> None:
    # As a terminal starts it: Dagster maps SIGTERM to SIGINT's handler, and a process started
    # in the background of a script inherits SIGINT ignored (then SIGTERM is ignored too).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_plain_dagster_dev_from_the_root_queues_runs_shows_make_runs_history_and_leaves_nothing(
    fresh_root, tmp_path
):
    items = synthetic_postings(per_category=60, unlabelled=30)  # 210 postings, 11 pages
    with serve_muse(items) as (stub, base_url):
        env = plain_env(CAREERPULSE_MUSE_BASE_URL=base_url)
        # A `make run` killed in ingestion, from the root with the defaults: its run and its
        # pool slot are left in .careerpulse/dagster.
        stub.delay_seconds = 0.3
        killed = subprocess.Popen(
            [sys.executable, "-m", "careerpulse_assets.ops.run", "careerpulse_ingestion"],
            cwd=fresh_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: len(stub.requests) >= 4, 120, "make run to be crawling", every=0.05)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        stub.delay_seconds = 0

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with (tmp_path / "dagster-dev.log").open("w") as log:
            dev = subprocess.Popen(
                [str(Path(sys.executable).with_name("dagster")), "dev", "-h", "127.0.0.1",
                 "-p", str(port)],
                cwd=fresh_root, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=default_sigint,
            )
            try:
                wait_for(lambda: graphql(url, "{ version }"), 180, "dagster dev to answer")
                settings = graphql(url, "{ instance { runQueueConfig { maxConcurrentRuns } } }")
                assert settings["instance"]["runQueueConfig"]["maxConcurrentRuns"] == 1
                # make run's history is there, and run monitoring fails the dead run (the run
                # launcher's worker check), which frees its slot and the run queue.
                (dead,) = [r["runId"] for r in runs(url)]
                wait_for(lambda: {r["runId"]: r["status"] for r in runs(url)}[dead] == "FAILURE",
                         120, "run monitoring to fail the killed make run")
                first, second = launch_job(url, "careerpulse_ingestion"), launch_job(
                    url, "careerpulse_ingestion")
                most_started = 0

                def both_done():
                    nonlocal most_started
                    statuses = {r["runId"]: r["status"] for r in runs(url)}
                    most_started = max(most_started, sum(
                        statuses[run] in ("STARTING", "STARTED") for run in (first, second)))
                    done = all(statuses[run] in ("SUCCESS", "FAILURE", "CANCELED")
                               for run in (first, second))
                    return done and statuses

                statuses = wait_for(both_done, 300, "both runs to finish", every=0.5)
                assert statuses[first] == "SUCCESS", run_errors(url, first)
                assert statuses[second] == "SUCCESS", run_errors(url, second)
                assert most_started == 1  # the second queued behind the first
            finally:
                stopping = time.monotonic()
                dev.send_signal(signal.SIGTERM)
                try:
                    dev.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(dev.pid, signal.SIGKILL)
                    dev.wait()
                stopped_in = time.monotonic() - stopping
    assert dev.returncode is not None and stopped_in < 30, (tmp_path / "dagster-dev.log").read_text()[-3000:]
    # Storage where `make` keeps it by default; nothing left that git would list.
    assert (fresh_root / ".careerpulse" / "dagster" / "history" / "runs.db").exists()
    assert git(fresh_root, "status", "--porcelain", "--untracked-files=all") == ""
    assert not list(fresh_root.glob(".tmp_dagster_home_*"))
    counts = query(Settings(home=fresh_root / ".careerpulse"),
                   "SELECT count(*) AS n, count(DISTINCT posting_id) AS d FROM bronze.bronze_postings")
    assert counts.iloc[0].tolist() == [len(items)] * 2


@pytest.mark.slow
def test_dg_check_defs_accepts_the_project():
    done = subprocess.run([str(Path(sys.executable).with_name("dg")), "check", "defs"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "All definitions loaded successfully" in done.stdout + done.stderr


def bronze_postings(home: Path) -> int:
    return int(query(Settings(home=home), "SELECT count(DISTINCT posting_id) AS n "
                                          "FROM bronze.bronze_postings")["n"][0])


@pytest.mark.slow
def test_make_ui_reads_a_relative_archive_where_it_was_started_and_reloads_an_edited_env(
    fresh_root, tmp_path
):
    """The README's offline way in the UI: `CAREERPULSE_MUSE_ARCHIVE=../shared/data/muse make
    ui` from a fresh clone, a run launched through Dagster's GraphQL API; then `.env` edited
    and *Reload definitions*."""
    from dagster import DagsterRunStatus
    from dagster_graphql import DagsterGraphQLClient, ReloadRepositoryLocationStatus

    from .muse_fixtures import write_archive

    first = synthetic_postings()  # 54 postings
    write_archive(tmp_path / "archive", first)
    write_archive(tmp_path / "more", first + synthetic_postings(first_id=200_000, seed=8))
    port, mlflow_port = free_port(), free_port()
    env = plain_env(CAREERPULSE_MUSE_ARCHIVE="../archive", DAGSTER_PORT=str(port),
                    MLFLOW_PORT=str(mlflow_port))
    home = fresh_root / ".careerpulse"

    def launch(client) -> str:
        run_id = client.submit_job_execution("careerpulse_ingestion")
        return wait_for(lambda: (s := client.get_run_status(run_id)) in (
            DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) and (run_id, s), 300,
            "the run to finish", every=0.5)

    with serving([sys.executable, "-m", "careerpulse_assets.ops.serve", "ui"], fresh_root, env,
                 tmp_path / "ui.log", port) as url:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        run_id, status = launch(client)
        assert status == DagsterRunStatus.SUCCESS, run_errors(url, run_id)
        assert bronze_postings(home) == 54

        # An edited .env takes effect at *Reload definitions* (a variable in .env wins).
        (fresh_root / ".env").write_text("CAREERPULSE_MUSE_ARCHIVE=../more\n")
        reloaded = client.reload_repository_location("careerpulse")
        assert reloaded.status == ReloadRepositoryLocationStatus.SUCCESS, reloaded.message
        run_id, status = launch(client)
        assert status == DagsterRunStatus.SUCCESS, run_errors(url, run_id)
        assert bronze_postings(home) == 108

        # Without the archive and without a reachable API, the failed run says the offline way.
        nowhere = f"http://127.0.0.1:{free_port()}"
        (fresh_root / ".env").write_text(
            f"CAREERPULSE_MUSE_ARCHIVE=\nCAREERPULSE_MUSE_BASE_URL={nowhere}\n")
        assert client.reload_repository_location("careerpulse").status == (
            ReloadRepositoryLocationStatus.SUCCESS)
        run_id, status = launch(client)
        assert status == DagsterRunStatus.FAILURE
        assert any("failed after retries: ConnectionError: the API cannot be reached from here; "
                   "to work offline, point CAREERPULSE_MUSE_ARCHIVE at a folder of saved pages"
                   in error for error in run_errors(url, run_id)), run_errors(url, run_id)

        # What the servers took at their start cannot change by a reload: it says so.
        (fresh_root / ".env").write_text(
            f"CAREERPULSE_MUSE_ARCHIVE=../more\nDAGSTER_PORT={port + 1}\n")
        refused = client.reload_repository_location("careerpulse")
        assert refused.status == ReloadRepositoryLocationStatus.FAILURE
        said = location_load_error(url)
        assert f"changed since the servers started: DAGSTER_PORT: {port} -> {port + 1}" in said
        assert "stop `make ui` / `make serve` and start it again" in said
    # Nothing of it lands in the clone outside the git-ignored .careerpulse/ (and .env).
    assert git(fresh_root, "status", "--porcelain", "--untracked-files=all") == ""
