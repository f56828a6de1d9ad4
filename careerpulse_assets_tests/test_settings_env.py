"""Settings from `.env`, read as Dagster reads it, and where the classifier's MLflow link points."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from careerpulse_assets.ops.settings import Settings, apply_env_file

REPO = Path(__file__).resolve().parents[1]
ENV_FILE = """# comments and quotes as python-dotenv reads them
CAREERPULSE_HOME=/srv/careerpulse
CAREERPULSE_MAX_PAGES="7"
MLFLOW_PORT=5310
export CAREERPULSE_MUSE_API_KEY='k e y'
"""


def test_env_file_values_are_set_as_dagster_sets_them_over_the_environment(tmp_path, monkeypatch):
    """Equal to what Dagster's own commands do before choosing their instance (`dagster dev`,
    `dg`, `dagster asset materialize`): so `make` and the Dagster commands agree."""
    from dagster._cli.utils import _inject_local_env_file

    (tmp_path / ".env").write_text(ENV_FILE)
    base = {"CAREERPULSE_HOME": "/from/the/environment", "HOST": "0.0.0.0", "PATH": "/bin"}
    ours = dict(base)
    assert apply_env_file(tmp_path, ours) == [
        "CAREERPULSE_HOME", "CAREERPULSE_MAX_PAGES", "MLFLOW_PORT", "CAREERPULSE_MUSE_API_KEY"]
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in base.items():
        monkeypatch.setenv(name, value)
    import logging

    with _inject_local_env_file(logging.getLogger("test")):
        dagsters = dict(os.environ)
    assert ours == dagsters
    assert ours["CAREERPULSE_HOME"] == "/srv/careerpulse"  # .env wins, as in Dagster
    assert ours["HOST"] == "0.0.0.0" and ours["CAREERPULSE_MUSE_API_KEY"] == "k e y"
    settings = Settings.from_env(ours)
    assert (settings.home, settings.max_pages, settings.mlflow_port) == (
        Path("/srv/careerpulse"), 7, 5310)
    assert settings.dagster_home == Path("/srv/careerpulse/dagster")


def test_no_env_file_changes_nothing(tmp_path):
    environ = {"CAREERPULSE_HOME": "/x"}
    assert apply_env_file(tmp_path, environ) == [] and environ == {"CAREERPULSE_HOME": "/x"}


def test_commands_read_env_from_their_working_directory(tmp_path):
    """What `make` runs: the instance file lands in the DAGSTER_HOME `.env` names."""
    (tmp_path / ".env").write_text(f"CAREERPULSE_HOME={tmp_path / 'home'}\n"
                                   f"DAGSTER_HOME={tmp_path / 'instance'}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CAREERPULSE_HOME", "DAGSTER_HOME")}
    done = subprocess.run([sys.executable, "-m", "careerpulse_assets.ops.instance"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"careerpulse: {tmp_path / 'instance' / 'dagster.yaml'}: written (SQLite)")


@pytest.fixture
def home(tmp_path) -> Settings:
    return Settings.from_env({"CAREERPULSE_HOME": str(tmp_path), "MLFLOW_PORT": "5000"})


def test_the_mlflow_link_follows_the_ui_make_ui_last_started_whatever_port_runs_see(home, capsys):
    from careerpulse_assets.ops.serve import _record_mlflow_ui

    assert home.mlflow_ui_url == "http://127.0.0.1:5000"  # nothing started yet: the setting
    ui = Settings.from_env({"CAREERPULSE_HOME": str(home.home), "MLFLOW_PORT": "5310"})
    _record_mlflow_ui(ui)  # `make ui MLFLOW_PORT=5310`
    # A later `make run` on the default port links to the UI that is there.
    assert home.mlflow_ui_url == "http://127.0.0.1:5310"
    assert "moved" not in capsys.readouterr().out
    _record_mlflow_ui(Settings.from_env({"CAREERPULSE_HOME": str(home.home), "MLFLOW_PORT": "5320"}))
    assert "the MLflow UI moved from http://127.0.0.1:5310 to http://127.0.0.1:5320" in (
        capsys.readouterr().out)
    assert home.mlflow_ui_url == "http://127.0.0.1:5320"


def test_a_tracking_server_is_its_own_ui(home):
    server = Settings.from_env({"CAREERPULSE_HOME": str(home.home),
                                "MLFLOW_TRACKING_URI": "http://mlflow.example:5000/"})
    home.mlflow_ui_record.write_text("http://127.0.0.1:5310\n")
    assert server.mlflow_ui_url == "http://mlflow.example:5000"
