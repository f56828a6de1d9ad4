"""The demand series and its forecast on the real shared postings, through the whole graph with
the quality bar lowered by run config (the seed classifier is below it on this data)."""

from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest

from .graph import check_results, materialize_graph, query
from .test_assets import SMALL_GRID
from .test_gold import silent_stretches

pytestmark = pytest.mark.slow

BARS_LOWERED = {"ops": {
    **SMALL_GRID["ops"],
    "knn_classifier_knn_holdout_macro_f1": {"config": {"min_macro_f1": 0.0}},
    "knn_classifier_knn_holdout_accuracy": {"config": {"min_accuracy": 0.0}},
}}
NEWEST_POSTING_DAY = date(2026, 7, 6)


def test_shared_postings_gold_knows_what_nobody_saw_and_the_forecast_knows_its_date(
        shared_items, settings_for):
    from .conftest import SHARED_MUSE

    settings = settings_for(archive=SHARED_MUSE)
    result = materialize_graph(settings, BARS_LOWERED)
    today = datetime.now(timezone.utc).date()
    assert result.success
    checks = check_results(result)
    assert checks["gold_full_grid_sums_to_silver"] is True
    assert checks["newest_posting_age"] is False
    age = next(e for e in result.get_asset_check_evaluations()
               if e.asset_check_key.name == "newest_posting_age")
    age_days = age.metadata["age_days"].value
    assert age_days > (today - NEWEST_POSTING_DAY).days - 1
    forecast_days = (today - NEWEST_POSTING_DAY).days  # whole days, as the forecast says
    assert f"the forecast runs {forecast_days} days past its data" in age.description

    gold = query(settings, "SELECT * FROM gold.gold_daily_counts")
    gold["day"] = pd.to_datetime(gold["day"])
    assert gold["postings"].sum() == 1598
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
