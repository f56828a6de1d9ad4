"""Which Dagster instance settings CareerPulse runs on: `$DAGSTER_HOME/dagster.yaml`.

The repository's `dagster.yaml` holds the settings (pool limit, run queue, run monitoring, the
run launcher). Dagster reads it itself where DAGSTER_HOME is unset (plain `dagster dev` from the
root); wherever DAGSTER_HOME is set, `$DAGSTER_HOME/dagster.yaml` is read instead, and this
module writes it: the repository's file without its storage sections (storage then lives in
DAGSTER_HOME, Dagster's default), or `deploy/dagster.yaml` (PostgreSQL) when DAGSTER_POSTGRES_URL
is set. The file is written when missing and rewritten when it is one of ours and another is
wanted now (setting or unsetting DAGSTER_POSTGRES_URL switches, a changed `dagster.yaml` is
copied); any other dagster.yaml is someone's own and left as it is.

    python -m careerpulse_assets.ops.instance     # what `make run`, `make ui` and `make serve` do first
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SETTINGS_FILE = REPO / "dagster.yaml"
POSTGRES_TEMPLATE = REPO / "deploy" / "dagster.yaml"
# The sections that place the storage of an instance read from the root (relative paths).
ROOT_STORAGE_SECTIONS = ("storage", "local_artifact_storage", "compute_logs")
WRITTEN_HEADER = "# Written by careerpulse_assets/ops/instance.py from the repository's dagster.yaml"
# Files written by earlier versions of this module start with this line.
EARLIER_HEADER = "# The Dagster instance settings for CareerPulse"


def sqlite_instance_text() -> str:
    """The repository's dagster.yaml without its storage sections, as $DAGSTER_HOME/dagster.yaml
    (Dagster then keeps runs, event logs and compute logs in DAGSTER_HOME itself)."""
    settings = yaml.safe_load(SETTINGS_FILE.read_text())
    for section in ROOT_STORAGE_SECTIONS:
        settings.pop(section, None)
    return (f"{WRITTEN_HEADER}\n# (storage sections left out: storage is this folder). Edit that "
            "file, not this one.\n\n" + yaml.safe_dump(settings, sort_keys=False))


def _ours(text: str) -> bool:
    return text.startswith((WRITTEN_HEADER, EARLIER_HEADER))


def ensure_instance_file(home: Path, postgres: bool) -> str:
    """Make `home/dagster.yaml` the settings wanted; say what was done."""
    wanted = POSTGRES_TEMPLATE.read_text() if postgres else sqlite_instance_text()
    target = home / "dagster.yaml"
    home.mkdir(parents=True, exist_ok=True)
    if target.exists():
        current = target.read_text()
        if current == wanted:
            return f"{target}: up to date"
        if not _ours(current):
            storage = "PostgreSQL" if "postgres" in current else "its own storage"
            return f"{target}: your own, left as it is ({storage})"
    target.write_text(wanted)
    return f"{target}: written ({'PostgreSQL' if postgres else 'SQLite'})"


def main() -> int:
    from .preflight import settings_for_command

    settings = settings_for_command(check=False)
    if settings is None:
        return 1
    done = ensure_instance_file(settings.dagster_home, bool(settings.dagster_postgres_url))
    print(f"careerpulse: {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
