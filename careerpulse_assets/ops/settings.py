"""Settings read from the environment and `.env`, with the defaults the README documents."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values

DEFAULT_MUSE_BASE_URL = "https://www.themuse.com/api/public"
DEFAULT_SENSOR_INTERVAL_SECONDS = 300
# Each sensor tick is one request: at 60 s that is 60 of the 500 an hour allowed without a key.
MIN_SENSOR_INTERVAL_SECONDS = 60
DEFAULT_GOLD_MAX_AGE_HOURS = 24
# The live listing gets new postings every hour; three days without one is a stopped source.
DEFAULT_MAX_POSTING_AGE_DAYS = 3
# The quality gate of the classifier (accuracy and macro-F1 at full coverage, nested out-of-fold:
# `knn_holdout_accuracy`, `knn_holdout_macro_f1`); the precision a category written on a posting
# must have (one in ten in the wrong category is what a reader of one posting can carry); the
# coverage below which `imputation_coverage` warns; the expected L1 error of the category mix of
# the postings without a category above which `gold_count_error` warns (0.25: a quarter of the
# postings without a category attributed to the wrong categories).
DEFAULT_MIN_ACCURACY = 0.75
DEFAULT_MIN_MACRO_F1 = 0.70
DEFAULT_MIN_PRECISION = 0.90
DEFAULT_MIN_COVERAGE = 0.80
DEFAULT_MAX_COUNT_ERROR = 0.25
# Requests a run may make to the API. 400 keeps a run under the 500 an hour allowed without a key
# with room for the sensor's 12 an hour, so runs started every tick never queue behind the rate
# limit (a run of 400 requests takes 2-5 minutes at the API's usual pace). With a key (3,600 an
# hour) raise it, to 3,000 for example: a full crawl of the live API (~20,400 requests) then
# takes 7 runs instead of 51.
DEFAULT_MAX_REQUESTS_PER_RUN = 400
# A full crawl (every listing walked whole, capped ones parted) starts when the last one started
# this many days ago: it finds postings published into pages read before and edits to old ones.
# At the live API's size it costs about 23,000 requests (BENCHMARKS.md): weekly, 3,300 a day.
DEFAULT_FULL_CRAWL_DAYS = 7


class SettingsError(ValueError):
    """An environment setting with a value we cannot use."""


def apply_env_file(
    folder: Path | None = None, environ: MutableMapping[str, str] = os.environ
) -> list[str]:
    """Put the variables of `.env` in `folder` (default: the working directory) into `environ`;
    the names set, in file order. No file, no change.

    Dagster's rule, so that every command agrees with `dagster dev`, `dg` and the code server: a
    variable in `.env` wins over the same variable in the environment (Dagster 1.13 reads `.env`
    from the working directory with python-dotenv and sets each value over the environment's,
    dagster/_cli/utils.py `_inject_local_env_file`, before it picks its instance).
    """
    path = (folder or Path.cwd()) / ".env"
    if not path.is_file():
        return []
    values = {name: value for name, value in dotenv_values(path).items() if value is not None}
    environ.update(values)
    return list(values)


def _optional_positive_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise SettingsError(f"{name} must be a positive integer, got {raw!r}")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _optional_positive_int(env, name)
    if value is not None and value > 65535:
        raise SettingsError(f"{name} must be a TCP port (1-65535), got {value}")
    return value or default


def redact_url(url: str) -> str:
    """A URL without its password (postgresql://user:***@host/db), for messages and metadata."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _sensor_interval(env: Mapping[str, str]) -> int:
    value = _optional_positive_int(env, "CAREERPULSE_SENSOR_INTERVAL_SECONDS")
    if value is None:
        return DEFAULT_SENSOR_INTERVAL_SECONDS
    if value < MIN_SENSOR_INTERVAL_SECONDS:
        raise SettingsError(
            f"CAREERPULSE_SENSOR_INTERVAL_SECONDS must be at least {MIN_SENSOR_INTERVAL_SECONDS}, "
            f"got {value}: each tick is one request, and The Muse allows 500 requests an hour "
            "without a key (3,600 with one), which ingestion needs too"
        )
    return value


def _share(env: Mapping[str, str], name: str, default: float, most: float = 1.0) -> float:
    """A number from 0 to `most` (a share, a bar, an L1 error), the default when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number from 0 to {most:g}, got {raw!r}") from None
    if not 0.0 <= value <= most:
        raise SettingsError(f"{name} must be a number from 0 to {most:g}, got {raw!r}")
    return value


def _optional_path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).expanduser().resolve() if raw else None


def _names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A `;`-separated list (Muse category names contain commas)."""
    return tuple(part.strip() for part in env.get(name, "").split(";") if part.strip())


@dataclass(frozen=True)
class Settings:
    home: Path
    muse_base_url: str = DEFAULT_MUSE_BASE_URL
    muse_api_key: str | None = None
    muse_archive: Path | None = None
    max_pages: int | None = None
    max_requests_per_run: int = DEFAULT_MAX_REQUESTS_PER_RUN
    full_crawl_days: int = DEFAULT_FULL_CRAWL_DAYS
    crawl_categories: tuple[str, ...] = ()
    crawl_levels: tuple[str, ...] = ()
    # MLflow's own variable: a database URL (postgresql://...) or a tracking server's URL.
    mlflow_tracking_uri_setting: str | None = None
    dagster_postgres_url: str | None = None
    sensor_interval_seconds: int = DEFAULT_SENSOR_INTERVAL_SECONDS
    gold_max_age_hours: int = DEFAULT_GOLD_MAX_AGE_HOURS
    max_posting_age_days: int = DEFAULT_MAX_POSTING_AGE_DAYS
    host: str = "127.0.0.1"
    dagster_port: int = 3000
    mlflow_port: int = 5000
    labels_dir_setting: Path | None = None
    min_accuracy: float = DEFAULT_MIN_ACCURACY
    min_macro_f1: float = DEFAULT_MIN_MACRO_F1
    min_coverage: float = DEFAULT_MIN_COVERAGE
    min_precision: float = DEFAULT_MIN_PRECISION
    max_count_error: float = DEFAULT_MAX_COUNT_ERROR
    dagster_home_setting: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        home = Path(env.get("CAREERPULSE_HOME") or ".careerpulse").expanduser().resolve()
        base_url = (env.get("CAREERPULSE_MUSE_BASE_URL") or DEFAULT_MUSE_BASE_URL).strip()
        if not base_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"CAREERPULSE_MUSE_BASE_URL must start with http:// or https://, got {base_url!r}"
            )
        archive = env.get("CAREERPULSE_MUSE_ARCHIVE", "").strip()
        return cls(
            home=home,
            muse_base_url=base_url.rstrip("/"),
            muse_api_key=env.get("CAREERPULSE_MUSE_API_KEY") or None,
            muse_archive=Path(archive).expanduser().resolve() if archive else None,
            max_pages=_optional_positive_int(env, "CAREERPULSE_MAX_PAGES"),
            max_requests_per_run=_optional_positive_int(env, "CAREERPULSE_MAX_REQUESTS_PER_RUN")
            or DEFAULT_MAX_REQUESTS_PER_RUN,
            full_crawl_days=_optional_positive_int(env, "CAREERPULSE_FULL_CRAWL_DAYS")
            or DEFAULT_FULL_CRAWL_DAYS,
            crawl_categories=_names(env, "CAREERPULSE_CRAWL_CATEGORIES"),
            crawl_levels=_names(env, "CAREERPULSE_CRAWL_LEVELS"),
            mlflow_tracking_uri_setting=env.get("MLFLOW_TRACKING_URI", "").strip() or None,
            dagster_postgres_url=env.get("DAGSTER_POSTGRES_URL", "").strip() or None,
            sensor_interval_seconds=_sensor_interval(env),
            gold_max_age_hours=_optional_positive_int(env, "CAREERPULSE_GOLD_MAX_AGE_HOURS")
            or DEFAULT_GOLD_MAX_AGE_HOURS,
            max_posting_age_days=_optional_positive_int(env, "CAREERPULSE_MAX_POSTING_AGE_DAYS")
            or DEFAULT_MAX_POSTING_AGE_DAYS,
            host=env.get("HOST", "").strip() or "127.0.0.1",
            dagster_port=_port(env, "DAGSTER_PORT", 3000),
            mlflow_port=_port(env, "MLFLOW_PORT", 5000),
            labels_dir_setting=_optional_path(env, "CAREERPULSE_LABELS_DIR"),
            dagster_home_setting=_optional_path(env, "DAGSTER_HOME"),
            min_accuracy=_share(env, "CAREERPULSE_MIN_ACCURACY", DEFAULT_MIN_ACCURACY),
            min_macro_f1=_share(env, "CAREERPULSE_MIN_MACRO_F1", DEFAULT_MIN_MACRO_F1),
            min_coverage=_share(env, "CAREERPULSE_MIN_COVERAGE", DEFAULT_MIN_COVERAGE),
            min_precision=_share(env, "CAREERPULSE_MIN_PRECISION", DEFAULT_MIN_PRECISION),
            max_count_error=_share(env, "CAREERPULSE_MAX_COUNT_ERROR", DEFAULT_MAX_COUNT_ERROR,
                                   most=2.0),
        )

    @property
    def dagster_home(self) -> Path:
        """Dagster's instance folder: DAGSTER_HOME, else $CAREERPULSE_HOME/dagster (where the
        repository's dagster.yaml keeps plain `dagster dev`'s storage when run from the root)."""
        return self.dagster_home_setting or self.home / "dagster"

    @property
    def duckdb_path(self) -> Path:
        return self.home / "careerpulse.duckdb"

    @property
    def mlflow_tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI when set, else the SQLite file under CAREERPULSE_HOME."""
        return self.mlflow_tracking_uri_setting or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_sqlite_path(self) -> Path | None:
        """The local SQLite file MLflow tracks in, when it tracks in one."""
        uri = self.mlflow_tracking_uri
        return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None

    @property
    def mlflow_is_server(self) -> bool:
        """MLflow is a tracking server (it keeps the artifacts), not a database we write to."""
        return self.mlflow_tracking_uri.startswith(("http://", "https://"))

    @property
    def mlflow_ui_url(self) -> str:
        """Where people open MLflow, and where the classifier's link points: the tracking server
        itself; else the MLflow UI `make ui` / `make serve` last started for this home (they
        record it, whatever MLFLOW_PORT they ran with); else HOST:MLFLOW_PORT."""
        if self.mlflow_is_server:
            return self.mlflow_tracking_uri.rstrip("/")
        try:
            recorded = self.mlflow_ui_record.read_text().strip()
        except OSError:
            recorded = ""
        return recorded or self.mlflow_served_url

    @property
    def mlflow_served_url(self) -> str:
        """The MLflow UI `make ui` / `make serve` start now: HOST:MLFLOW_PORT."""
        return f"http://{self.browser_host}:{self.mlflow_port}"

    @property
    def mlflow_ui_record(self) -> Path:
        """Where `make ui` / `make serve` record the MLflow UI they started."""
        return self.home / "mlflow-ui.url"

    @property
    def dagster_ui_url(self) -> str:
        return f"http://{self.browser_host}:{self.dagster_port}"

    @property
    def browser_host(self) -> str:
        """HOST as a browser on this machine reaches it (a wildcard bind is not an address)."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host

    @property
    def labels_dir(self) -> Path:
        """Reviewers' label files: CAREERPULSE_LABELS_DIR, else $CAREERPULSE_HOME/labels."""
        return self.labels_dir_setting or self.home / "labels"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlartifacts"



