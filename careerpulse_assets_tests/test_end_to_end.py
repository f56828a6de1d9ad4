"""The real shared postings, served page by page on loopback, through `make run`'s entry point."""

import pytest
import os
import subprocess
import sys

from .graph import query
from .muse_server import serve_muse

# `make run` over HTTP on the shared postings.
pytestmark = pytest.mark.slow

SHARED_UNIQUE_POSTINGS = 1598


def test_make_run_over_http_ingests_every_shared_posting(shared_items, settings_for):
    settings = settings_for()
    with serve_muse(shared_items) as (stub, base_url):
        env = {
            **os.environ,
            "CAREERPULSE_HOME": str(settings.home),
            "CAREERPULSE_MUSE_BASE_URL": base_url,
            "CAREERPULSE_MUSE_API_KEY": "e2e-secret-key",
            "DAGSTER_HOME": str(settings.home / "dagster"),
        }
        env.pop("CAREERPULSE_MUSE_ARCHIVE", None)
        env.pop("CAREERPULSE_MAX_PAGES", None)
        done = subprocess.run(
            [sys.executable, "-m", "careerpulse_assets.run"],
            env=env, capture_output=True, text=True, timeout=600,
        )
    summary = done.stdout
    assert "CareerPulse run" in summary, done.stderr[-3000:]
    assert len(stub.requests) == 80  # 1,598 postings, 20 a page
    assert "e2e-secret-key" not in done.stdout + done.stderr

    counts = query(
        settings,
        "SELECT (SELECT count(*) FROM bronze.bronze_postings) AS bronze, "
        "(SELECT count(*) FROM silver.silver_postings) AS silver, "
        "(SELECT count(DISTINCT posting_id) FROM silver.silver_postings) AS ids",
    ).iloc[0]
    assert counts.tolist() == [SHARED_UNIQUE_POSTINGS] * 3
    stored = query(settings, "SELECT string_agg(payload, '') AS p FROM bronze.bronze_postings")
    assert "e2e-secret-key" not in stored["p"][0]

    assert "knn_holdout_macro_f1" in summary and "k=" in summary
    if done.returncode == 0:
        imputed = query(settings, "SELECT count(*) AS n, count(category) AS c FROM silver.imputed_silver")
        assert imputed["n"][0] == imputed["c"][0] == SHARED_UNIQUE_POSTINGS
        assert "gold_full_grid_sums_to_silver    passed" in summary
    else:
        # The seed method is below the macro-F1 bar on this data: the run must say so and stop.
        assert "FAILED (ERROR)" in summary and "imputations are not written" in summary
        assert "not materialised in this run: imputed_silver, gold_daily_counts" in summary
        assert "stopped the run: label postings of the weak categories" in summary
        assert "DagsterAssetCheckFailedError" not in summary
