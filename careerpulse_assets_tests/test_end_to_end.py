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
            [sys.executable, "-m", "careerpulse_assets.ops.run"],
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
    # One coverage (of the postings without a category), the labelled estimate apart.
    assert (f"per posting        {written} of 172 postings without a category get one written"
            in summary)
    assert re.search(r"on labelled postings the rule \(probability ≥ 0\.\d\d.*\) is right "
                     r"0\.\d{3} \[0\.\d{3}–0\.\d{3}\] at coverage", summary), summary
    assert "gold_full_grid_sums_to_silver" not in summary.split("delivered")[0]  # it passed
    # Every posting counted: gold's estimates add up to silver, day by day, and the 2025-26
    # categories have counts with intervals; the summary shows the same figures as the table.
    gold = query(settings, "SELECT sum(postings) AS n, sum(estimated_postings) AS e, "
                           "sum(estimated_postings) FILTER (WHERE category = 'Unclassified') AS u "
                           "FROM gold.gold_daily_counts").iloc[0]
    assert gold["n"] == SHARED_UNIQUE_POSTINGS
    assert abs(gold["e"] - SHARED_UNIQUE_POSTINGS) < 1e-6 and gold["u"] < 1e-9
    recent = query(settings, "SELECT category, sum(estimated_postings) AS e, sum(estimated_low) "
                             "AS lo, sum(estimated_high) AS hi FROM gold.gold_daily_counts WHERE "
                             "day >= DATE '2025-01-01' GROUP BY 1 ORDER BY e DESC")
    assert abs(recent["e"].sum() - query(settings, "SELECT count(*) AS n FROM "
                                         "silver.silver_postings WHERE publication_day >= "
                                         "DATE '2025-01-01'")["n"][0]) < 1e-6
    assert ((recent["lo"] <= recent["e"] + 1e-9) & (recent["e"] <= recent["hi"] + 1e-9)).all()
    mix = query(settings, "SELECT * FROM silver.unlabelled_mix ORDER BY estimated_postings DESC")
    top = mix.iloc[0]
    method = top["method"]
    assert (f"counted by {method}, expected error {top['expected_share_error']:.3f}" in summary)
    assert (f"{top['category']} {top['estimated_postings']:.0f} [{top['estimated_low']:.0f}–"
            f"{top['estimated_high']:.0f}]" in summary)
    assert abs(mix["estimated_postings"].sum() - 172) < 1e-6
    # The forecast learns from the estimated counts and no longer forecasts Unclassified.
    forecast = query(settings, "SELECT DISTINCT category FROM gold.gold_category_forecast")
    assert len(forecast) > 0 and "Unclassified" not in set(forecast["category"])
    assert "learnt from the estimated counts" in summary
    assert query(settings, "SELECT count(*) AS n FROM silver.review_queue")["n"][0] >= unclassified
