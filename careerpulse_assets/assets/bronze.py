from datetime import timedelta
from functools import partial

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue
from dagster_duckdb import DuckDBResource

from ..ingestion.bronze_store import BronzeWriter, PageOutcome, Tally
from ..ingestion.clock import Clock, describe_offset, store_offset, stored_offset
from ..ingestion.crawl import Crawler, CrawlRun
from ..ingestion.archive import skipped_files
from ..ingestion.muse_api import RequestBudget, listing_source
from ..ingestion.pages import RawPage
from ..resources import MuseApi
from .common import Heartbeat, careerpulse_asset, preview, table_metadata

# Every log line is an event written to the instance's event log (5-20 ms each in SQLite): a line
# per page was a sixth of a 5,000-page crawl, one per 10 pages 2 ms of a page's 30 (issue 29).
# The heartbeat names the page being stored every 15 s meanwhile.
PROGRESS_EVERY_PAGES = 100


class BronzeConfig(Config):
    full_crawl: bool = False
    """Start a full crawl (unless one is unfinished): every listing walked whole, past pages
    already stored, capped listings parted by filters (finds edits and postings inserted into
    pages read before). Runs start one by themselves every CAREERPULSE_FULL_CRAWL_DAYS (7): this
    starts one now."""


@careerpulse_asset(
    layer="bronze",
    group="ingestion",
    kinds={"duckdb"},
    description="Raw Muse job items, one row per new payload (append-only history), in "
    "`bronze.bronze_postings`; items that cannot be postings go to `bronze.bronze_quarantine` "
    "with the reason. Listings the API caps at about 100 pages are parted by category, level, "
    "location or company; each walk of a listing is recorded in `bronze.bronze_crawls`, and a "
    "crawl that spans runs (CAREERPULSE_MAX_REQUESTS_PER_RUN) keeps its frontier in "
    "`bronze.bronze_crawl_frontier`.",
)
def bronze_postings(
    context: AssetExecutionContext, config: BronzeConfig, muse: MuseApi, duckdb: DuckDBResource
) -> MaterializeResult:
    crawl, clock = None, None
    with Heartbeat(context.log.info, "bronze_postings") as beat:
        writer = BronzeWriter(
            duckdb.get_connection, context.run_id, on_page=partial(log_page, context.log, beat),
            on_wait=lambda tally: beat.note(f"waiting for the next page ({tally.pages} read)"),
        )
        if muse.is_archive:
            # Archives are not ordered newest first, so they are always read whole.
            writer.store(muse.iter_pages())
            skipped = skipped_files(muse.archive_dir)
            if skipped:
                context.log.warning(f"archive files not read (not .json): {', '.join(skipped)}")
        else:
            crawl, clock = crawl_api(context.log, context.run_id, config.full_crawl, muse, writer)
        writer.finish()
    tally = writer.tally
    context.log.info(f"{tally.pages} pages read: {tally.read} items, {tally.inserted} new, "
                     f"{tally.quarantined} quarantined")
    with duckdb.get_connection() as connection:
        stored = stored_metadata(connection)
    return MaterializeResult(metadata={
        **stored,
        "source": muse.description,
        **clock_metadata(clock),
        **(crawl_metadata(crawl) if crawl else {}),
        "pages_read": tally.pages,
        "items_read": tally.read,
        "rows_inserted": tally.inserted,
        "items_quarantined": tally.quarantined,
        "unreadable_pages": tally.unreadable_pages,
    })


def log_page(log, beat: Heartbeat, page: RawPage, outcome: PageOutcome, tally: Tally) -> None:
    """What a stored page says in the run's log: its problems always, progress every few pages."""
    beat.note(f"{page.source} page {page.page} stored ({tally.pages} read)")
    if page.error:
        log.warning(f"{page.source} page {page.page} quarantined: {page.error}")
    for note in page.notes:
        log.warning(f"{page.source} page {page.page}: {note}")
    if tally.pages % PROGRESS_EVERY_PAGES == 0:
        log.info(f"{tally.pages} pages read ({page.source} page {page.page}): {tally.read} "
                 f"items, {tally.inserted} new, {tally.quarantined} quarantined")


