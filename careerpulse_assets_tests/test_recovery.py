"""A run that dies must not stall the runs after it: killed `make run`s, and the plain decision."""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from careerpulse_assets.ops.recovery import (
    RunFacts,
    recoveries,
    worker_alive,
    worker_identity,
)

from .graph import query
from .muse_fixtures import synthetic_postings
from .muse_server import serve_muse
from .servers import careerpulse_env

REPO = Path(__file__).resolve().parents[1]


def test_only_runs_whose_worker_is_gone_are_failed_and_ended_runs_give_their_slots_back():
    alive = {"h:1:10": True, "h:2:20": False, "other:3:30": None}.get
    runs = [
        RunFacts("live", "STARTED", False, "h:1:10", True),
        RunFacts("dead", "STARTED", False, "h:2:20", True),
        RunFacts("elsewhere", "STARTED", False, "other:3:30", True),
        RunFacts("unnamed", "STARTED", False, None, True),
        RunFacts("ended-holding", "FAILURE", True, "h:2:20", True),
        RunFacts("ended", "SUCCESS", True, "h:2:20", False),
    ]
    decided = {r.run_id: r for r in recoveries(runs, alive)}
    assert set(decided) == {"dead", "ended-holding"}
    assert decided["dead"].mark_failed and "worker process 2 is gone" in decided["dead"].reason
    assert not decided["ended-holding"].mark_failed


def test_a_worker_is_alive_while_its_process_runs_and_not_after():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    identity = worker_identity(child.pid)
    assert worker_alive(identity) is True
    child.kill()
    child.wait()
    assert worker_alive(identity) is False
    assert worker_alive(worker_identity()) is True
    # The same pid with another start time is another process (the pid was reused).
    host, pid, _ = worker_identity().rsplit(":", 2)
    assert worker_alive(f"{host}:{pid}:1") is False
    assert worker_alive(f"elsewhere.example:{pid}:1") is None


def every_posting_once(settings) -> list[int]:
    """[bronze rows, distinct postings in bronze, imputed rows]: all equal to the postings served
    when nothing was lost or doubled."""
    return query(
        settings,
        "SELECT (SELECT count(*) FROM bronze.bronze_postings) AS bronze, "
        "(SELECT count(DISTINCT posting_id) FROM bronze.bronze_postings) AS ids, "
        "(SELECT count(*) FROM silver.imputed_silver) AS imputed",
    ).iloc[0].tolist()


def make_run_env(home: Path, base_url: str) -> dict:
    return careerpulse_env(home, CAREERPULSE_MUSE_BASE_URL=base_url)


def test_a_dead_runs_queued_step_that_was_handed_the_slot_is_named_and_recovered(tmp_path):
    """Two runs started at once: the second's step queues for the slot; it is SIGKILLed; the
    first frees the slot, which Dagster assigns to the dead run's queued step (assigned, never
    claimed). The first run's next step then waited for ever, with no word: its watch saw no
    claimed slot, so it named nobody and recovered nobody."""
    from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

    from careerpulse_assets.ops.recovery import WORKER_TAG, PoolWatch, slot_holders

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with DagsterInstance.local_temp(str(tmp_path)) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("careerpulse_duckdb", 1)
        alive = DagsterRun(job_name="careerpulse_ingestion", status=DagsterRunStatus.STARTED,
                           tags={WORKER_TAG: worker_identity()})
        dead = DagsterRun(job_name="careerpulse_ingestion", status=DagsterRunStatus.STARTED,
                          tags={WORKER_TAG: worker_identity(gone.pid)})
        instance.add_run(alive)
        instance.add_run(dead)
        assert storage.claim_concurrency_slot("careerpulse_duckdb", alive.run_id,
                                              "bronze_postings").is_claimed
        assert not storage.claim_concurrency_slot("careerpulse_duckdb", dead.run_id,
                                                  "bronze_postings").is_claimed
        storage.free_concurrency_slot_for_step(alive.run_id, "bronze_postings")
        assert not storage.claim_concurrency_slot("careerpulse_duckdb", alive.run_id,
                                                  "silver_postings").is_claimed
        assert slot_holders(instance, "careerpulse_duckdb", alive.run_id) == [
            f"run {dead.run_id} (step bronze_postings, STARTED, assigned, not yet claimed)"]
        said: list[str] = []
        watch = PoolWatch(instance, "careerpulse_duckdb", alive.run_id, said.append).start()
        try:
            deadline = time.monotonic() + 30
            while not storage.claim_concurrency_slot("careerpulse_duckdb", alive.run_id,
                                                     "silver_postings").is_claimed:
                assert time.monotonic() < deadline, said
                time.sleep(0.2)
        finally:
            watch.stop()
        assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
        assert any(f"run {dead.run_id} marked failed: its worker process {gone.pid} is gone" in line
                   for line in said), said


