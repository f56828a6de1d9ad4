"""Long-running processes for tests: `dagster dev` on a free loopback port, and how to talk to it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from careerpulse_assets.ops.instance import ensure_instance_file

REPO = Path(__file__).resolve().parents[1]
LOCATION = {"repositoryLocationName": "careerpulse", "repositoryName": "__repository__"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def wait_for(predicate, timeout: float, what: str, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except OSError:
            pass
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def careerpulse_env(home: Path, **settings: str) -> dict:
    """The environment of a CareerPulse process with its own home and Dagster instance."""
    dagster_home = Path(settings.get("DAGSTER_HOME") or home / "dagster")
    ensure_instance_file(dagster_home, postgres=False)
    env = {**os.environ, "CAREERPULSE_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    for name in ("CAREERPULSE_MUSE_ARCHIVE", "CAREERPULSE_MAX_PAGES", "CAREERPULSE_MUSE_API_KEY",
                 "MLFLOW_TRACKING_URI", "DAGSTER_POSTGRES_URL"):
        env.pop(name, None)
    return {**env, **settings}


@contextmanager
def dagster_dev(home: Path, log_path: Path, **settings: str) -> Iterator[str]:
    """`dagster dev` (webserver, daemon, code server) on a free port; yields its URL."""
    port = free_port()
    argv = [str(Path(sys.executable).with_name("dagster")), "dev", "-w", "workspace.yaml",
            "-h", "127.0.0.1", "-p", str(port)]
    with serving(argv, REPO, careerpulse_env(home, **settings), log_path, port) as url:
        yield url


@contextmanager
def serving(argv: list[str], cwd: Path, env: dict, log_path: Path, port: int) -> Iterator[str]:
    """A Dagster UI server (`dagster dev`, `python -m careerpulse_assets.ops.serve ui`) started in
    `cwd` and answering on `port`; yields its URL, then stops it and all it started."""
    with serving_process(argv, cwd, env, log_path, port) as server:
        yield server.url


@contextmanager
def serving_process(
    argv: list[str], cwd: Path, env: dict, log_path: Path, port: int
) -> Iterator[subprocess.Popen]:
    """`serving`, yielding the server's process (the leader of its own process group) with its
    URL as `.url`: for a test that stops it its own way."""
    with log_path.open("w") as log:
        server = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            # As a terminal starts it: Dagster maps SIGTERM to SIGINT's handler, so SIGINT
            # inherited ignored (a background job of a script) would make it ignore SIGTERM.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        server.url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: graphql(server.url, "{ version }"), 120, "the Dagster UI to answer")
            yield server
        finally:
            try:
                os.killpg(server.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass  # the test killed the group itself
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def runs(url: str) -> list[dict]:
    """Newest first: runId, status, tags as a dict."""
    data = graphql(url, "{ runsOrError { ... on Runs { results { runId status "
                        "tags { key value } } } } }")
    return [
        {**run, "tags": {tag["key"]: tag["value"] for tag in run["tags"]}}
        for run in data["runsOrError"]["results"]
    ]


def start_sensor(url: str, name: str) -> str:
    data = graphql(
        url,
        "mutation($selector: SensorSelector!) { startSensor(sensorSelector: $selector) { "
        "__typename ... on Sensor { sensorState { status } } ... on PythonError { message } } }",
        {"selector": {**LOCATION, "sensorName": name}},
    )["startSensor"]
    assert data["__typename"] == "Sensor", data
    return data["sensorState"]["status"]


def launch_job(url: str, job: str) -> str:
    data = graphql(
        url,
        "mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { "
        "__typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } "
        "... on RunConfigValidationInvalid { errors { message } } } }",
        {"params": {"selector": {**LOCATION, "jobName": job}, "runConfigData": {}}},
    )["launchRun"]
    assert data["__typename"] == "LaunchRunSuccess", data
    return data["run"]["runId"]


def run_errors(url: str, run_id: str) -> list[str]:
    """Step failures (with the errors that caused them, as the UI's run page shows them) and the
    run's own failure message, to say why a run failed."""
    events = graphql(url, '{ logsForRun(runId: "%s") { ... on EventConnection { events { '
                          "__typename ... on MessageEvent { message } ... on "
                          "ExecutionStepFailureEvent { stepKey error { message causes { message } "
                          "} } } } } }" % run_id)["logsForRun"]["events"]

    def said(event: dict) -> str:
        error = event.get("error")
        if not error:
            return event["message"]
        return " <- ".join(e["message"].strip() for e in [error, *error["causes"]])

    return [f"{e.get('stepKey') or e['__typename']}: {said(e)}"
            for e in events if "Failure" in e["__typename"]]


def location_load_error(url: str, location: str = LOCATION["repositoryLocationName"]) -> str | None:
    """Why the code location failed to load, with its causes, as the UI shows it; None when it
    loaded."""
    entries = graphql(url, "{ workspaceOrError { ... on Workspace { locationEntries { name "
                           "locationOrLoadError { __typename ... on PythonError { message "
                           "causes { message } } } } } } }")["workspaceOrError"]["locationEntries"]
    (entry,) = [e for e in entries if e["name"] == location]
    error = entry["locationOrLoadError"]
    if error["__typename"] != "PythonError":
        return None
    return " <- ".join(e["message"].strip() for e in [error, *error["causes"]])


def processes_of(home) -> list[str]:
    """The command lines of live processes whose environment names this CAREERPULSE_HOME."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if f"CAREERPULSE_HOME={home}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def port_free(port: int) -> bool:
    """A server could listen on it now (as servers do, with SO_REUSEADDR: the test's own
    connections may linger in TIME_WAIT, which only a listener would block)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def http_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status
