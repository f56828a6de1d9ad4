"""The ways in a Dagster user takes, outside `make`: plain `dagster dev` from the repository's
root (no DAGSTER_HOME), `dg check defs` on the classic layout, and `make ui`'s entry point from
a fresh clone driven through Dagster's GraphQL API."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
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
    http_status,
    launch_job,
    location_load_error,
    port_free,
    processes_of,
    run_errors,
    runs,
    serving_process,
    start_sensor,
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
def test_plain_dagster_dev_from_the_root_recovers_killed_runs_and_queues_runs_and_leaves_nothing(
    fresh_root, tmp_path
):
    """Someone who never set DAGSTER_HOME runs `dagster dev` in the clone's root, turns the
    sensor on, and its run's process is SIGKILLed mid-crawl; then `make run` from the same root
    is SIGKILLed too. Both dead runs are failed and give their slot back (the code server sees
    its run's process gone; run monitoring asks the run launcher about `make run`'s), runs
    queue one at a time behind each other, every posting ends up stored once, and nothing is
    left in the clone."""
    from careerpulse_assets.ops.recovery import WORKER_TAG

    items = synthetic_postings(per_category=100, unlabelled=30)  # 330 postings, 17 pages
    home = fresh_root / ".careerpulse"
    with serve_muse(items) as (stub, base_url):
        env = plain_env(CAREERPULSE_MUSE_BASE_URL=base_url)
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

                # The sensor's run, killed mid-crawl: the code server fails it.
                stub.delay_seconds = 1.0
                start_sensor(url, "muse_new_pages_sensor")
                sensor_run = wait_for(
                    lambda: [r for r in runs(url) if WORKER_TAG in r["tags"] and r["tags"].get(
                        "dagster/sensor_name") == "muse_new_pages_sensor"], 180,
                    "the sensor's run to start")[0]
                crawled = len(stub.requests)
                wait_for(lambda: len(stub.requests) >= crawled + 3, 60, "the run to be crawling")
                os.kill(int(sensor_run["tags"][WORKER_TAG].rsplit(":", 2)[1]), signal.SIGKILL)
                wait_for(lambda: status_of(url, sensor_run["runId"]) == "FAILURE", 120,
                         "the killed sensor run to be failed")

                # `make run` from the root, killed in ingestion: the same instance (its run shows
                # here), and run monitoring fails it, which frees its slot and the run queue.
                stub.delay_seconds = 0.3
                crawled = len(stub.requests)
                killed = subprocess.Popen(
                    [sys.executable, "-m", "careerpulse_assets.ops.run", "careerpulse_ingestion"],
                    cwd=fresh_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_for(lambda: len(stub.requests) >= crawled + 3, 120,
                         "make run to be crawling", every=0.05)
                killed.send_signal(signal.SIGKILL)
                killed.wait()
                stub.delay_seconds = 0
                (dead,) = [r["runId"] for r in runs(url) if r["runId"] != sensor_run["runId"]
                           and "dagster/sensor_name" not in r["tags"]]
                wait_for(lambda: status_of(url, dead) == "FAILURE", 120,
                         "run monitoring to fail the killed make run")

                first, second = launch_job(url, "careerpulse_all"), launch_job(
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
    assert (home / "dagster" / "history" / "runs.db").exists()
    assert git(fresh_root, "status", "--porcelain", "--untracked-files=all") == ""
    assert not list(fresh_root.glob(".tmp_dagster_home_*"))
    # Every posting once, in bronze and through the graph.
    counts = query(Settings(home=home),
                   "SELECT (SELECT count(*) FROM bronze.bronze_postings) AS n, "
                   "(SELECT count(DISTINCT posting_id) FROM bronze.bronze_postings) AS d, "
                   "(SELECT count(*) FROM silver.imputed_silver) AS i")
    assert counts.iloc[0].tolist() == [len(items)] * 3


def status_of(url: str, run_id: str) -> str:
    return {r["runId"]: r["status"] for r in runs(url)}[run_id]


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
def test_make_ui_reads_a_relative_archive_where_it_was_started_links_mlflow_and_dies_whole(
    fresh_root, tmp_path
):
    """The README's offline way in the UI: `CAREERPULSE_MUSE_ARCHIVE=../shared/data/muse make
    ui` from a fresh clone, runs launched through Dagster's GraphQL API; the classifier's page
    links its run in the MLflow UI served beside Dagster; `.env` edited and *Reload
    definitions*; then the whole process group SIGKILLed, and nothing of it stays."""
    from dagster import DagsterRunStatus
    from dagster_graphql import DagsterGraphQLClient, ReloadRepositoryLocationStatus

    from .muse_fixtures import write_archive

    first = synthetic_postings()  # 54 postings
    write_archive(tmp_path / "archive", first)
    write_archive(tmp_path / "more", first + synthetic_postings(first_id=200_000, seed=8))
    port, mlflow_port = free_port(), free_port()
    mlflow = f"http://127.0.0.1:{mlflow_port}"
    env = plain_env(CAREERPULSE_MUSE_ARCHIVE="../archive", DAGSTER_PORT=str(port),
                    MLFLOW_PORT=str(mlflow_port))
    home = fresh_root / ".careerpulse"

    def launch(client, job: str = "careerpulse_ingestion") -> str:
        run_id = client.submit_job_execution(job)
        return wait_for(lambda: (s := client.get_run_status(run_id)) in (
            DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) and (run_id, s), 300,
            "the run to finish", every=0.5)

    with serving_process([sys.executable, "-m", "careerpulse_assets.ops.serve", "ui"],
                         fresh_root, env, tmp_path / "ui.log", port) as server:
        url = server.url
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        run_id, status = launch(client, "careerpulse_all")
        assert status == DagsterRunStatus.SUCCESS, run_errors(url, run_id)
        assert bronze_postings(home) == 54

        # The classifier's page links its MLflow run, in the MLflow UI beside Dagster.
        wait_for(lambda: http_status(f"{mlflow}/health") == 200, 120, "the MLflow UI")
        data = graphql(url, '{ assetNodes(assetKeys: [{path: ["knn_classifier"]}]) { '
                            "assetMaterializations(limit: 1) { metadataEntries { label "
                            "... on UrlMetadataEntry { url } } } } }")
        entries = data["assetNodes"][0]["assetMaterializations"][0]["metadataEntries"]
        (link,) = [e["url"] for e in entries if e["label"] == "mlflow_run"]
        assert link.startswith(f"{mlflow}/#/experiments/")
        assert http_status(link) == 200
        with urllib.request.urlopen(f"{mlflow}/api/2.0/mlflow/runs/get?run_id="
                                    f"{link.rsplit('/', 1)[1]}", timeout=10) as answer:
            assert json.load(answer)["run"]["info"]["status"] == "FINISHED"

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

        # The hardest way to stop it: SIGKILL of its process group (the OOM killer, kill -9,
        # a supervisor's fallback). Nothing of it may stay, and both ports must be free.
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=60)
    # A killed process may take a moment to close its sockets (it is freeing its memory).
    wait_for(lambda: not processes_of(home) and port_free(port) and port_free(mlflow_port),
             20, "every process of make ui to end and both ports to be free", every=0.2)
    # Nothing of it lands in the clone outside the git-ignored .careerpulse/ (and .env).
    assert git(fresh_root, "status", "--porcelain", "--untracked-files=all") == ""
