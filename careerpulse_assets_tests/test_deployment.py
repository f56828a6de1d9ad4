"""The shared deployment: Dagster's instance and MLflow in a real PostgreSQL, and `make serve`.
(`make ui` with MLflow beside Dagster: test_entry_points.py.)"""

import signal
import subprocess
import sys
import time

import pytest

from .graph import query
from .muse_fixtures import synthetic_postings, write_archive
from .muse_server import serve_muse
from .postgres import missing_reason, throwaway_cluster
from .servers import REPO, careerpulse_env, free_port, graphql, http_status, wait_for

needs_postgres = pytest.mark.skipif(missing_reason() is not None, reason=missing_reason() or "")


@pytest.fixture(scope="module")
def cluster():
    with throwaway_cluster() as started:
        yield started


def sql(url: str, statement: str) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetchall()


@needs_postgres
@pytest.mark.slow
def test_make_run_keeps_runs_events_and_models_in_postgres_and_no_password_shows(
    tmp_path, cluster
):
    home = tmp_path / "home"
    env = careerpulse_env(
        home, CAREERPULSE_MUSE_ARCHIVE=str(write_archive(tmp_path / "archive", synthetic_postings())),
        DAGSTER_POSTGRES_URL=cluster.url("dagster"), MLFLOW_TRACKING_URI=cluster.url("mlflow"),
    )
    (home / "dagster" / "dagster.yaml").unlink()  # written by `make run` itself
    done = subprocess.run([sys.executable, "-m", "careerpulse_assets.ops.run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert cluster.password not in done.stdout + done.stderr
    assert "postgresql://careerpulse:***@127.0.0.1" in done.stdout
    run_id = done.stdout.split("CareerPulse run ")[1].split(":")[0]

    assert sql(cluster.url("dagster"), f"SELECT status FROM runs WHERE run_id = '{run_id}'") == [
        ("SUCCESS",)]
    events = sql(cluster.url("dagster"), f"SELECT count(*) FROM event_logs WHERE run_id = '{run_id}'")
    assert events[0][0] > 50
    assert sql(cluster.url("mlflow"), "SELECT name FROM registered_models") == [
        ("careerpulse-knn-category",)]
    assert sql(cluster.url("mlflow"), "SELECT alias FROM registered_model_aliases ORDER BY alias") == [
        ("challenger",), ("champion",)]
    assert sql(cluster.url("mlflow"), "SELECT count(*) FROM metrics")[0][0] > 10
    # Nothing of the instance or MLflow in local SQLite.
    assert not (home / "mlflow.db").exists()
    assert not list((home / "dagster").rglob("*.db"))
    assert "postgres_url" in (home / "dagster" / "dagster.yaml").read_text()
    assert query_count(home) == 54


def query_count(home) -> int:
    from careerpulse_assets.ops.settings import Settings

    return int(query(Settings(home=home), "SELECT count(*) AS n FROM silver.imputed_silver")["n"][0])


@needs_postgres
@pytest.mark.slow
def test_a_sensor_tick_on_a_postgres_instance_recovers_a_dead_run_and_requests_a_new_one(
    tmp_path, cluster, monkeypatch
):
    import shutil

    from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunRequest, build_sensor_context

    from careerpulse_assets.assets.common import DUCKDB_POOL
    from careerpulse_assets.ops.recovery import WORKER_TAG, worker_identity
    from careerpulse_assets.resources import MuseApi
    from careerpulse_assets.sensors import muse_new_pages_sensor

    monkeypatch.setenv("DAGSTER_POSTGRES_URL", cluster.url("dagster"))
    shutil.copy(REPO / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        dead = DagsterRun(job_name="careerpulse_all", status=DagsterRunStatus.STARTED,
                          tags={WORKER_TAG: worker_identity(gone.pid)})
        instance.add_run(dead)
        instance.event_log_storage.set_concurrency_slots(DUCKDB_POOL, 1)
        assert instance.event_log_storage.claim_concurrency_slot(
            DUCKDB_POOL, dead.run_id, "bronze_postings").is_claimed
        with serve_muse(synthetic_postings()) as (_, base_url):
            context = build_sensor_context(
                instance=instance, resources={"muse": MuseApi(base_url=base_url, retries=0)})
            assert isinstance(muse_new_pages_sensor(context), RunRequest)
        assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_info(DUCKDB_POOL).claimed_slots


def serve(home, mode: str, log, **settings) -> subprocess.Popen:
    env = careerpulse_env(home, **settings)
    return subprocess.Popen([sys.executable, "-m", "careerpulse_assets.ops.serve", mode], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@needs_postgres
@pytest.mark.slow
def test_make_serve_comes_up_on_postgres_and_sigterm_stops_all_three(tmp_path, cluster, capsys):
    home = tmp_path / "home"
    dagster_port, mlflow_port = free_port(), free_port()
    with (tmp_path / "serve.log").open("w") as log:
        started = time.monotonic()
        server = serve(home, "serve", log, DAGSTER_PORT=str(dagster_port),
                       MLFLOW_PORT=str(mlflow_port), DAGSTER_POSTGRES_URL=cluster.url("dagster"),
                       MLFLOW_TRACKING_URI=cluster.url("mlflow"))
        try:
            wait_for(lambda: graphql(f"http://127.0.0.1:{dagster_port}", "{ version }"), 120,
                     "dagster-webserver")
            wait_for(lambda: http_status(f"http://127.0.0.1:{mlflow_port}/health") == 200, 120,
                     "mlflow server")
            up = time.monotonic() - started

            def daemon_statuses():
                return graphql(f"http://127.0.0.1:{dagster_port}",
                               "{ instance { daemonHealth { allDaemonStatuses { daemonType "
                               "healthy required } } } }"
                               )["instance"]["daemonHealth"]["allDaemonStatuses"]

            # The daemon's first heartbeats follow the webserver's start by seconds, and by
            # more under load: what is asserted is that every required daemon becomes healthy.
            try:
                wait_for(lambda: all(s["healthy"] for s in daemon_statuses() if s["required"]),
                         120, "the required daemons to be healthy", every=2)
            except AssertionError:
                pass  # said below, with the statuses
            statuses = daemon_statuses()
        finally:
            stop_started = time.monotonic()
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=60)
            down = time.monotonic() - stop_started
    output = (tmp_path / "serve.log").read_text()
    assert code == 0, output[-3000:]
    assert "stopped in" in output and cluster.password not in output
    assert all(s["healthy"] for s in statuses if s["required"]), statuses
    assert {p.name for p in (home / "logs").iterdir()} == {
        "dagster-webserver.log", "dagster-daemon.log", "mlflow.log"}
    with capsys.disabled():
        print(f"\n  make serve: up in {up:.1f} s, stopped in {down:.1f} s")