def crawl_api(log, run_id: str, full_crawl: bool, muse: MuseApi,
              writer: BronzeWriter) -> tuple[CrawlRun, Clock]:
    """Walk the live API's listings (ingestion/crawl.py decides what to walk), keeping the
    offset of this machine's clock from the API's when its Date header measured one."""
    known, fixed = muse.partition_values()
    # The offset the last run measured, until this run's first answer says its own.
    clock = Clock(stored_offset(writer.connection()))
    crawler = Crawler(
        writer, muse.walk, partial(listing_source, muse.base_url),
        RequestBudget(muse.max_requests_per_run), known, fixed, log=log.info,
        warn=log.warning, clock=clock,
    )
    every = timedelta(days=muse.full_crawl_days) if muse.full_crawl_days else None
    crawl = crawler.run(full_crawl, every)
    for line in crawl.lines():
        log.info(line)
    if clock.measured:
        store_offset(writer.connection(), clock, run_id)
        if clock.offset:
            log.warning(
                f"{describe_offset(clock.offset)} (its Date header, "
                f"{clock.now():%Y-%m-%d %H:%M} UTC): times are taken from the API's "
                "clock (postings' fetched_at, the crawls' stamps, now for the checks "
                "and gold); set this machine's clock right (NTP)")
    return crawl, clock


def stored_metadata(connection) -> dict:
    """What bronze holds after the run: the table's schema and size, postings, quarantine."""
    postings, quarantined = connection.execute(
        "SELECT (SELECT count(DISTINCT posting_id) FROM bronze.bronze_postings), "
        "(SELECT count(*) FROM bronze.bronze_quarantine)"
    ).fetchone()
    newest = connection.execute(
        "SELECT posting_id, payload_hash, source, page, fetched_at "
        "FROM bronze.bronze_postings ORDER BY bronze_row_id DESC LIMIT 5"
    ).fetchdf()
    return {**table_metadata(connection, "bronze.bronze_postings"),
            "distinct_postings": postings, "quarantine_rows_total": quarantined,
            "newest_rows": preview(newest)}


def clock_metadata(clock: Clock | None) -> dict:
    """The API clock's offset, when this run measured one (live API runs only)."""
    if clock is None or not clock.measured:
        return {}
    return {"clock_offset_hours": round(clock.offset.total_seconds() / 3600, 2),
            "clock": (describe_offset(clock.offset) if clock.offset
                      else "this machine's clock agrees with the API's")}


def crawl_metadata(crawl: CrawlRun) -> dict:
    """The crawl's progress as the UI, the summary of `make run` and the sensor read it."""
    full = next((c for c in reversed(crawl.crawls) if c.kind == "full"), None)
    return {
        "crawl": MetadataValue.md("\n".join(f"- {line}" for line in crawl.lines())),
        # The sensor requests another run while this is true, even when page 0 did not change.
        "crawl_unfinished": bool(crawl.unfinished),
        "crawl_ids": ", ".join(c.crawl_id for c in crawl.crawls),
        "crawl_listings_done": sum(c.parts_done for c in crawl.crawls),
        "crawl_listings_to_do": sum(c.parts_to_do for c in crawl.crawls),
        "requests": crawl.requests,
        "request_budget": crawl.budget if crawl.budget is not None else "none",
        "page_cap": crawl.page_cap if crawl.page_cap is not None else "not met",
        "stopped_at_stored_page": crawl.stopped_at_stored > 0,
        # Served oldest first although descending=true was asked: walked whole, not stopped
        # at stored pages (each run, while the API does it).
        **({"listings_served_oldest_first": ", ".join(crawl.oldest_first)}
           if crawl.oldest_first else {}),
        **({
            "listing_total": full.listing_total if full.listing_total is not None else "unknown",
            "postings_reached_by_crawl": full.reached,
            # A number only when it is one: a listing that shrank while it was walked leaves
            # a lower bound, or (more read than it lists now) no figure at all.
            "postings_out_of_reach": (
                full.out_of_reach if full.exact
                else "crawl unfinished" if not full.finished
                else f"at least {full.out_of_reach:,}" if full.out_of_reach is not None
                else "not known: more postings read than the API lists now"),
            "listing_shrank_during_crawl": full.shrank_by,
        } if full else {}),
    }
