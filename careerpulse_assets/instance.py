"""Which Dagster instance settings CareerPulse runs on: `$DAGSTER_HOME/dagster.yaml`.

`dagster-instance.yaml` (SQLite under DAGSTER_HOME) by default, `deploy/dagster.yaml` (PostgreSQL)
when DAGSTER_POSTGRES_URL is set. The file is written when missing, and rewritten when it is one
of these two and the other is wanted now (setting or unsetting DAGSTER_POSTGRES_URL switches);
any other dagster.yaml is someone's own and left as it is.

    python -m careerpulse_assets.instance     # what `make run`, `make ui` and `make serve` do first
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SQLITE_TEMPLATE = REPO / "dagster-instance.yaml"
POSTGRES_TEMPLATE = REPO / "deploy" / "dagster.yaml"


def dagster_home(env=os.environ) -> Path:
    home = env.get("CAREERPULSE_HOME") or ".careerpulse"
    return Path(env.get("DAGSTER_HOME") or Path(home) / "dagster").expanduser().resolve()


def ensure_instance_file(home: Path, postgres: bool) -> str:
    """Make `home/dagster.yaml` the settings wanted; say what was done."""
    wanted = (POSTGRES_TEMPLATE if postgres else SQLITE_TEMPLATE).read_text()
    ours = {SQLITE_TEMPLATE.read_text(), POSTGRES_TEMPLATE.read_text()}
    target = home / "dagster.yaml"
    home.mkdir(parents=True, exist_ok=True)
    if target.exists():
        current = target.read_text()
        if current == wanted:
            return f"{target}: up to date"
        if current not in ours:
            storage = "PostgreSQL" if "postgres" in current else "its own storage"
            return f"{target}: your own, left as it is ({storage})"
    target.write_text(wanted)
    return f"{target}: written ({'PostgreSQL' if postgres else 'SQLite'})"


def main() -> int:
    print(f"careerpulse: {ensure_instance_file(dagster_home(), bool(os.environ.get('DAGSTER_POSTGRES_URL')))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