def test_run_monitoring_hears_from_the_launcher_that_a_dead_workers_run_failed():
    """What Dagster's run monitoring asks the instance's run launcher (dagster.yaml) every
    poll: a run whose worker process is gone is FAILED; a live, foreign or unnamed one RUNNING."""
    from dagster import DagsterRun, DagsterRunStatus
    from dagster._core.launcher import WorkerStatus

    from careerpulse_assets.ops.recovery import WORKER_TAG, WorkerCheckingRunLauncher

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    launcher = WorkerCheckingRunLauncher()
    assert launcher.supports_check_run_worker_health

    def health(tags):
        run = DagsterRun(job_name="careerpulse_all", status=DagsterRunStatus.STARTED, tags=tags)
        return launcher.check_run_worker_health(run)

    dead = health({WORKER_TAG: worker_identity(gone.pid)})
    assert dead.status == WorkerStatus.FAILED and f"worker process {gone.pid} is gone" in dead.msg
    assert health({WORKER_TAG: worker_identity()}).status == WorkerStatus.RUNNING
    assert health({WORKER_TAG: "elsewhere.example:1:1"}).status == WorkerStatus.RUNNING
    assert health({}).status == WorkerStatus.RUNNING


def kill_make_run_in_ingestion(env: dict, stub, cwd: Path = REPO, pages: int = 5) -> str:
    """`make run` started and SIGKILLed once it has read `pages` pages; its output."""
    first = subprocess.Popen(
        [sys.executable, "-m", "careerpulse_assets.ops.run", "careerpulse_ingestion"], cwd=cwd,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 120
    while len(stub.requests) < pages and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    output = first.communicate()[0]
    assert len(stub.requests) >= pages, f"the first run never got going: {output[-2000:]}"
    return output


PYTHON_API = """
from dagster import DagsterInstance
from careerpulse_assets import defs

with DagsterInstance.get() as instance:
    result = defs.get_job_def("careerpulse_all").execute_in_process(
        instance=instance, raise_on_error=False)
print("SUCCESS" if result.success else "FAILURE")
"""


@pytest.mark.slow
def test_after_make_run_is_killed_in_ingestion_the_python_api_and_dg_launch_finish_every_posting_once(
    tmp_path, settings_for
):
    """What a notebook does after a crash: the run frees the dead run's slot itself (its DuckDB
    resource recovers dead runs before any step asks for a slot) instead of waiting for ever."""
    settings = settings_for()
    items = synthetic_postings(per_category=100, unlabelled=30)  # 330 postings, 17 pages
    with serve_muse(items) as (stub, base_url):
        env = make_run_env(settings.home, base_url)
        stub.delay_seconds = 0.3
        kill_make_run_in_ingestion(env, stub)
        stub.delay_seconds = 0
        started = time.monotonic()
        api = subprocess.run([sys.executable, "-c", PYTHON_API], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=400)
        api_seconds = time.monotonic() - started
        assert api.stdout.strip().endswith("SUCCESS"), api.stdout[-3000:] + api.stderr[-3000:]
        assert "marked failed: its worker process" in api.stdout + api.stderr
        assert every_posting_once(settings) == [len(items)] * 3
        # `dg launch` (dagster-dg-cli) runs a job in its own process the same way.
        launched = subprocess.run(
            [str(Path(sys.executable).with_name("dg")), "launch", "--job", "careerpulse_ingestion"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )
        assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    assert api_seconds < 300


@pytest.mark.slow
def test_a_run_waiting_for_the_pool_names_the_holder_and_goes_on_when_the_holder_dies(
    tmp_path, settings_for
):
    import threading

    settings = settings_for()
    items = synthetic_postings(per_category=100, unlabelled=30)  # 17 pages
    with serve_muse(items) as (stub, base_url):
        env = make_run_env(settings.home, base_url)
        # The holder's bronze step keeps the slot for 51 s: a loaded machine takes 20-30 s to start
        # the waiter; the holder is killed as soon as the waiter says it waits, so it costs nothing.
        stub.delay_seconds = 3.0
        # Ingestion alone on both sides: the pool is what is tested, not the classifier.
        holder = subprocess.Popen(
            [sys.executable, "-m", "careerpulse_assets.ops.run", "careerpulse_ingestion"],
            cwd=REPO, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while len(stub.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        waiter = subprocess.Popen(
            [sys.executable, "-m", "careerpulse_assets.ops.run", "careerpulse_ingestion"],
            cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(waiter.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while not any("waits for pool" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.2)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        stub.delay_seconds = 0
        waiter.wait(timeout=300)
        reader.join(timeout=10)
    output = "".join(lines)
    assert waiter.returncode == 0, output[-3000:]
    (waiting,) = [line for line in lines if "waits for pool" in line][:1]
    assert "step bronze_postings waits for pool careerpulse_duckdb" in waiting
    # The holder's step: bronze, or a later one when the waiter took long to start (a loaded
    # machine); what matters is that the waiter names the holder's run and step.
    assert re.search(r"held by run \S+ \(step \w+, STARTED\)", waiting), waiting
    holder_run = waiting.split("held by run ")[1].split()[0]
    assert f"run {holder_run} marked failed: its worker process {holder.pid} is gone" in output
    counts = query(
        settings, "SELECT count(*) AS n, count(DISTINCT posting_id) AS d FROM bronze.bronze_postings"
    ).iloc[0]
    assert counts.tolist() == [len(items)] * 2
