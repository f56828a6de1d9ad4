"""Runs that died give back what they held.

A run killed by SIGKILL, the out-of-memory killer or a reboot keeps the status STARTED and its
slot of the `careerpulse_duckdb` pool: every later run would wait for that slot for ever.
Dagster marks a run failed when the code server that launched it sees its process gone, and run
monitoring (`dagster-instance.yaml`) frees the slots of ended runs; but `make run` executes in
its own process, with no code server or daemon watching it. So every run's worker names itself
in a run tag (`careerpulse/worker`: host, pid and the process's start time), and before a run
starts (`make run`, every sensor tick) the runs whose worker is gone are marked failed through
the instance's own API, which is also what frees their slots. Nothing here is a lock of ours:
the pool, its slots and the run statuses are Dagster's.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
    """Who holds the pool's slots: 'run <id> (step <key>, <status>)', other runs only."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    holders = []
    for slot in info.claimed_slots:
        if slot.run_id == except_run:
            continue
        run = instance.get_run_by_id(slot.run_id)
        status = run.status.value if run is not None else "unknown run"
        holders.append(f"run {slot.run_id} (step {slot.step_key}, {status})")
    return holders