# `make ui` / `make serve` start their servers with these settings in this variable (JSON): a
# code server that reloads reads `.env` again and must tell when one of them changed there,
# since the servers keep what they were started with.
SERVER_SETTINGS_VARIABLE = "CAREERPULSE_SERVER_SETTINGS"


def server_settings(settings: Settings) -> dict[str, str]:
    """The settings the long-running servers of `make ui` / `make serve` take when they start
    and keep until they stop (the instance, the MLflow store and server, the ports), by the
    variable that sets them: a reload of the code cannot change them."""
    return {
        "CAREERPULSE_HOME": str(settings.home),
        "DAGSTER_HOME": str(settings.dagster_home),
        "DAGSTER_POSTGRES_URL": settings.dagster_postgres_url or "",
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "HOST": settings.host,
        "DAGSTER_PORT": str(settings.dagster_port),
        "MLFLOW_PORT": str(settings.mlflow_port),
    }


def restart_needed(started_with: Mapping[str, str], settings: Settings) -> list[str]:
    """What changed since the servers started (`server_settings` then, now), one
    `NAME: before -> now` each: settings that take effect only when `make ui` / `make serve`
    start again. Passwords in URLs are shown as ***."""
    now = server_settings(settings)
    return [f"{name}: {redact_url(started_with[name]) or '(unset)'} -> "
            f"{redact_url(now[name]) or '(unset)'}"
            for name in now if name in started_with and started_with[name] != now[name]]
