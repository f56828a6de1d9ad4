"""`make serve` and `make ui`: CareerPulse's long-running processes, started and stopped together.

    python -m careerpulse_assets.serve serve   # dagster-webserver, dagster-daemon, mlflow server
    python -m careerpulse_assets.serve ui      # dagster dev (on this terminal) and mlflow server

Each process runs in a process group of its own; `serve` writes each one's output to
`$CAREERPULSE_HOME/logs/<name>.log`. SIGTERM or Ctrl-C stops them all: SIGTERM to every group,
then SIGKILL to any still there after STOP_GRACE_SECONDS (`dagster dev` alone has been seen to
ignore SIGTERM for 45 s), and the exit status is 0. When one process dies on its own the others
are stopped too and the exit status is 1, naming it and its log. Bound to HOST (127.0.0.1) on
DAGSTER_PORT (3000) and MLFLOW_PORT (5000). With MLFLOW_TRACKING_URI pointing at an MLflow server
no MLflow process is started: the team's server is the UI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .settings import Settings, SettingsError, redact_url

REPO = Path(__file__).resolve().parents[1]
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


class Supervisor:
    def __init__(self, services: list[Service], env: dict[str, str]):
        self.services, self.env = services, env
        self.running: dict[str, subprocess.Popen] = {}
        self.stop_requested = threading.Event()

    def start(self) -> None:
        for service in self.services:
            out = None
            if service.log is not None:
                service.log.parent.mkdir(parents=True, exist_ok=True)
                out = service.log.open("ab")
            self.running[service.name] = subprocess.Popen(
                service.argv, cwd=REPO, env=self.env, stdout=out,
                stderr=subprocess.STDOUT if out else None, start_new_session=True,
            )

    def wait(self) -> Service | None:
        """Until a stop is asked for (None) or a process exits on its own (that service)."""
        while not self.stop_requested.wait(0.5):
            for service in self.services:
                if self.running[service.name].poll() is not None:
                    return service
        return None

    def stop(self) -> float:
        """Stop every process group; the seconds it took."""
        started = time.monotonic()
        for process in self.running.values():
            _signal_group(process, signal.SIGTERM)
        deadline = started + STOP_GRACE_SECONDS
        for name, process in self.running.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"careerpulse: {name} ignored SIGTERM for {STOP_GRACE_SECONDS:.0f} s: killing it",
                      file=sys.stderr, flush=True)
                _signal_group(process, signal.SIGKILL)
                process.wait()
        # Children a process left behind in its group go too.
        for process in self.running.values():
            _signal_group(process, signal.SIGKILL)
        return time.monotonic() - started


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    mode = (argv if argv is not None else sys.argv[1:] or ["serve"])[0]
    if mode not in ("serve", "ui"):
        print("careerpulse: usage: python -m careerpulse_assets.serve serve|ui", file=sys.stderr)
        return 1
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"careerpulse: {exc}", file=sys.stderr)
        return 1
    from .instance import dagster_home, ensure_instance_file
    from .preflight import problems

    home = dagster_home()
    found = problems(settings, home)
    if found:
        print("\n".join(f"careerpulse: {problem}" for problem in found), file=sys.stderr)
        return 1
    ensure_instance_file(home, postgres=bool(settings.dagster_postgres_url))
    env = {**os.environ, "DAGSTER_HOME": str(home), "CAREERPULSE_HOME": str(settings.home)}
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
