"""MLflow's SQLite store: created once whoever comes first, and a half-made one named."""

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from careerpulse_assets.preflight import problems
from careerpulse_assets.settings import Settings

# What every CareerPulse process does first with the store (`make run`'s mlflow resource,
# `make ui` before it starts `mlflow server`), then a first use of it.
OPEN_STORE = """
import sys
import mlflow
from careerpulse_assets.resources import ensure_experiment

uri, artifacts = sys.argv[1], sys.argv[2]
ensure_experiment(uri, "careerpulse", artifacts)
client = mlflow.MlflowClient(tracking_uri=uri)
run = client.create_run(client.get_experiment_by_name("careerpulse").experiment_id)
client.log_metric(run.info.run_id, "m", 1.0)
print("ok")
"""


@pytest.mark.slow
def test_three_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    racers = [subprocess.Popen([sys.executable, "-c", OPEN_STORE, uri, str(tmp_path / "art")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(3)]
    outcomes = [racer.communicate(timeout=300) for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * 3, [err[-1500:] for _, err in outcomes]
    with sqlite3.connect(tmp_path / "mlflow.db") as connection:
        assert connection.execute("SELECT count(*) FROM experiments WHERE name = 'careerpulse'"
                                  ).fetchone() == (1,)
        assert connection.execute("SELECT count(*) FROM runs").fetchone() == (3,)
    assert problems(Settings(home=tmp_path), tmp_path / "dagster") == []


def made_store(tmp_path: Path) -> Path:
    from careerpulse_assets.tracking import create_store

    create_store(f"sqlite:///{tmp_path / 'made.db'}")
    return tmp_path / "made.db"


@pytest.mark.parametrize("damage, found", [
    ("CREATE TABLE _alembic_tmp_tags (key TEXT)", "unfinished migration tables _alembic_tmp_tags"),
    ("UPDATE alembic_version SET version_num = '451aebb31d03'", "schema version 451aebb31d03"),
    ("DROP TABLE alembic_version", "no schema version"),
])
def test_a_half_made_store_is_named_before_a_run_with_what_to_do(tmp_path, damage, found):
    home = tmp_path / "home"
    home.mkdir()
    store = home / "mlflow.db"
    shutil.copy(made_store(tmp_path), store)
    assert problems(Settings(home=home), home / "dagster") == []
    with sqlite3.connect(store) as connection:
        connection.execute(damage)
    (problem,) = problems(Settings(home=home), home / "dagster")
    assert problem.startswith(f"the MLflow store {store} was left half-created or half-migrated")
    assert found in problem
    assert "move it aside" in problem and f"mlflow db upgrade sqlite:///{store}" in problem
