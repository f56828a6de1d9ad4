from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue
from dagster_duckdb import DuckDBResource

from ..core.silver_store import update_silver
from ..resources import ReviewerLabels
from .bronze import bronze_postings
from .common import Heartbeat, careerpulse_asset, preview, table_metadata

SILVER_STATS_SQL = """
SELECT count(*) AS postings,
       count(category) AS labelled,
       count(*) - count(category) AS without_category,
       count(DISTINCT category) AS categories
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
        cursor = connection.execute(SILVER_STATS_SQL)
        stats = dict(zip([c[0] for c in cursor.description], cursor.fetchone(), strict=True))
        metadata = table_metadata(connection, "silver.silver_postings")
        sample = connection.execute(
            "SELECT posting_id, title, category, category_raw, company, publication_date, "
            "description_text FROM silver.silver_postings ORDER BY publication_date DESC LIMIT 5"
        ).fetchdf()
    if not stats["postings"]:
        raise Failure("bronze.bronze_postings holds no postings: nothing to clean")
    context.log.info(f"{updated} postings rebuilt from new bronze payloads")
    for note in update.label_notes:
        context.log.warning(f"label file {note}")
    if len(labels.quarantine):
        context.log.warning(
            f"{len(labels.quarantine)} label rows quarantined (silver.label_quarantine): "
            + "; ".join(f"{r.label_file}:{r.label_line}: {r.reason}"
                        for r in labels.quarantine.head(3).itertuples())
        )
    return MaterializeResult(
        metadata={
            **metadata,
            "postings_rebuilt": updated,
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

