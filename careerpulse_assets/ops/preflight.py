"""What must hold before a run can do anything useful, each problem said in one line with what to do.

Without these checks the same problems surface late and unexplained: MLflow retries a read-only
folder for 100 s, a broken mlflow.db fails a resource with an SQL traceback, a truncated DuckDB
file fails the first step that opens it.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
from pathlib import Path

import duckdb


def _unwritable(folder: Path, name: str) -> str | None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".careerpulse-probe-"):
            pass
    except OSError as exc:
        return (
            f"cannot write to {name} {folder} ({exc.strerror or exc}): point {name} at a "
            "writable folder"
        )
    return None


def _unreadable_duckdb(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        duckdb.connect(str(path), read_only=True).close()
    except duckdb.Error as exc:
        if "lock" in str(exc).lower():
            return None  # another run is writing it: the pool queues this run behind it
        first_line = str(exc).splitlines()[0]
        return (
            f"{path} is not a readable DuckDB database ({first_line}): move it aside and run "
            "again to rebuild the tables from the source, or restore it from a backup"
        )
    return None


def _unreadable_sqlite(path: Path, what: str) -> str | None:
    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        return (
            f"{what} {path} is not a readable SQLite database ({exc}): move it aside (a new one "
            "is created; its history is lost) or restore it from a backup"
        )
    return None


def _half_made_mlflow_store(path: Path) -> str | None:
    """A store whose creation or schema migration stopped half-way (two processes raced on it
    before CareerPulse created stores under a lock, or a process was killed meanwhile): MLflow
    would fail on it in every run with an SQL or schema error."""
    if not path.exists():
        return None
    from mlflow.store.db.utils import _get_latest_schema_revision

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        tables = {name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        revision = (connection.execute("SELECT version_num FROM alembic_version").fetchone()
                    if "alembic_version" in tables else None)
    if not {t for t in tables if not t.startswith("alembic_")}:
        return None  # empty: the tables are created on first use
    head = _get_latest_schema_revision()
    leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
    if revision is not None and revision[0] == head and not leftovers:
        return None
    found = f"schema version {revision[0]}" if revision else "no schema version"
    if leftovers:
        found += f", unfinished migration tables {', '.join(leftovers)}"
    return (
        f"the MLflow store {path} was left half-created or half-migrated ({found}; this MLflow "
        f"expects {head}): move it aside to start a new store (its history is lost), or keep "
        f"a copy and try `mlflow db upgrade sqlite:///{path}`"
    )


def _unreachable_postgres(url: str, name: str) -> str | None:
    import psycopg2

    from .settings import redact_url

    try:
        psycopg2.connect(url, connect_timeout=5).close()
    except psycopg2.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot reach {name} {redact_url(url)} ({reason}): start the database or fix the URL"
    return None


def _unreachable_server(url: str) -> str | None:
    import requests

    try:
        requests.get(f"{url.rstrip('/')}/health", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        return (f"cannot reach the MLflow server MLFLOW_TRACKING_URI={url} "
                f"({type(exc).__name__}): start it or fix the URL")
    return None


def problems(settings, dagster_home: Path) -> list[str]:
    """Everything that would make a run fail before it starts, one line each."""
    found = [
        _unwritable(settings.home, "CAREERPULSE_HOME"),
        _unwritable(dagster_home, "DAGSTER_HOME"),
        _unreadable_duckdb(settings.duckdb_path),
    ]
    sqlite_store = settings.mlflow_sqlite_path
    if sqlite_store is not None:
        unreadable = _unreadable_sqlite(sqlite_store, "the MLflow store")
        found.append(unreadable or _half_made_mlflow_store(sqlite_store))
    elif settings.mlflow_is_server:
        found.append(_unreachable_server(settings.mlflow_tracking_uri))
    elif settings.mlflow_tracking_uri.startswith("postgresql"):
        found.append(_unreachable_postgres(settings.mlflow_tracking_uri, "MLFLOW_TRACKING_URI"))
    if settings.dagster_postgres_url:
        found.append(_unreachable_postgres(settings.dagster_postgres_url, "DAGSTER_POSTGRES_URL"))
    if os.access(settings.home, os.W_OK) and settings.mlflow_artifacts.exists():
        found.append(_unwritable(settings.mlflow_artifacts, "the MLflow artifact folder"))
    return [problem for problem in found if problem]


def settings_for_command(check: bool = True):
    """What every command does first (`make run`, `make ui`/`serve`, `make review`, writing the
    instance file): `.env` applied (settings.apply_env_file), the settings read and, with
    `check`, everything `problems` finds. Each problem is printed as one line `careerpulse: ...`
    on stderr and None returned; else the Settings."""
    from .settings import Settings, SettingsError, apply_env_file

    apply_env_file()
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"careerpulse: {exc}", file=sys.stderr)
        return None
    found = problems(settings, settings.dagster_home) if check else []
    if found:
        print("\n".join(f"careerpulse: {problem}" for problem in found), file=sys.stderr)
        return None
    return settings
