"""The real shared postings, served page by page on loopback, through `make run`'s entry point:
one run, read by each test below."""

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest

from careerpulse_assets.ops.settings import Settings

from .conftest import SHARED_MUSE
from .graph import query
from .muse_server import serve_muse
from .servers import careerpulse_env
from .test_gold import silent_stretches

# `make run` over HTTP on the shared postings.
pytestmark = pytest.mark.slow

SHARED_UNIQUE_POSTINGS = 1598
NEWEST_POSTING_DAY = date(2026, 7, 6)


@dataclass
class SharedRun:
    settings: Settings
    done: subprocess.CompletedProcess
    requests: int
    day: date  # the UTC day the run ran on


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory) -> SharedRun:
    if not SHARED_MUSE.is_dir():
        pytest.skip(f"shared Muse postings not found at {SHARED_MUSE}")
    items = [item for path in sorted(SHARED_MUSE.glob("*.json"))
             for item in json.loads(path.read_text())]
    settings = Settings(home=tmp_path_factory.mktemp("shared") / "home")
    with serve_muse(items) as (stub, base_url):
        # careerpulse_env drops MLFLOW_TRACKING_URI too: MLflow's set_tracking_uri in an earlier
        # in-process test leaves it in os.environ, and the run then wrote ./mlflow.db.
        env = careerpulse_env(settings.home, CAREERPULSE_MUSE_BASE_URL=base_url,
                              CAREERPULSE_MUSE_API_KEY="e2e-secret-key")
        day = datetime.now(timezone.utc).date()
        done = subprocess.run(
            [sys.executable, "-m", "careerpulse_assets.ops.run"],
            env=env, capture_output=True, text=True, timeout=600,
        )
    return SharedRun(settings, done, len(stub.requests), day)


def test_make_run_over_http_ingests_every_shared_posting(shared_run):
    settings, done = shared_run.settings, shared_run.done
    summary = done.stdout
    assert "CareerPulse run" in summary, done.stderr[-3000:]
    assert shared_run.requests == 80  # 1,598 postings, 20 a page
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


def check_evaluations(settings: Settings) -> dict:
    """The asset check evaluations of the home's last run, by check name."""
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        (run,) = instance.get_runs(limit=1)
        events = instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    return {e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data
            for e in events}


def test_shared_postings_gold_knows_what_nobody_saw_and_the_forecast_knows_its_date(shared_run):
    settings, today = shared_run.settings, shared_run.day
    assert shared_run.done.returncode == 0, shared_run.done.stdout[-3000:]
    checks = check_evaluations(settings)
    assert checks["gold_full_grid_sums_to_silver"].passed is True
    age = checks["newest_posting_age"]
    assert age.passed is False
    age_days = age.metadata["age_days"].value
    assert age_days > (today - NEWEST_POSTING_DAY).days - 1
    forecast_days = (today - NEWEST_POSTING_DAY).days  # whole days, as the forecast says
    assert f"the forecast runs {forecast_days} days past its data" in age.description

    gold = query(settings, "SELECT * FROM gold.gold_daily_counts")
    gold["day"] = pd.to_datetime(gold["day"])
    assert gold["postings"].sum() == SHARED_UNIQUE_POSTINGS
    assert not gold[(gold["day"] >= "2018-01-01") & (gold["day"] < "2021-01-01")]["observed"].any()
    for days in silent_stretches(gold):
        assert not gold[gold["day"].isin(days)]["observed"].any(), days[0]

    forecast = query(settings, "SELECT * FROM gold.gold_category_forecast")
    assert pd.Timestamp(forecast["day"].min()).date() == today + timedelta(days=1)
    assert pd.Timestamp(forecast["day"].max()).date() == today + timedelta(days=28)
    assert set(pd.to_datetime(forecast["data_until"]).dt.date) == {NEWEST_POSTING_DAY}
    assert set(forecast["data_age_days"]) == {(today - NEWEST_POSTING_DAY).days}
    backtest = query(settings, "SELECT * FROM gold.gold_forecast_backtest")
    assert set(backtest["learned_from"].dropna()) == {"observed"}
