"""Which days gold may call observed and complete: the rule of series/coverage.py, piece by piece."""

from datetime import date, timedelta

import pandas as pd

from careerpulse_assets.series.coverage import (
    MAX_WALK_GAP_DAYS,
    NO_POSTING_DAYS,
    complete_days,
    day_coverage,
    listing_filters,
    seen_days,
    source_scope,
)

API = "api:http://127.0.0.1:1/api/public"


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def days(first: date, count: int) -> list[date]:
    return [first + timedelta(days=n) for n in range(count)]


def test_days_between_close_covering_walks_are_complete_but_not_the_newest_walks_day():
    starts = [utc("2026-03-01 10:00"), utc("2026-03-02 09:00"), utc("2026-03-03 23:00")]
    assert complete_days(starts) == {date(2026, 3, 1), date(2026, 3, 2)}


def test_a_gap_longer_than_postings_surely_stay_listed_is_not_complete():
    late = utc("2026-03-01 10:00") + pd.Timedelta(days=MAX_WALK_GAP_DAYS, hours=1)
    assert complete_days([utc("2026-03-01 10:00"), late]) == set()
    on_time = utc("2026-03-01 10:00") + pd.Timedelta(days=MAX_WALK_GAP_DAYS)
    assert complete_days([utc("2026-03-01 10:00"), on_time]) == set(days(date(2026, 3, 1), 3))


def test_a_walk_the_page_cap_stopped_completes_only_what_it_read_back_to():
    starts = [utc("2026-03-01 10:00"), utc("2026-03-02 10:00"), utc("2026-03-03 10:00")]
    # The second walk was capped after reading back to 2026-03-01 18:00: the postings of
    # 10:00-18:00 on March 1 may have been beyond its cap, so the pair (walk 1, walk 2) proves
    # nothing; the third walk read to pages already stored (None): March 2 is complete.
    reaches = [None, utc("2026-03-01 18:00"), None]
    assert complete_days(starts, reaches) == {date(2026, 3, 2)}
    # Capped but reaching back past the first walk's start: as good as a whole walk.
    reaches = [None, utc("2026-03-01 09:00"), None]
    assert complete_days(starts, reaches) == {date(2026, 3, 1), date(2026, 3, 2)}


def test_walk_times_in_another_zone_are_counted_on_their_utc_day():
    # 23:30 in New York on March 1 is March 2 in UTC.
    starts = [pd.Timestamp("2026-03-01 23:30", tz="America/New_York"), utc("2026-03-03 12:00")]
    assert complete_days(starts) == {date(2026, 3, 2)}


def test_four_silent_weeks_are_not_observed_three_are():
    first = date(2026, 1, 1)
    posted = [first, first + timedelta(days=NO_POSTING_DAYS + 1),  # 28 days without a posting
              first + timedelta(days=NO_POSTING_DAYS + 1 + NO_POSTING_DAYS)]  # then 27
    last = posted[-1]
    seen = seen_days(first, last, posted)
    assert first in seen and posted[1] in seen
    assert not any(first + timedelta(days=n) in seen for n in range(1, NO_POSTING_DAYS + 1))
    assert all(posted[1] + timedelta(days=n) in seen for n in range(NO_POSTING_DAYS))


def test_listing_filters_keep_values_with_an_ampersand():
    assert listing_filters(f"{API}?category=Marketing & PR&level=Senior Level") == [
        ("category", "Marketing & PR"), ("level", "Senior Level")]
    assert listing_filters(API) == []


def test_scope_of_listings_and_archives():
    some = pd.Series(["Sales", "Healthcare"] * 60)
    assert source_scope(API, some) == (None, True)
    assert source_scope(f"{API}?category=Sales", some) == (frozenset({"Sales"}), True)
    # A level listing holds part of every category: it observes, never completes.
    assert source_scope(f"{API}?level=Senior Level", some) == (None, False)
    assert source_scope("archive:mixed.json", some) == (None, False)
    assert source_scope("archive:se.json", pd.Series(["Software Engineering"] * 100)) == (
        frozenset({"Software Engineering"}), False)
    # Postings imputed into one category say nothing about the listing they came from.
    assert source_scope("archive:se.json", pd.Series(["Software Engineering"] * 100 + [None])) == (
        None, False)
    # 99 postings of one category may be a sample of everything.
    assert source_scope("archive:few.json", pd.Series(["Sales"] * 99)) == (None, False)


