"""`python -m careerpulse_assets_tests.crawl_pages DATABASE KILL_AT [SECONDS]`: a full crawl of the synthetic
listing into DATABASE (a crawl's writer and frontier, no HTTP, no Dagster) that SIGKILLs its own
process when it asks for page KILL_AT. Batches are committed by their page count, or by their age
when SECONDS (COMMIT_EVERY_SECONDS) is given, never while waiting, so what survives the kill does
not depend on the machine's speed.
Used by the crash tests of bronze's batched commits."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager

import duckdb

from careerpulse_assets.ingestion import bronze_store
from careerpulse_assets.ingestion.bronze_store import BronzeWriter
from careerpulse_assets.ingestion.crawl import Crawler
from careerpulse_assets.ingestion.listings import Listing
from careerpulse_assets.ingestion.muse_api import ListingWalk, RequestBudget
from careerpulse_assets.ingestion.pages import PAGE_SIZE, RawPage

from .muse_fixtures import synthetic_postings

SOURCE = "api:crawl-pages"


def listing() -> list[dict]:
    """660 postings: 33 full pages, and the empty page 33 that ends the listing."""
    return synthetic_postings(per_category=200, unlabelled=60)


def crawl(database: str, items: list[dict], kill_at: int | None = None) -> list[int]:
    """Run the crawls (Crawler.run) over `items` served 20 a page; the pages asked for."""
    asked: list[int] = []

    def fetch(page: int) -> RawPage:
        if page == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        asked.append(page)
        results = items[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
        return RawPage(SOURCE, page, results, total=len(items),
                       is_last=len(results) < PAGE_SIZE)

    @contextmanager
    def connect():
        with duckdb.connect(database) as connection:
            yield connection

    def walk(listing: Listing, **options) -> ListingWalk:
        return ListingWalk(fetch, **options)

    writer = BronzeWriter(connect, "crawl-pages")
    Crawler(writer, walk, lambda listing: SOURCE, RequestBudget()).run()
    writer.finish()
    return asked


if __name__ == "__main__":
    # COMMIT_EVERY_SECONDS from the third argument: 0 commits each page as soon as it is stored.
    bronze_store.COMMIT_EVERY_SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 3600.0
    bronze_store.RELEASE_AFTER_SECONDS = 3600.0
    crawl(sys.argv[1], listing(), kill_at=int(sys.argv[2]))
