"""A throwaway PostgreSQL cluster on a free loopback port, for the tests of the shared deployment.

Debian's server binaries (`initdb`, `pg_ctl`; .ci/run installs them) run as the `postgres` user
when the tests run as root (PostgreSQL refuses root), in a temporary folder that user owns;
trust authentication, no fsync. Tests that need it are skipped with the reason when the binaries
are missing, as the browser test is without chromium.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .servers import free_port


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def missing_reason() -> str | None:
    if server_binaries() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl); .ci/run installs Debian's postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a `postgres` user to run the server as"
    return None


@dataclass(frozen=True)
class Cluster:
    port: int
    password: str = "s3cret-pg-password"

    def url(self, database: str, user: str = "careerpulse") -> str:
        return f"postgresql://{user}:{self.password}@127.0.0.1:{self.port}/{database}"


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def throwaway_cluster(databases: tuple[str, ...] = ("dagster", "mlflow")) -> Iterator[Cluster]:
    binaries = server_binaries()
    folder = Path(tempfile.mkdtemp(prefix="careerpulse-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    data, port = folder / "data", free_port()
    cluster = Cluster(port)
    run = lambda argv: subprocess.run(_as_server_user(argv), check=True,  # noqa: E731
                                      capture_output=True, text=True)
    run([str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
         "--no-sync", "-E", "UTF8"])
    run([str(binaries / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "server.log"),
         "-o", f"-p {port} -k {folder} -h 127.0.0.1 -c fsync=off -c full_page_writes=off",
         "start"])
    try:
        psql = shutil.which("psql") or str(binaries / "psql")
        statements = [f"CREATE ROLE careerpulse LOGIN SUPERUSER PASSWORD '{cluster.password}'"]
        statements += [f"CREATE DATABASE {name} OWNER careerpulse" for name in databases]
        for statement in statements:
            subprocess.run([psql, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                            "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", statement],
                           check=True, capture_output=True, text=True)
        yield cluster
    finally:
        subprocess.run(_as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m",
                                        "immediate", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
