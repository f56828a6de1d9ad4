"""Settings read from the environment, with the defaults the README documents."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MUSE_BASE_URL = "https://www.themuse.com/api/public"


class SettingsError(ValueError):
    """An environment setting with a value we cannot use."""


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
    crawl_categories: tuple[str, ...] = ()
    crawl_levels: tuple[str, ...] = ()

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
            crawl_categories=_names(env, "CAREERPULSE_CRAWL_CATEGORIES"),
            crawl_levels=_names(env, "CAREERPULSE_CRAWL_LEVELS"),
        )

    @property
    def duckdb_path(self) -> Path:
        return self.home / "careerpulse.duckdb"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_sqlite_path(self) -> Path | None:
        """The local SQLite file MLflow tracks in, when it tracks in one."""
        return self.home / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def storage_dir(self) -> Path:
        """Pickled non-table outputs (the fitted model) live here."""
        return self.home / "storage"
