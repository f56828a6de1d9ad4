"""What every asset module shares: how an asset is declared, how tables are described and
previewed, and a heartbeat for long steps.

Which mechanism writes which table (one DuckDB file):

| table | written by |
|---|---|
| bronze.bronze_postings, bronze_quarantine, bronze_crawls, bronze_crawl_frontier | the asset, page by page (ingestion/bronze_store.py BronzeWriter: a transaction per page) |
| silver.silver_postings, reviewer_labels, label_quarantine | the asset, slice by slice (ingestion/silver_store.py: SQL merge, taxonomy and labels) |
| silver.imputed_silver, unlabelled_mix, written_categories | the asset, in one transaction: every posting, or only those new, changed or gone (classification/imputed_store.py) |
| silver.review_queue | the `io_manager`, from the asset's frame |
| gold.gold_daily_counts | the `io_manager`, from the Arrow table series/gold.py computes in SQL |
| gold.gold_category_forecast | the `io_manager`; gold.gold_forecast_backtest and gold.gold_forecast_inputs the asset itself, before |

Every table is loaded through the `io_manager` (a pandas frame, or some of its columns). The
fitted model is no table: `classifier_io_manager` hands it to its run's steps, and MLflow's
registry keeps every version (io_managers.py).
"""

import base64
import threading
import time
from collections.abc import Callable

import pandas as pd
from dagster import MetadataValue, TableColumn, TableSchema, asset

# Every step that opens careerpulse.duckdb is in this pool; dagster.yaml limits it to 1.
DUCKDB_POOL = "careerpulse_duckdb"
OWNERS = ["team:careerpulse"]
TABLE_LAYERS = ("bronze", "silver", "gold")
PREVIEW_ROWS = 5
PREVIEW_CELL_CHARS = 60


def careerpulse_asset(*, layer: str, group: str, kinds: set[str], **kwargs):
    """`@asset` as every CareerPulse asset is declared: its group and kinds, the team as owner,
    its medallion layer as a tag, and the DuckDB pool (every step opens the one DuckDB file).
    A table's schema is its layer (bronze, silver, gold): where the `io_manager` writes what
    the asset returns and loads it from (bronze and silver write their own tables, crash-safe,
    and are loaded the same way)."""
    metadata = {"schema": layer} if layer in TABLE_LAYERS else {}
    return asset(group_name=group, kinds=kinds, owners=OWNERS, tags={"layer": layer},
                 pool=DUCKDB_POOL, metadata=metadata, **kwargs)


def table_metadata(connection, table: str) -> dict:
    """Row count and column schema of a DuckDB table, as the UI shows them."""
    rows = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    columns = connection.execute(f"DESCRIBE {table}").fetchall()
    return {
        "dagster/row_count": rows,
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(name=name, type=type_) for name, type_, *_ in columns]
        ),
        "table": MetadataValue.text(table),
    }


def preview(frame: pd.DataFrame) -> MetadataValue:
    """The first rows as a markdown table, long texts cut, for the asset's page in the UI."""
    head = frame.head(PREVIEW_ROWS).copy()
    for column in head.columns:
        head[column] = head[column].map(
            lambda value: value if not isinstance(value, str) or len(value) <= PREVIEW_CELL_CHARS
            else value[:PREVIEW_CELL_CHARS] + "…"
        )
    return MetadataValue.md(head.to_markdown(index=False))


def png_markdown(png: bytes, alt: str) -> MetadataValue:
    """A PNG as markdown metadata: the UI shows it under *Show Markdown*."""
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def rounded(values: dict, digits: int = 3) -> dict:
    """Floats rounded for reading in the UI (MLflow keeps the exact values)."""
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in values.items()}


HEARTBEAT_SECONDS = 15.0


class Heartbeat:
    """Says what a long step is doing at least every HEARTBEAT_SECONDS, from a thread of its own:
    a training that works for minutes in one library call is not silent meanwhile.

        with Heartbeat(context.log.info, "training") as beat:
            beat.phase("out-of-fold estimate")
    """

    def __init__(self, say: Callable[[str], None], what: str, every: float = HEARTBEAT_SECONDS):
        self._say, self._what, self._every = say, what, every
        self._phase = "starting"
        self._stop = threading.Event()
        self._started = time.monotonic()

    def phase(self, text: str) -> None:
        """Log `text` now, and name it in the heartbeats until the next phase."""
        self._phase = text
        self._say(text)

    def note(self, text: str) -> None:
        """Name `text` in the next heartbeat without logging it now (for steps many times a
        second)."""
        self._phase = text

    def _beat(self) -> None:
        while not self._stop.wait(self._every):
            self._say(f"{self._what}: still working ({time.monotonic() - self._started:.0f} s), "
                      f"at: {self._phase}")

    def __enter__(self) -> "Heartbeat":
        self._thread = threading.Thread(target=self._beat, daemon=True, name="careerpulse-beat")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
