"""The real shared postings, served page by page on loopback, through `make run`'s entry point."""

import re

import pytest
import subprocess
import sys

from .graph import query
from .muse_server import serve_muse
from .servers import careerpulse_env

# `make run` over HTTP on the shared postings.
pytestmark = pytest.mark.slow

SHARED_UNIQUE_POSTINGS = 1598


def test_make_run_over_http_ingests_every_shared_posting(shared_items, settings_for):
    settings = settings_for()
    with serve_muse(shared_items) as (stub, base_url):
        # careerpulse_env drops MLFLOW_TRACKING_URI too: MLflow's set_tracking_uri in an earlier
        # in-process test leaves it in os.environ, and the run then wrote ./mlflow.db.
        env = careerpulse_env(settings.home, CAREERPULSE_MUSE_BASE_URL=base_url,
                              CAREERPULSE_MUSE_API_KEY="e2e-secret-key")
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
    # Every run delivers, whatever the model scores: exit 0, every table written.
    assert done.returncode == 0, summary[-3000:]
    assert "not materialised" not in summary and "DagsterAssetCheckFailedError" not in summary
    imputed = query(settings, "SELECT count(*) AS n, count(category) AS c, "
                              "count(*) FILTER (WHERE category_source = 'unclassified') AS u, "
                              "count(*) FILTER (WHERE is_imputed) AS i FROM silver.imputed_silver")
    n, c, unclassified, written = imputed.iloc[0].tolist()
    assert n == c == SHARED_UNIQUE_POSTINGS  # a category on every posting, never NULL
    assert unclassified + written == 172  # the postings without one (170 + 2 'Unknown')
    assert f"imputed            {written} of 172 postings without a category" in summary
    assert "threshold          " in summary and "gold_full_grid_sums_to_silver    passed" in summary
    # The estimate of what is (or, held back, would be) written, with its intervals.
    assert re.search(r"  (written \(est\.\)|at ≥ 0\.\d{3} \(est\.\)) +accuracy 0\.\d{3} "
                     r"\[0\.\d{3}–0\.\d{3}\], macro-F1 0\.\d{3} \[0\.\d{3}–0\.\d{3}\], "
                     r"coverage \d+\.\d% \[", summary), summary
    gold = query(settings, "SELECT sum(postings) AS n FROM gold.gold_daily_counts")["n"][0]
    assert gold == SHARED_UNIQUE_POSTINGS
    assert query(settings, "SELECT count(*) AS n FROM gold.gold_category_forecast")["n"][0] > 0
    assert query(settings, "SELECT count(*) AS n FROM silver.review_queue")["n"][0] >= unclassified
