"""Runs that died give back what they held, whichever way the next run starts.

A run killed by SIGKILL, the out-of-memory killer or a reboot keeps the status STARTED and its
slot of the `careerpulse_duckdb` pool: every later run would wait for that slot (and, under the
run queue, for the run itself) for ever. Dagster marks a run failed when the code server that
launched it sees its process gone, but runs executed in a process of their own (`make run`, the
Python API, `dagster asset materialize`, `dg launch`) have no code server watching them. So every
run's worker names itself in a run tag (`careerpulse/worker`: host, pid and the process's start
time), and the runs whose worker is gone are marked failed through the instance's own API, which
is also what frees their slots:

- by Dagster's run monitoring, wherever a daemon runs (`dagster dev`, `make ui`, `make serve`):
  `WorkerCheckingRunLauncher` is the DefaultRunLauncher with the health check run monitoring asks
  for (the repository's dagster.yaml names it);
- by every run when its DuckDB resource starts, before any step asks for a slot, and while one
  of its steps waits for a slot (`PoolWatch`, which also says who holds the slot and how to free
  it), in whichever process the run executes; and by every tick of `muse_new_pages_sensor`.

Nothing here is a lock of ours: the pool, its slots and the run statuses are Dagster's.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dagster import DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

WORKER_TAG = "careerpulse/worker"


def _process_start_ticks(pid: int) -> str:
    """When the process started, in clock ticks since boot (Linux); "" where unknown.

    With the pid it tells a process apart from a later one that reused the pid.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The second field (the command) is in parentheses and may hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def worker_identity(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_process_start_ticks(pid)}"


def worker_alive(identity: str, this_host: str | None = None) -> bool | None:
    """Whether the process named by `identity` still runs; None when it is on another host."""
    host, pid, started = identity.rsplit(":", 2)
    if host != (this_host or socket.gethostname()):
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return not started or _process_start_ticks(int(pid)) in ("", started)


@dataclass(frozen=True)
class RunFacts:
    run_id: str
    status: str  # DagsterRunStatus value: STARTED, FAILURE, ...
    finished: bool
    worker: str | None  # the WORKER_TAG value, if the worker named itself
    holds_slots: bool


@dataclass(frozen=True)
class Recovery:
    """What to do with one run: mark it failed (and so free its slots), or only free slots."""

    run_id: str
    mark_failed: bool
    reason: str


def recoveries(
    runs: list[RunFacts], alive: Callable[[str], bool | None] = worker_alive
) -> list[Recovery]:
    """The runs to recover, and why. Runs on other hosts or without a named worker are left to
    Dagster's run monitoring (its max runtime is the last resort)."""
    out = []
    for run in runs:
        if run.finished:
            if run.holds_slots:
                out.append(Recovery(run.run_id, False, f"run ended ({run.status}) holding a slot"))
            continue
        if run.worker and alive(run.worker) is False:
            pid = run.worker.rsplit(":", 2)[1]
            out.append(
                Recovery(
                    run.run_id, True,
                    f"its worker process {pid} is gone (killed, out of memory or a reboot)",
                )
            )
    return out


def run_facts(instance) -> list[RunFacts]:
    """Every run that is in progress or holds a pool slot."""
    from dagster import DagsterRunStatus, RunsFilter

    holding = set(instance.event_log_storage.get_concurrency_run_ids())
    in_progress = instance.get_runs(
        filters=RunsFilter(
            statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
                      DagsterRunStatus.CANCELING]
        )
    )
    runs = {run.run_id: run for run in in_progress}
    for run_id in holding - set(runs):
        run = instance.get_run_by_id(run_id)
        if run is not None:
            runs[run_id] = run
    return [
        RunFacts(
            run_id=run.run_id,
            status=run.status.value,
            finished=run.is_finished,
            worker=run.tags.get(WORKER_TAG),
            holds_slots=run.run_id in holding,
        )
        for run in runs.values()
    ]


def recover_dead_runs(instance) -> list[str]:
    """Mark runs whose worker died as failed and free the slots of ended runs; one line each."""
    lines = []
    for recovery in recoveries(run_facts(instance)):
        if recovery.mark_failed:
            run = instance.get_run_by_id(recovery.run_id)
            instance.report_run_failed(run, f"Marked failed by CareerPulse: {recovery.reason}.")
        instance.event_log_storage.free_concurrency_slots_for_run(recovery.run_id)
        lines.append(
            f"run {recovery.run_id} {'marked failed' if recovery.mark_failed else 'released'}: "
            f"{recovery.reason}; its pool slots are free"
        )
    return lines


