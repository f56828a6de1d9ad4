"""MLflow's SQLite store: created once whoever comes first, and a half-made one named."""

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from careerpulse_assets.ops.preflight import problems
from careerpulse_assets.ops.settings import Settings

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


@pytest.fixture(scope="module")
def made_store(tmp_path_factory) -> Path:
    """A store as create_store makes it (made once: each test damages a copy)."""
    from careerpulse_assets.classification.registry import create_store

    store = tmp_path_factory.mktemp("made") / "made.db"
    create_store(f"sqlite:///{store}")
    return store


@pytest.mark.parametrize("damage, found", [
    ("CREATE TABLE _alembic_tmp_tags (key TEXT)", "unfinished migration tables _alembic_tmp_tags"),
    ("UPDATE alembic_version SET version_num = '451aebb31d03'", "schema version 451aebb31d03"),
    ("DROP TABLE alembic_version", "no schema version"),
])
def test_a_half_made_store_is_named_before_a_run_with_what_to_do(tmp_path, made_store, damage,
                                                                 found):
    home = tmp_path / "home"
    home.mkdir()
    store = home / "mlflow.db"
    shutil.copy(made_store, store)
    assert problems(Settings(home=home), home / "dagster") == []
    with sqlite3.connect(store) as connection:
        connection.execute(damage)
    (problem,) = problems(Settings(home=home), home / "dagster")
    assert problem.startswith(f"the MLflow store {store} was left half-created or half-migrated")
    assert found in problem
    assert "move it aside" in problem and f"mlflow db upgrade sqlite:///{store}" in problem


def graph_run(home: Path, archive: Path) -> dict:
    """The whole graph in this process, in `home` on `archive`, on the Dagster instance `make run`
    keeps in the home (its dagster.yaml written first, as `make run` does): the knn_classifier's
    metadata of that run, and what the run logged (`messages`). (What moves is the folder, not
    the process: this ran `make run` three times, 10 s of imports each.)"""
    from dagster import DagsterInstance

    from careerpulse_assets.ops.instance import ensure_instance_file

    from .graph import materialize_graph

    ensure_instance_file(home / "dagster", postgres=False)
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        result = materialize_graph(Settings(home=home, muse_archive=archive), instance=instance)
        messages = "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))
    assert result.success
    (event,) = [e for e in result.get_asset_materialization_events()
                if e.asset_key.to_user_string() == "knn_classifier"]
    return {"messages": messages, **{k: v.value for k, v in
                                     event.materialization.metadata.items()}}


def files_naming(folder: Path, text: str) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and text.encode() in p.read_bytes())


@pytest.mark.slow
def test_a_home_moved_as_a_folder_retrains_nothing_and_writes_nothing_where_it_was(tmp_path):
    """Issue 27: run in A, `mv A B`, run in B: 'trained because 42 labelled postings changed
    (100.0%)', new artifacts written under A (re-created), and where A could not be made every
    training failed with `[Errno 20] Not a directory: .../A/mlartifacts`."""
    from .muse_fixtures import synthetic_postings, write_archive

    archive = write_archive(tmp_path / "archive", synthetic_postings())
    first, moved = tmp_path / "A", tmp_path / "B"
    assert graph_run(first, archive)["retrained"]
    first.rename(moved)
    first.write_text("a file where the home was: nothing can be made under it\n")

    again = graph_run(moved, archive)
    assert not again["retrained"], again["reason"]
    assert again["reason"].startswith("labels unchanged since models:/careerpulse-knn-category/1")
    assert f"now in {(moved / 'mlartifacts').as_uri()} (the home was moved or restored)" in (
        again["messages"])

    # New labelled postings: a training, its artifacts in B.
    more = write_archive(tmp_path / "more", synthetic_postings()
                         + synthetic_postings(per_category=10, first_id=200_000, seed=8))
    retrained = graph_run(moved, more)
    assert retrained["retrained"] and retrained["challenger"].endswith("/2")
    assert first.is_file()  # never made into a folder again
    # Nothing stored points to A but Dagster's history of what the runs did (the first run's
    # events in A, the second's message that the store was pointed at B).
    outside_history = [name for name in files_naming(moved, str(first))
                       if not name.startswith("dagster/history/")]
    assert outside_history == []
    with sqlite3.connect(moved / "mlflow.db") as connection:
        locations = connection.execute(
            "SELECT artifact_uri FROM runs UNION ALL SELECT storage_location FROM model_versions "
            "UNION ALL SELECT artifact_location FROM logged_models").fetchall()
    assert len(locations) == 6
    assert all(uri.startswith((moved / "mlartifacts").as_uri() + "/") for (uri,) in locations)
