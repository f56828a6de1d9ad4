"""Two runs writing the same DuckDB file at once, and the instance settings that queue them."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance

from careerpulse_assets.ops.instance import ensure_instance_file

from .graph import query
from .muse_fixtures import synthetic_postings, write_archive

# Two processes ingest at once.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def test_two_processes_ingesting_at_once_both_succeed_without_duplicates(tmp_path, settings_for):
    items = synthetic_postings(per_category=200, unlabelled=60)  # 660 postings, 33 pages
    archive = write_archive(tmp_path / "archive", items)
    settings = settings_for(archive=archive)
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "careerpulse_assets_tests.ingest_once", str(settings.home),
             str(archive)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    counts = query(
        settings,
        "SELECT (SELECT count(*) FROM bronze.bronze_postings) AS bronze, "
        "(SELECT count(DISTINCT posting_id) FROM bronze.bronze_postings) AS ids, "
        "(SELECT count(*) FROM silver.silver_postings) AS silver",
    ).iloc[0]
    assert counts.tolist() == [len(items)] * 3


def test_the_instance_settings_queue_runs_and_serialise_duckdb_steps(tmp_path):
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 1
    assert config["concurrency"]["pools"]["default_limit"] == 1
    home = tmp_path / "dagster"
    ensure_instance_file(home, postgres=False)
    with DagsterInstance.from_config(str(home)) as instance:
        # What the run queue daemon of `dagster dev` reads.
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == 1
        assert concurrency.pool_config.default_pool_limit == 1