def slot_holders(instance, pool: str, except_run: str | None = None) -> list[str]:
    """Who holds the pool's slots: 'run <id> (step <key>, <status>)', other runs only.

    A slot counts as held from when Dagster assigns it to the step queued first: until that
    step claims it, it is among no claimed slots, yet no other step may take it. (A run killed
    while its step was queued kept the slot so, and the run behind it waited for ever without
    a word: a hostile check of issue 29's bronze batches.)"""
    info = instance.event_log_storage.get_concurrency_info(pool)
    claimed = [(slot.run_id, slot.step_key, "") for slot in info.claimed_slots]
    assigned = [(step.run_id, step.step_key, ", assigned, not yet claimed")
                for step in info.pending_steps if step.assigned_timestamp is not None
                and (step.run_id, step.step_key, "") not in claimed]
    holders = []
    for run_id, step_key, note in claimed + assigned:
        if run_id == except_run:
            continue
        run = instance.get_run_by_id(run_id)
        status = run.status.value if run is not None else "unknown run"
        holders.append(f"run {run_id} (step {step_key}, {status}{note})")
    return holders


class WorkerCheckingRunLauncher(DefaultRunLauncher):
    """Dagster's DefaultRunLauncher, plus the worker health check Dagster's run monitoring calls
    every `poll_interval_seconds`: a run whose worker process (its `careerpulse/worker` tag) is
    gone is FAILED, and run monitoring marks it failed, which frees its pool slots. A run whose
    worker is alive, on another host, or not named yet is RUNNING (what DefaultRunLauncher
    itself cannot tell, run monitoring's max runtime still bounds)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        identity = run.tags.get(WORKER_TAG)
        if identity and worker_alive(identity) is False:
            pid = identity.rsplit(":", 2)[1]
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"its worker process {pid} is gone (killed, out of memory or a reboot)",
            )
        return CheckRunHealthResult(WorkerStatus.RUNNING)


# A run waiting for a pool slot says so this soon, then this often.
WAIT_FIRST_SAY_SECONDS = 3.0
WAIT_SAY_EVERY_SECONDS = 30.0


class PoolWatch:
    """While steps of run `run_id` wait for a slot of `pool`, says who holds it and how to free
    it (after WAIT_FIRST_SAY_SECONDS, then every WAIT_SAY_EVERY_SECONDS), and recovers holders
    that die meanwhile, so the wait ends. A thread of its own; `stop()` ends it.

        watch = PoolWatch(instance, "careerpulse_duckdb", run_id, say=log.warning).start()
    """

    def __init__(self, instance, pool: str, run_id: str, say: Callable[[str], None]):
        self.instance, self.pool, self.run_id, self.say = instance, pool, run_id, say
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True,
                                        name="careerpulse-pool-watch")

    def start(self) -> PoolWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        waiting_since = said_at = None
        while not self._stop.wait(1.0):
            info = self.instance.event_log_storage.get_concurrency_info(self.pool)
            waiting = [s.step_key for s in info.pending_steps
                       if s.run_id == self.run_id and s.assigned_timestamp is None]
            # Steps of this run also wait for each other's slot: only other holders are news.
            holders = slot_holders(self.instance, self.pool, self.run_id) if waiting else []
            if not holders:
                waiting_since = said_at = None
                continue
            now = time.monotonic()
            waiting_since = waiting_since or now
            for line in recover_dead_runs(self.instance):
                self.say(line)
            if now - waiting_since >= WAIT_FIRST_SAY_SECONDS and (
                said_at is None or now - said_at >= WAIT_SAY_EVERY_SECONDS
            ):
                self.say(
                    f"step {', '.join(waiting)} waits for pool {self.pool} "
                    f"({now - waiting_since:.0f} s), held by {'; '.join(holders)}: it goes on "
                    "when that step ends (a holder whose process died is freed by itself; to "
                    "stop a live one, stop its process or terminate its run in the UI)"
                )
                said_at = now