def postings(rows):
    """Postings as listed under their category."""
    frame = pd.DataFrame(rows, columns=["source", "day", "category"])
    return frame.assign(listed_category=frame["category"])


def walks(rows):
    return pd.DataFrame(rows, columns=["source", "started_at", "complete"])


def flags(grid, day, category):
    row = grid[(grid["day"] == day) & (grid["category"] == category)].iloc[0]
    return bool(row["observed"]), bool(row["complete"])


def test_a_first_walk_backfills_the_past_and_daily_walks_complete_the_days_after_it():
    # The first walk on March 10 sees postings back to March 1; walks follow daily to March 14.
    grid = day_coverage(
        postings([(API, date(2026, 3, 1), "Sales"), (API, date(2026, 3, 9), "Healthcare"),
                  (API, date(2026, 3, 12), "Sales")]),
        walks([(API, utc(f"2026-03-{d} 06:00"), True) for d in range(10, 15)]
              + [(API, utc("2026-03-09 06:00"), False)]),  # an earlier walk cut short
    )
    assert grid["day"].min() == date(2026, 3, 1) and grid["day"].max() == date(2026, 3, 14)
    assert len(grid) == 14 * 2
    for day in days(date(2026, 3, 1), 9):
        assert flags(grid, day, "Sales") == (True, False), day  # backfilled
    for day in days(date(2026, 3, 10), 4):
        assert flags(grid, day, "Healthcare") == (True, True), day  # complete, zeros included
    assert flags(grid, date(2026, 3, 14), "Sales") == (True, False)  # not over when walked


def test_a_category_listing_completes_its_own_category_only():
    sales = f"{API}?category=Sales"
    grid = day_coverage(
        postings([(sales, date(2026, 3, 1), "Sales"), ("archive:a.json", date(2026, 3, 1), "Healthcare"),
                  ("archive:a.json", date(2026, 3, 5), "Healthcare")]),
        walks([(sales, utc("2026-03-02 06:00"), True), (sales, utc("2026-03-03 06:00"), True)]),
    )
    assert flags(grid, date(2026, 3, 2), "Sales") == (True, True)
    assert flags(grid, date(2026, 3, 2), "Healthcare") == (True, False)  # the archive saw it


def test_an_archive_of_one_category_says_nothing_about_the_others():
    one = [("archive:se.json", date(2024, 1, 1) + timedelta(days=n), "Software Engineering")
           for n in range(100)]
    mixed = [("archive:all.json", date(2024, 3, 1), "Healthcare"),
             ("archive:all.json", date(2024, 3, 20), "Software Engineering")]
    grid = day_coverage(postings(one + mixed), walks([]))
    assert flags(grid, date(2024, 1, 15), "Software Engineering") == (True, False)
    assert flags(grid, date(2024, 1, 15), "Healthcare") == (False, False)
    assert flags(grid, date(2024, 3, 10), "Healthcare") == (True, False)


def test_no_postings_is_an_empty_grid():
    assert day_coverage(postings([]), walks([])).empty


def test_no_day_after_today_is_observed_or_complete_whatever_clock_stamped_the_walks():
    # Daily walks to March 11; then three walks stamped March 19-21 by a clock that ran 8 days
    # ahead. The API's today is March 12; one posting is dated ahead, to March 15.
    stamped = walks([(API, utc(f"2026-03-{d:02d} 06:00"), True) for d in range(5, 12)]
                    + [(API, utc(f"2026-03-{d} 06:00"), True) for d in (19, 20, 21)])
    listed = postings([(API, date(2026, 3, 1), "Sales"), (API, date(2026, 3, 11), "Healthcare"),
                       (API, date(2026, 3, 15), "Sales")])
    # Without a today, the future walks made March 19 and 20 complete, at 0 postings.
    assert flags(day_coverage(listed, stamped), date(2026, 3, 19), "Sales") == (True, True)
    grid = day_coverage(listed, stamped, today=date(2026, 3, 12))
    assert grid["day"].max() == date(2026, 3, 15)  # the grid holds the posting dated ahead
    ahead = grid[grid["day"] > date(2026, 3, 12)]
    assert not ahead["observed"].any() and not ahead["complete"].any()
    for day in days(date(2026, 3, 5), 6):
        assert flags(grid, day, "Sales") == (True, True), day
    assert flags(grid, date(2026, 3, 11), "Sales") == (True, False)  # the newest walk's day
