"""A simulated crawl on the loopback API: a first walk, then daily incremental runs while postings
expire, one gap of five days, and gold's flags and counts against the simulation's truth."""

import random
from datetime import datetime, time, timedelta, timezone

import duckdb
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from careerpulse_assets.assets.bronze import bronze_postings
from careerpulse_assets.assets.silver import silver_postings
from careerpulse_assets.definitions import build_resources

from .graph import query, store_gold_daily_counts
from .muse_fixtures import COMPANIES, VOCABULARY, make_item
from .muse_server import serve_muse

pytestmark = pytest.mark.slow

# The simulation's days, relative to the first walk (day 0), all in the past: bronze refuses
# postings dated more than 7 days after they were fetched, and they are fetched now.
FIRST_WALK = datetime.combine(datetime.now(timezone.utc).date() - timedelta(days=40), time(6),
                              tzinfo=timezone.utc)
PUBLISHED_FROM = -30  # postings published from 30 days before the first walk
WALK_DAYS = list(range(0, 11)) + [16, 17]  # daily, then nothing from day 11 to day 15


def simulated_postings(seed: int = 5) -> list[tuple[dict, datetime, datetime]]:
    """(item, published, expires): 2-6 postings a day; most stay listed 5-40 days, those of
    days 11-15 (the gap) only one day, so only a walk in time sees them."""
    rng = random.Random(seed)
    postings, posting_id = [], 500_000
    for day in range(PUBLISHED_FROM, WALK_DAYS[-1] + 1):
        for _ in range(rng.randint(2, 6)):
            category = rng.choice(list(VOCABULARY))
            titles, words = VOCABULARY[category]
            # Published after 06:00 on their day: a walk of the same day never sees them.
            published = FIRST_WALK + timedelta(days=day, hours=rng.randint(1, 17),
                                               minutes=rng.randint(0, 59))
            lifetime = timedelta(days=1) if 11 <= day <= 15 else timedelta(days=rng.choice([5, 10, 20, 40]))
            postings.append((make_item(posting_id, rng.choice(titles), rng.sample(words, 4),
                                       category, published, rng.choice(COMPANIES)),
                             published, published + lifetime))
            posting_id += 1
    return postings


def open_at(postings, moment: datetime) -> list[dict]:
    return [item for item, published, expires in postings if published <= moment < expires]


def test_gold_backfills_before_the_first_walk_and_is_complete_and_exact_after_it(settings_for):
    postings = simulated_postings()
    truth = pd.Series([published.date() for _, published, _ in postings]).value_counts()
    instance = DagsterInstance.ephemeral()
    with serve_muse([]) as (stub, base_url):
        settings = settings_for(base_url=base_url)
        resources = build_resources(settings)
        for day in WALK_DAYS:
            moment = FIRST_WALK + timedelta(days=day)
            stub.items = open_at(postings, moment)
            run = materialize([bronze_postings], resources=resources, instance=instance)
            assert run.success
            # The walk happened at the simulation's time, not the test's.
            with duckdb.connect(str(settings.duckdb_path)) as connection:
                connection.execute(
                    "UPDATE bronze.bronze_crawls SET started_at = $at, finished_at = $at "
                    "WHERE run_id = $run", {"at": moment, "run": run.run_id})
        assert materialize([silver_postings], resources=resources, instance=instance).success
    walks = query(settings, "SELECT complete FROM bronze.bronze_crawls")
    assert len(walks) == len(WALK_DAYS) and walks["complete"].all()
    with duckdb.connect(str(settings.duckdb_path)) as connection:
        # Every posting is labelled: imputed_silver is silver as it is (the classifier has no
        # part in which days were seen).
        connection.execute("CREATE TABLE silver.imputed_silver AS SELECT posting_id, category, "
                           "false AS is_imputed, publication_day FROM silver.silver_postings")
    store_gold_daily_counts(settings, resources["duckdb"])

    gold = query(settings, "SELECT * FROM gold.gold_daily_counts")
    per_day = gold.groupby("day").agg(postings=("postings", "sum"), observed=("observed", "all"),
                                      complete=("complete", "all"), partly=("complete", "any"))
    per_day.index = pd.to_datetime(per_day.index).date
    per_day["truth"] = truth.reindex(per_day.index).fillna(0).astype(int)
    first_walk = FIRST_WALK.date()

    def days(first, last):
        return per_day.loc[first_walk + timedelta(days=first): first_walk + timedelta(days=last)]

    assert per_day.index[-1] == first_walk + timedelta(days=WALK_DAYS[-1])
    assert per_day["observed"].all()  # no four silent weeks anywhere
    assert per_day["complete"].eq(per_day["partly"]).all()  # one listing: all categories alike
    before = per_day.loc[: first_walk - timedelta(days=1)]
    assert not before["complete"].any()  # backfilled from the postings still open
    assert (before["postings"] <= before["truth"]).all()
    assert before["postings"].sum() < before["truth"].sum()  # the expired ones are missing
    daily = days(0, 9)
    assert daily["complete"].all() and daily["postings"].eq(daily["truth"]).all()
    assert daily["truth"].sum() > 0
    gap = days(10, 15)  # walks on day 10 and day 16: five days apart
    assert not gap["complete"].any()
    assert gap["postings"].sum() < gap["truth"].sum()  # postings that lived one day are lost
    assert days(16, 16)["complete"].all() and days(16, 16)["postings"].eq(days(16, 16)["truth"]).all()
    assert not days(17, 17)["complete"].any()  # the newest walk's day was not over
