import json
from datetime import date

import pandas as pd

from careerpulse_assets.series.coverage import NO_POSTING_DAYS
from careerpulse_assets.ingestion.silver_store import silver_frame

from .gold_frames import daily_counts
from .muse_fixtures import synthetic_postings


def test_every_day_and_category_is_present_with_zeros():
    counts = daily_counts([
        ("2026-01-01", "Sales", False),
        ("2026-01-01", "Sales", True),
        ("2026-01-04", "Healthcare", True),
    ])
    assert len(counts) == 4 * 2
    counts["day"] = pd.to_datetime(counts["day"]).dt.date
    assert counts["day"].tolist()[::2] == [date(2026, 1, d) for d in (1, 2, 3, 4)]
    by_cell = counts.set_index(["day", "category"])
    # No bronze: the postings' source is unknown, read like an archive (observed, not complete).
    flags = ["postings", "imputed_postings", "observed", "complete"]
    assert by_cell.loc[(date(2026, 1, 1), "Sales"), flags].tolist() == [2, 1, True, False]
    assert by_cell.loc[(date(2026, 1, 2), "Sales"), flags].tolist() == [0, 0, True, False]
    assert by_cell.loc[(date(2026, 1, 4), "Healthcare"), flags].tolist() == [1, 1, True, False]
    assert counts["postings"].sum() == 3 and counts["imputed_postings"].sum() == 2
    # A table written before probabilities were kept: its categories count as written.
    assert (counts["estimated_postings"] == counts["postings"]).all()
    assert (counts["estimated_low"] == counts["estimated_high"]).all()


def test_a_posting_without_a_category_is_counted_as_unclassified():
    counts = daily_counts([("2026-01-01", "Sales", False), ("2026-01-02", None, False)])
    assert sorted(counts["category"].unique()) == ["Sales", "Unclassified"]
    assert counts["postings"].sum() == 2


def test_days_are_utc_days():
    item = dict(synthetic_postings()[0], publication_date="2026-01-01T23:30:00-05:00")
    changed = pd.DataFrame([{
        "posting_id": item["id"], "bronze_row_id": 1, "payload": json.dumps(item),
        "source": "t", "page": 0, "fetched_at": pd.Timestamp("2026-01-02", tz="UTC"),
        "run_id": None,
    }])
    frame, _ = silver_frame(changed)
    assert frame["publication_day"].tolist() == [date(2026, 1, 2)]


def silent_stretches(gold: pd.DataFrame) -> list[pd.DatetimeIndex]:
    """Runs of NO_POSTING_DAYS or more days without any posting in any category."""
    totals = gold.groupby("day")["postings"].sum()
    silent = (totals == 0).to_numpy()
    runs, start = [], None
    for index, quiet in enumerate([*silent, False]):
        if quiet and start is None:
            start = index
        elif not quiet and start is not None:
            if index - start >= NO_POSTING_DAYS:
                runs.append(totals.index[start:index])
            start = None
    return runs


def test_on_the_shared_postings_nobody_saw_2018_to_2020_nor_any_four_silent_weeks(shared_gold):
    gold = shared_gold.assign(day=pd.to_datetime(shared_gold["day"]))
    assert gold["postings"].sum() == 1598  # every posting, Unclassified included
    assert "Unclassified" in set(gold["category"])
    assert not gold["complete"].any()  # archives are snapshots of what was still open
    gap = gold[(gold["day"] >= "2018-01-01") & (gold["day"] < "2021-01-01")]
    assert len(gap) and not gap["observed"].any()
    stretches = silent_stretches(gold)
    assert len(stretches) >= 15  # 2017-02 to 2021-07 among them
    for days in stretches:
        assert not gold[gold["day"].isin(days)]["observed"].any(), days[0]
    observed_days = gold.groupby("day")["observed"].any()
    assert 0.15 < observed_days.mean() < 0.3  # of 4,422 days from 2014-05-29 to 2026-07-06
    # 2021 to 2024 holds only a listing of Software Engineering: nothing was seen of the rest.
    listing_only = gold[(gold["day"] >= "2021-07-16") & (gold["day"] < "2024-12-01")]
    software = listing_only["category"] == "Software Engineering"
    assert listing_only[software]["observed"].any()
    assert not listing_only[~software]["observed"].any()


def test_category_totals_take_the_interval_of_the_total_not_the_sum_of_daily_bounds():
    from careerpulse_assets.series.gold import category_totals

    gold = pd.DataFrame({"category": ["Sales", "Sales", "Healthcare", "Healthcare"],
                         "postings": [3, 2, 1, 0], "estimated_postings": [3.5, 2.5, 1.5, 0.5],
                         "estimated_low": [3.0, 2.0, 1.0, 0.0],
                         "estimated_high": [4.0, 3.0, 2.0, 1.0]})
    mix = pd.DataFrame({"category": ["Sales", "Healthcare"], "estimated_postings": [1.0, 1.0],
                        "estimated_low": [0.2, 0.5], "estimated_high": [1.9, 1.4]})
    totals = category_totals(gold, mix).set_index("category")
    assert totals.loc["Sales"].tolist() == [5, 6.0, 5.2, 6.9]  # 5 known + [0.2, 1.9]
    assert totals.loc["Healthcare"].tolist() == [1, 2.0, 1.5, 2.4]
