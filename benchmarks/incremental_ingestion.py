"""Wall time of an incremental one-page ingestion run on stores of different sizes.

    .venv/bin/python -m benchmarks.incremental_ingestion ../shared/data/muse 2000 50000

For each size N: N replayed postings are stored in bronze (page by page, as a first crawl
would) and silver is built from them; then 20 newer postings appear on the loopback API and
`bronze_postings` and `silver_postings` are materialised again. Prints the requests made and the
wall time of each step of that incremental run.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

import duckdb
from dagster import DagsterInstance, materialize

from benchmarks.replay import replay, shared_items
from careerpulse_assets.assets.bronze import bronze_postings
from careerpulse_assets.assets.silver import silver_postings
from careerpulse_assets.ingestion.bronze_store import ensure_bronze_schema, store_page
from careerpulse_assets.definitions import build_resources
from careerpulse_assets.ingestion.muse_api import listing_source
from careerpulse_assets.ingestion.pages import PAGE_SIZE, RawPage
from careerpulse_assets.ops.settings import Settings
from careerpulse_assets_tests.muse_server import serve_muse


def measure(items: list[dict], n: int) -> dict:
    store = replay(items, n, first_id=50_000_000)
    newer = replay(items, PAGE_SIZE, first_id=90_000_000)
    for item in newer:
        item["publication_date"] = "2026-08-01T00:00:00Z"
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home))
        started = time.perf_counter()
        with duckdb.connect(str(settings.duckdb_path)) as connection:
            ensure_bronze_schema(connection)
            for start in range(0, n, PAGE_SIZE):
                store_page(connection, RawPage("api:bench", start // PAGE_SIZE,
                                               store[start : start + PAGE_SIZE]))
        initial_load = time.perf_counter() - started
        with serve_muse(store + newer) as (stub, base_url):
            settings = Settings(home=Path(home), muse_base_url=base_url)
            with duckdb.connect(str(settings.duckdb_path)) as connection:
                # The stored pages were the listing walked whole, as a crawl records it.
                connection.execute(
                    "INSERT INTO bronze.bronze_crawls (source, started_at, complete) "
                    "VALUES (?, now(), true)", [listing_source(base_url)])
            resources = build_resources(settings)
            instance = DagsterInstance.ephemeral()
            graph = [bronze_postings, silver_postings]
            started = time.perf_counter()
            materialize(graph, resources=resources, instance=instance, selection=["silver_postings"])
            silver_full = time.perf_counter() - started
            started = time.perf_counter()
            materialize(graph, resources=resources, instance=instance, selection=["bronze_postings"])
            bronze_incremental = time.perf_counter() - started
            requests = len(stub.requests)
        started = time.perf_counter()
        materialize(graph, resources=resources, instance=instance, selection=["silver_postings"])
        silver_incremental = time.perf_counter() - started
    return {"n": n, "initial_load_s": initial_load, "silver_full_s": silver_full,
            "incremental_requests": requests, "bronze_incremental_s": bronze_incremental,
            "silver_incremental_s": silver_incremental,
            "incremental_s": bronze_incremental + silver_incremental}


def main(folder: str, sizes: list[int]) -> None:
    warnings.filterwarnings("ignore")
    items = shared_items(folder)
    rows = [measure(items, n) for n in sizes]
    print("| stored postings | bronze first load (s) | silver first build (s) | incremental: "
          "requests | incremental: bronze (s) | incremental: silver (s) | incremental total (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']:,} | {r['initial_load_s']:.1f} | {r['silver_full_s']:.1f} | "
              f"{r['incremental_requests']} | {r['bronze_incremental_s']:.2f} | "
              f"{r['silver_incremental_s']:.2f} | {r['incremental_s']:.2f} |")
    if len(rows) > 1:
        print(f"\nincremental run, largest / smallest store: "
              f"{rows[-1]['incremental_s'] / rows[0]['incremental_s']:.2f}x")


if __name__ == "__main__":
    main(sys.argv[1], [int(n) for n in sys.argv[2:]] or [2000, 50000])
