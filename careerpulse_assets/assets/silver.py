from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue
from dagster_duckdb import DuckDBResource

from ..ingestion.postings import ESCAPED_HTML, MISPARSED, PLAIN_TEXT
from ..ingestion.silver_store import update_silver
from ..ops.duckdb_file import one_row
from ..resources import ReviewerLabels
from .bronze import bronze_postings
from .common import Heartbeat, careerpulse_asset, preview, table_metadata

SILVER_STATS_SQL = """
SELECT count(*) AS postings,
       count(category) AS labelled,
       count(*) - count(category) AS without_category,
       count(DISTINCT category) AS categories,
       count(*) FILTER (WHERE description_note = $plain_text) AS descriptions_plain_text,
       count(*) FILTER (WHERE description_note = $escaped) AS descriptions_escaped_html,
       count(*) FILTER (WHERE starts_with(description_note, $misparsed))
           AS descriptions_misparsed
FROM silver.silver_postings
"""


@careerpulse_asset(
    layer="silver",
    group="ingestion",
    kinds={"duckdb"},
    deps=[bronze_postings],
    description="One clean row per posting (its latest bronze payload) in "
    "`silver.silver_postings`: text from the HTML, first real category (NULL when none or "
    "'Unknown') under its current Muse name (`category`; the name as listed in "
    "`category_raw`), or a reviewer's label from CAREERPULSE_LABELS_DIR, which wins "
    "(`category_source`: `api` or `label`); publication date and day in UTC. Only postings "
    "with new bronze payloads are rebuilt; labels and the taxonomy apply to every row. Label "
    "rows that cannot be used are in `silver.label_quarantine` with file, line and reason. A "
    "label file that drops labels it held is read as it was last read whole until it has been "
    "unchanged for a minute (never while it cannot be read at all), naming what vanished.",
)
def silver_postings(
    context: AssetExecutionContext, duckdb: DuckDBResource, reviewer_labels: ReviewerLabels
) -> MaterializeResult:
    with duckdb.get_connection() as connection, Heartbeat(context.log.info, "silver_postings"):
        update = update_silver(connection, label_files=reviewer_labels.files())
        updated, labels = update.rebuilt, update.labels
        stats = one_row(connection, SILVER_STATS_SQL, {
            "plain_text": PLAIN_TEXT, "escaped": ESCAPED_HTML, "misparsed": MISPARSED})
        metadata = table_metadata(connection, "silver.silver_postings")
        sample = connection.execute(
            "SELECT posting_id, title, category, category_raw, company, publication_date, "
            "description_text FROM silver.silver_postings ORDER BY publication_date DESC LIMIT 5"
        ).fetchdf()
    if not stats["postings"]:
        raise Failure("bronze.bronze_postings holds no postings: nothing to clean")
    log_update(context.log, update)
    return MaterializeResult(
        metadata={
            **metadata,
            "postings_rebuilt": updated,
            # Of every posting in silver (description_note says why, per posting).
            "descriptions_plain_text": stats["descriptions_plain_text"],
            "descriptions_escaped_html": stats["descriptions_escaped_html"],
            "descriptions_misparsed": stats["descriptions_misparsed"],
            "reviewer_labels": len(labels.labels),
            "label_rows_quarantined": len(labels.quarantine),
            "label_rows_awaiting_review": labels.awaiting_review,
            "label_files_held_or_dropping_labels": MetadataValue.md(
                "\n".join(f"- {note}" for note in update.label_notes) or "none"),
            "labels_folder": reviewer_labels.folder,
            "labelled_postings": stats["labelled"],
            "postings_without_category": stats["without_category"],
            "categories": stats["categories"],
            "newest_rows": preview(sample),
        }
    )


def log_update(log, update) -> None:
    """What the merge says in the run's log: rebuilt postings, descriptions read otherwise than
    as HTML, label files held, label rows quarantined."""
    log.info(f"{update.rebuilt} postings rebuilt from new bronze payloads"
             + (f" ({update.descriptions_plain_text} descriptions plain text, read as text)"
                if update.descriptions_plain_text else ""))
    if update.descriptions_misparsed:
        log.warning(
            f"{len(update.descriptions_misparsed)} descriptions lost most of their text to the "
            "HTML parser and were read by removing their tags (silver.silver_postings."
            "description_note): " + "; ".join(
                f"posting {pid}: {note}" for pid, note in update.descriptions_misparsed[:3])
        )
    for note in update.label_notes:
        log.warning(f"label file {note}")
    if len(update.labels.quarantine):
        log.warning(
            f"{len(update.labels.quarantine)} label rows quarantined (silver.label_quarantine): "
            + "; ".join(f"{r.label_file}:{r.label_line}: {r.reason}"
                        for r in update.labels.quarantine.head(3).itertuples())
        )
