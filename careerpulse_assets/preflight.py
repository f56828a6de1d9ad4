"""What must hold before a run can do anything useful, each problem said in one line with what to do.

Without these checks the same problems surface late and unexplained: MLflow retries a read-only
folder for 100 s, a broken mlflow.db fails a resource with an SQL traceback, a truncated DuckDB
file fails the first step that opens it.
"""

from __future__ import annotations

import os
import sqlite3
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
        found.append(_unreadable_sqlite(sqlite_store, "the MLflow store"))
    elif settings.mlflow_is_server:
        found.append(_unreachable_server(settings.mlflow_tracking_uri))
    elif settings.mlflow_tracking_uri.startswith("postgresql"):
        found.append(_unreachable_postgres(settings.mlflow_tracking_uri, "MLFLOW_TRACKING_URI"))
    if settings.dagster_postgres_url:
        found.append(_unreachable_postgres(settings.dagster_postgres_url, "DAGSTER_POSTGRES_URL"))
    if os.access(settings.home, os.W_OK) and settings.mlflow_artifacts.exists():
        found.append(_unwritable(settings.mlflow_artifacts, "the MLflow artifact folder"))
    return [problem for problem in found if problem]
