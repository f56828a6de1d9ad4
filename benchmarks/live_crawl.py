"""A full crawl of a simulated live Muse API on loopback: reach and request cost past the page cap.

    .venv/bin/python -m benchmarks.live_crawl [--postings 120000] [--no-category 0.7] [--seed 1]
        [--companies 4000] [--company-skew 1.05] [--shared ../shared/data/muse] [--budget N]

The simulated API serves `--postings` replayed shared postings (real bodies, see replay.py) with
the facets of the live listing: pages past page 99 answer 400 "Value `page` is too high" (a
listing shows at most 2,000 postings); categories are the taxonomy's 24 current names with a
Zipf-like skew (several over the cap) and a share of postings with none (`--no-category`; 170 of
244 in the 2025-26 sample, 0.70); levels as in that sample (Mid 55 %, Senior 33 %, Entry 7 %,
management 3 %, Internship 2 %), 0.2 % with none (none of the 1,598 shared postings lacks one);
600 cities with a Zipf skew and "Flexible / Remote" for 15 %, 7 % of postings in two or three
places and 0.8 % in none (the sample: 16 and 2 of 244); 4,000 companies with a Zipf skew of
1.05 (the largest holds 13.6 %, the sample's 11 %; 244 postings name 136 companies where the
sample's name 74: a longer tail of small companies than the sample shows, which makes them harder
to discover); publication dates spread over 60 days.

One `bronze_postings` materialisation crawls it from an empty store (with `--budget`, as many
runs as the budget needs), then prints:

- postings reached (stored) against the API's `total`, and against the reachable ones: postings
  some listing shows within its first 2,000 (any value of any subset of category, level, location
  and company, one value per filter), which no crawler can beat;
- requests spent against the ideal `total / 20`;
- time per 1,000 postings reached (wall time of the crawl, storing included).
"""

from __future__ import annotations

import argparse
import itertools
import random
import tempfile
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pandas as pd
from dagster import DagsterInstance, materialize

from benchmarks.replay import replay, shared_items
from careerpulse_assets.assets.bronze import bronze_postings
from careerpulse_assets.review.taxonomy import load_taxonomy
from careerpulse_assets.definitions import build_resources
from careerpulse_assets.ingestion.listings import KINDS
from careerpulse_assets.ops.settings import Settings
from careerpulse_assets_tests.muse_server import serve_muse

PAGE_CAP = 100  # pages 0..99 are served; the live API refuses "about" page 100 on
PAGE_SIZE = 20
LEVELS = {"Mid Level": 0.55, "Senior Level": 0.33, "Entry Level": 0.07, "management": 0.03,
          "Internship": 0.02}
NO_LEVEL = 0.002
NO_LOCATION = 0.008
REMOTE = "Flexible / Remote"
END = datetime(2026, 7, 1, tzinfo=timezone.utc)


def zipf_weights(n: int, s: float) -> list[float]:
    return [1 / (rank ** s) for rank in range(1, n + 1)]


def simulated_listing(base: list[dict], n: int, no_category: float, seed: int,
                      companies: int = 4000, company_skew: float = 1.05) -> list[dict]:
    """`n` postings with the live listing's facets (see the module's docstring)."""
    rng = random.Random(seed)
    items = replay(base, n, first_id=70_000_000)
    categories = sorted(load_taxonomy().current)
    rng.shuffle(categories)
    category_weights = zipf_weights(len(categories), 1.0)
    cities = [f"City {i:03d}, ST" for i in range(600)]
    city_weights = zipf_weights(len(cities), 1.0)
    company_names = [f"Company {i:04d}" for i in range(companies)]
    company_weights = zipf_weights(companies, company_skew)
    levels, level_weights = list(LEVELS), list(LEVELS.values())
    for number, item in enumerate(items):
        category = (None if rng.random() < no_category
                    else rng.choices(categories, category_weights)[0])
        item["categories"] = [{"name": category}] if category else []
        item["levels"] = ([] if rng.random() < NO_LEVEL
                          else [{"name": rng.choices(levels, level_weights)[0]}])
        places = (0 if rng.random() < NO_LOCATION
                  else 1 if rng.random() >= 0.07 else rng.choice((2, 3)))
        chosen = {REMOTE if rng.random() < 0.15 else rng.choices(cities, city_weights)[0]
                  for _ in range(places)}
        item["locations"] = [{"name": place} for place in sorted(chosen)]
        company = rng.choices(company_names, company_weights)[0]
        item["company"] = {"id": int(company.split()[1]) + 1, "short_name": company.lower(),
                           "name": company}
        published = END - timedelta(seconds=rng.randrange(0, 60 * 24 * 3600))
        item["publication_date"] = published.strftime("%Y-%m-%dT%H:%M:%SZ")
    return items


def facets(items: list[dict]) -> pd.DataFrame:
    """One row per posting and combination of its values (a posting in two places: two rows)."""
    rows = []
    for item in items:
        values = {
            "category": [c["name"] for c in item["categories"]] or [None],
            "level": [c["name"] for c in item["levels"]] or [None],
            "location": [c["name"] for c in item["locations"]] or [None],
            "company": [item["company"]["name"]],
        }
        for combination in itertools.product(*(values[k] for k in KINDS)):
            rows.append((item["id"], item["publication_date"], *combination))
    return pd.DataFrame(rows, columns=["id", "published", *KINDS])


