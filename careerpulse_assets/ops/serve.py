"""`make serve` and `make ui`: CareerPulse's long-running processes, started and stopped together.

    python -m careerpulse_assets.ops.serve serve   # dagster-webserver, dagster-daemon, mlflow server
    python -m careerpulse_assets.ops.serve ui      # dagster dev (on this terminal) and mlflow server

`serve` writes each process's output to `$CAREERPULSE_HOME/logs/<name>.log`. SIGTERM or Ctrl-C
stops them all: SIGTERM to each, then SIGKILL to whatever is left after STOP_GRACE_SECONDS
(`dagster dev` alone has been seen to ignore SIGTERM for 45 s), and the exit status is 0. When
one process dies on its own the others are stopped too and the exit status is 1, naming it and
its log. Bound to HOST (127.0.0.1) on DAGSTER_PORT (3000) and MLFLOW_PORT (5000). With
MLFLOW_TRACKING_URI pointing at an MLflow server no MLflow process is started: the team's server
is the UI.

The servers run in the working directory of this command, as every other way in does: a
relative path in a setting (`CAREERPULSE_MUSE_ARCHIVE=../shared/data/muse`) means the same for
`make run` and for a run launched in the UI. Their code reads `.env` there again each time it is
reloaded (*Reload definitions*); a change to a setting the servers themselves took when they
started (`server_settings`: the homes, the stores, the ports) fails that reload with a message
that they must be restarted.

The processes die with the supervisor however it dies. They stay in its process group (neither
Dagster nor MLflow moves its own children out of it), so SIGKILL of the group (`kill -9 -PGID`,
systemd, a supervisor's fallback) takes every one of them at once; and each is started with a
parent-death signal (Linux PR_SET_PDEATHSIG: SIGTERM), so SIGKILL of the supervisor alone (the
out-of-memory killer) stops them as SIGTERM does. The supervisor is also their "subreaper"
(PR_SET_CHILD_SUBREAPER): a process whose parent died is handed to it rather than to init, so a
stop finds and ends what a killed `dagster dev` left behind.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .settings import SERVER_SETTINGS_VARIABLE, Settings, redact_url, server_settings

REPO = Path(__file__).resolve().parents[2]
STOP_GRACE_SECONDS = 20.0


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    log: Path | None  # None: this terminal


def services(mode: str, settings: Settings, bin_dir: Path) -> list[Service]:
    workspace = str(REPO / "workspace.yaml")
    logs = settings.logs_dir
    host, port = settings.host, str(settings.dagster_port)
    if mode == "ui":
        dagster = [Service("dagster-dev", [str(bin_dir / "dagster"), "dev", "-w", workspace,
                                           "-h", host, "-p", port], None)]
    else:
        dagster = [
            Service("dagster-webserver", [str(bin_dir / "dagster-webserver"), "-w", workspace,
                                          "-h", host, "-p", port], logs / "dagster-webserver.log"),
            Service("dagster-daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", workspace],
                    logs / "dagster-daemon.log"),
        ]
    if settings.mlflow_is_server:
        return dagster
    mlflow = Service(
        "mlflow",
        [str(bin_dir / "mlflow"), "server", "--backend-store-uri", settings.mlflow_tracking_uri,
         "--default-artifact-root", settings.mlflow_artifacts.as_uri(),
         "--host", settings.host, "--port", str(settings.mlflow_port), "--workers", "1"],
        logs / "mlflow.log",
    )
    return [*dagster, mlflow]


PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36  # linux/prctl.h
_libc = ctypes.CDLL(None, use_errno=True)


def _in_child() -> None:
    """In each child before exec: SIGTERM when the supervisor dies, however it dies; and SIGINT
    and SIGTERM handled as usual even when the supervisor was started with them ignored or
    blocked (a background job of a script; a process that ignores SIGTERM while it shuts down):
    an ignored disposition and the blocked mask survive exec, and `dagster dev` handles SIGTERM
    as it handles SIGINT, so it would ignore both and outlive its supervisor."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    for name in (signal.SIGINT, signal.SIGTERM):
        signal.signal(name, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _children(pid: int) -> list[int]:
    """The live child processes of `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The second field (the command) is in parentheses and may hold spaces.
            if stat.rsplit(")", 1)[1].split()[1] == str(pid):
                found.append(int(entry.name))
    return found


class Supervisor:
    def __init__(self, services: list[Service], env: dict[str, str]):
        self.services, self.env = services, env
        self.running: dict[str, subprocess.Popen] = {}
        self.stop_requested = threading.Event()

    def start(self) -> None:
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
        for service in self.services:
            out = None
            if service.log is not None:
                service.log.parent.mkdir(parents=True, exist_ok=True)
                out = service.log.open("ab")
            self.running[service.name] = subprocess.Popen(
                service.argv, env=self.env, stdout=out,
                stderr=subprocess.STDOUT if out else None, preexec_fn=_in_child,
            )

    def wait(self) -> Service | None:
        """Until a stop is asked for (None) or a process exits on its own (that service)."""
        while not self.stop_requested.wait(0.5):
            for service in self.services:
                if self.running[service.name].poll() is not None:
                    return service
        return None

    def stop(self) -> float:
        """Stop every process and what they started; the seconds it took."""
        started = time.monotonic()
        for process in self.running.values():
            _signal(process.pid, signal.SIGTERM)
        deadline = started + STOP_GRACE_SECONDS
        for name, process in self.running.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"careerpulse: {name} ignored SIGTERM for {STOP_GRACE_SECONDS:.0f} s: killing it",
                      file=sys.stderr, flush=True)
                _signal(process.pid, signal.SIGKILL)
                process.wait()
        # Processes whose parent was killed were handed to us (the subreaper): they go too.
        while leftovers := _children(os.getpid()):
            for pid in leftovers:
                _signal(pid, signal.SIGKILL)
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
        return time.monotonic() - started


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _record_mlflow_ui(settings: Settings) -> None:
    """Record where the MLflow UI is now, for the classifier's link in every later run; say so
    when it moved, since links of earlier runs point to the old place."""
    before = settings.mlflow_ui_url
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.mlflow_ui_record.write_text(settings.mlflow_served_url + "\n")
    if before != settings.mlflow_served_url:
        print(f"careerpulse: the MLflow UI moved from {before} to {settings.mlflow_served_url}: "
              "the classifier's link points here from the next run on (runs before link to "
              "the old place; MLFLOW_PORT in .env keeps one place for every command)", flush=True)


def main(argv: list[str] | None = None) -> int:
    mode = (argv if argv is not None else sys.argv[1:] or ["serve"])[0]
    if mode not in ("serve", "ui"):
        print("careerpulse: usage: python -m careerpulse_assets.ops.serve serve|ui", file=sys.stderr)
        return 1
    from .preflight import settings_for_command

    settings = settings_for_command()
    if settings is None:
        return 1
    from .instance import ensure_instance_file
    from ..resources import ensure_experiment
    from ..classification.registry import EXPERIMENT_NAME

    home = settings.dagster_home
    ensure_instance_file(home, postgres=bool(settings.dagster_postgres_url))
    # Made here, under MLflow's lock, before `mlflow server` and any run open it at once; and
    # pointed at the artifacts where they are now, should the home have moved.
    if not settings.mlflow_is_server:
        relocated = ensure_experiment(settings.mlflow_tracking_uri, EXPERIMENT_NAME,
                                      str(settings.mlflow_artifacts))
        if relocated:
            print(f"careerpulse: {relocated}", flush=True)
    if not settings.mlflow_is_server:
        _record_mlflow_ui(settings)
    env = {**os.environ, "DAGSTER_HOME": str(home), "CAREERPULSE_HOME": str(settings.home),
           SERVER_SETTINGS_VARIABLE: json.dumps(server_settings(settings))}
    # The servers run in this command's working directory, as `make run`, `dagster dev` and `dg`
    # do: relative paths in the settings and `.env` (read again at each reload of the code)
    # mean the same for all. `dagster dev` then warns that the dagster.yaml it finds there is
    # not used: it runs on $DAGSTER_HOME/dagster.yaml, written from that file above.
    supervisor = Supervisor(services(mode, settings, Path(sys.executable).parent), env)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: supervisor.stop_requested.set())
    supervisor.start()
    print(f"careerpulse: Dagster UI {settings.dagster_ui_url}", flush=True)
    print(f"careerpulse: MLflow UI  {settings.mlflow_ui_url} (tracking "
          f"{redact_url(settings.mlflow_tracking_uri)})", flush=True)
    if mode == "serve":
        print(f"careerpulse: logs in {settings.logs_dir}; SIGTERM or Ctrl-C stops everything",
              flush=True)
    died = supervisor.wait()
    seconds = supervisor.stop()
    if died is not None:
        where = f"; see {died.log}" if died.log else ""
        print(f"careerpulse: {died.name} exited on its own (status "
              f"{supervisor.running[died.name].returncode}){where}: stopped the others",
              file=sys.stderr)
        return 1
    print(f"careerpulse: stopped in {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