def reachable_ids(items: list[dict], capacity: int) -> set[int]:
    """Postings some listing shows within its first `capacity`: for every subset of the filter
    kinds, every listing of one value per kind (newest first, ties by id as the stub orders)."""
    frame = facets(items)
    frame = frame.assign(key=frame["id"].astype(str)).sort_values(["published", "key"],
                                                                ascending=False)
    reached: set[int] = set()
    for size in range(len(KINDS) + 1):
        for kinds in itertools.combinations(KINDS, size):
            listed = frame.dropna(subset=list(kinds)).drop_duplicates(["id", *kinds])
            rank = (listed.groupby(list(kinds), sort=False).cumcount() if kinds
                    else pd.Series(range(len(listed)), index=listed.index))
            reached.update(listed.loc[rank < capacity, "id"])
    return reached


def crawl(items: list[dict], budget: int | None) -> dict:
    with tempfile.TemporaryDirectory() as home, serve_muse(items) as (stub, base_url):
        stub.page_cap = PAGE_CAP
        settings = Settings(home=Path(home), muse_base_url=base_url,
                            max_requests_per_run=budget or 10**9)
        resources, instance = build_resources(settings), DagsterInstance.ephemeral()
        started, runs = time.perf_counter(), 0
        while True:
            result = materialize([bronze_postings], resources=resources, instance=instance)
            runs += 1
            meta = {k: v.value for k, v in
                    result.asset_materializations_for_node("bronze_postings")[0].metadata.items()}
            if not meta["crawl_unfinished"]:
                break
        seconds = time.perf_counter() - started
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
            stored = {row[0] for row in connection.execute(
                "SELECT DISTINCT posting_id FROM bronze.bronze_postings").fetchall()}
            seen_companies = {row[0] for row in connection.execute(
                "SELECT DISTINCT company FROM bronze.bronze_listing_values").fetchall()}
            seen_places = {row[0] for row in connection.execute(
                "SELECT DISTINCT unnest(locations) FROM bronze.bronze_listing_values").fetchall()}
            parts = connection.execute(
                "SELECT count(*) FILTER (WHERE outcome = 'split'), count(*) FILTER (WHERE "
                "outcome = 'capped'), count(*), string_agg(DISTINCT split_by, ', ') "
                "FROM bronze.bronze_crawl_frontier WHERE kind = 'full'").fetchall()[0]
        return {"stored": stored, "requests": len(stub.requests), "seconds": seconds,
                "seen_companies": seen_companies, "seen_places": seen_places,
                "runs": runs, "estimated_out_of_reach": meta["postings_out_of_reach"],
                "parted": parts[0], "capped": parts[1], "listings": parts[2],
                "kinds": parts[3]}


def missed_because(items: list[dict], done: dict) -> dict[str, int]:
    """Why postings were not reached: the first that applies of no level, no place (the filters
    the simulated listing is parted by before company), a company no posting read named, places
    no posting read named, or none of these."""
    causes = dict.fromkeys(["no level", "no place", "company never seen", "places never seen",
                            "other"], 0)
    for item in items:
        if item["id"] in done["stored"]:
            continue
        places = {place["name"] for place in item["locations"]}
        if not item["levels"]:
            causes["no level"] += 1
        elif not places:
            causes["no place"] += 1
        elif item["company"]["name"] not in done["seen_companies"]:
            causes["company never seen"] += 1
        elif not places & done["seen_places"]:
            causes["places never seen"] += 1
        else:
            causes["other"] += 1
    return causes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postings", type=int, default=120_000)
    parser.add_argument("--no-category", type=float, default=0.70)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shared", default="../shared/data/muse")
    parser.add_argument("--budget", type=int, default=None)
    parser.add_argument("--companies", type=int, default=4000)
    parser.add_argument("--company-skew", type=float, default=1.05)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    items = simulated_listing(shared_items(args.shared), args.postings, args.no_category,
                              args.seed, args.companies, args.company_skew)
    reachable = reachable_ids(items, PAGE_CAP * PAGE_SIZE)
    done = crawl(items, args.budget)
    ids = {item["id"] for item in items}
    reached = done["stored"] & ids
    ideal = len(items) / PAGE_SIZE
    print("| postings (`total`) | without category | companies (skew) | reachable | reached | "
          "of total | of reachable | out of reach, estimated / true | requests | ideal | ratio | "
          "runs | s per 1,000 reached | listings walked (parted, capped) | parted by |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {len(items):,} | {args.no_category:.0%} | {args.companies:,} ({args.company_skew}) | "
          f"{len(reachable):,} | {len(reached):,} | "
          f"{len(reached) / len(items):.1%} | {len(reached & reachable) / len(reachable):.2%} | "
          f"{done['estimated_out_of_reach']:,} / {len(items) - len(reached):,} | "
          f"{done['requests']:,} | {ideal:,.0f} | {done['requests'] / ideal:.3f} | "
          f"{done['runs']} | {done['seconds'] / len(reached) * 1000:.2f} | "
          f"{done['listings']:,} ({done['parted']}, {done['capped']}) | {done['kinds']} |")
    print("\npostings not reached, by cause: " + ", ".join(
        f"{cause} {count:,}" for cause, count in missed_because(items, done).items()))


if __name__ == "__main__":
    main()
