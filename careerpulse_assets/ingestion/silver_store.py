"""Keeping `silver.silver_postings` in step with bronze, touching only what changed.

Silver remembers, per posting, which bronze row it was built from (`bronze_row_id`). Bronze row
ids only grow, so the postings to (re)build are those with a bronze row above silver's highest:
a run after one new page parses 20 payloads, whatever the size of the history. They are merged
in slices of ascending bronze row id, each slice one transaction, so a run killed half-way
leaves silver consistent and the next one carries on from where it stopped.

A bronze row that is no longer a valid posting (stored by an older version that let a date of
9999 through, say) is not merged: it goes to `bronze.bronze_quarantine` with the reason, and the
posting keeps the silver row it had, so one bad row can never stop silver.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace

import duckdb
import pandas as pd
import pyarrow as pa

from .bronze_store import INSERT_QUARANTINE_SQL, QUARANTINE_SCHEMA, raw_hash
from ..review.labels import (
    QUARANTINE_COLUMNS,
    QUARANTINE_TYPES,
    LabelFile,
    Labels,
    read_labels,
    settle_label_files,
)
from .postings import (
    MISPARSED,
    PLAIN_TEXT,
    TEXT_KEY_SQL,
    InvalidPosting,
    check_item,
    silver_row,
)
from ..ops.duckdb_file import declared_table, transaction_with
from ..review.taxonomy import CategoryNames, Taxonomy, category_names, load_taxonomy

SILVER_COLUMNS = {
    "posting_id": "BIGINT NOT NULL",
    "bronze_row_id": "BIGINT NOT NULL",
    "title": "VARCHAR",
    "description_html": "VARCHAR",
    "description_text": "VARCHAR",
    # Why description_text is not the HTML read whole (plain text; text the parser lost).
    "description_note": "VARCHAR",
    "category": "VARCHAR",
    "category_raw": "VARCHAR",
    "category_source": "VARCHAR",
    "categories": "VARCHAR[]",
    "level": "VARCHAR",
    "locations": "VARCHAR[]",
    "company": "VARCHAR",
    "publication_date": "TIMESTAMP WITH TIME ZONE",
    "publication_day": "DATE",  # the UTC day, settled once here for gold and everyone after
    # The posting's page on The Muse (refs.landing_page): what a reviewer opens.
    "link": "VARCHAR",
    # TEXT_KEY_SQL, kept once per posting: reposts share it, and deciding whether to train and
    # ordering the review queue need only the key (hashing every text on each run took seconds
    # at 400,000 postings: issue 29).
    "text_key": "VARCHAR",
}
# SILVER_COLUMNS as the Arrow types a slice is handed to DuckDB with (declared_table).
SILVER_ARROW_TYPES = {
    "posting_id": pa.int64(), "bronze_row_id": pa.int64(), "title": pa.string(),
    "description_html": pa.string(), "description_text": pa.string(),
    "description_note": pa.string(), "category": pa.string(), "category_raw": pa.string(),
    "category_source": pa.string(), "categories": pa.list_(pa.string()), "level": pa.string(),
    "locations": pa.list_(pa.string()), "company": pa.string(),
    "publication_date": pa.timestamp("us", tz="UTC"), "publication_day": pa.date32(),
    "link": pa.string(),
}
TAXONOMY_MAP_TYPES = {"old": pa.string(), "current": pa.string()}
LABEL_ARROW_TYPES = {"posting_id": pa.int64(), "category": pa.string(),
                     "label_file": pa.string(), "label_line": pa.int64(), "note": pa.string(),
                     "labelled_by": pa.string(), "labelled_at": pa.timestamp("ns", tz="UTC")}
LABEL_QUARANTINE_ARROW_TYPES = {"label_file": pa.string(), "label_line": pa.int64(),
                                "posting_id": pa.int64(), "category": pa.string(),
                                "reason": pa.string()}
SLICE_POSTINGS = 5_000

# The next slice: the latest bronze row of each posting past the watermark, the first $slice of
# them by row id. The rows are chosen on (posting_id, bronze_row_id) alone and only theirs are
# read whole: ranking every row past the watermark with its payload made each slice cost as much
# as all the rows still to merge (at 100,000 postings, 20 slices over ~400 MB of payloads).
CHANGED_SQL = """
WITH chosen AS (
    SELECT bronze_row_id FROM bronze.bronze_postings
    WHERE bronze_row_id > $watermark
    QUALIFY row_number() OVER (PARTITION BY posting_id ORDER BY bronze_row_id DESC) = 1
    ORDER BY bronze_row_id
    LIMIT $slice
)
SELECT posting_id, bronze_row_id, payload, source, page, fetched_at, run_id
FROM bronze.bronze_postings
WHERE bronze_row_id IN (SELECT bronze_row_id FROM chosen)
    AND bronze_row_id BETWEEN (SELECT min(bronze_row_id) FROM chosen)
                          AND (SELECT max(bronze_row_id) FROM chosen)
ORDER BY bronze_row_id
"""


def ensure_silver_schema(connection: duckdb.DuckDBPyConnection) -> bool:
    """Create silver if missing; rebuild it (return True) when its columns are not ours."""
    connection.execute("CREATE SCHEMA IF NOT EXISTS silver")
    existing = connection.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'silver' AND table_name = 'silver_postings' ORDER BY ordinal_position"
    ).fetchall()
    rebuilt = bool(existing) and [name for (name,) in existing] != list(SILVER_COLUMNS)
    if rebuilt:
        connection.execute("DROP TABLE silver.silver_postings")
    columns = ", ".join(f"{name} {type_}" for name, type_ in SILVER_COLUMNS.items())
    connection.execute(f"CREATE TABLE IF NOT EXISTS silver.silver_postings ({columns})")
    return rebuilt


def key_and_link_sql(connection: duckdb.DuckDBPyConnection, alias: str = "s") -> str:
    """`text_key, link` of the silver rows aliased `alias`, as SQL select items: silver's own
    columns, or, while silver is a table an older version wrote without them (until the next
    silver_postings run rebuilds it: a retraining job does not run silver), computed from the
    texts and the bronze payload as that version did."""
    kept = {name for (name,) in connection.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'silver' "
        "AND table_name = 'silver_postings' AND column_name IN ('text_key', 'link')").fetchall()}
    if kept == {"text_key", "link"}:
        return f"{alias}.text_key AS text_key, {alias}.link AS link"
    text_key = TEXT_KEY_SQL.replace("title", f"{alias}.title").replace(
        "description_text", f"{alias}.description_text")
    return (f"{text_key} AS text_key, (SELECT json_extract_string(b.payload, "
            "'$.refs.landing_page') FROM bronze.bronze_postings AS b "
            f"WHERE b.bronze_row_id = {alias}.bronze_row_id) AS link")


def watermark(connection: duckdb.DuckDBPyConnection) -> int:
    return connection.execute(
        "SELECT coalesce(max(bronze_row_id), 0) FROM silver.silver_postings"
    ).fetchone()[0]


def silver_frame(changed: pd.DataFrame) -> tuple[pd.DataFrame, pa.Table]:
    """Silver rows for bronze rows (CHANGED_SQL's columns), and the rows rejected as
    quarantine records (bronze_quarantine's columns)."""
    rows, rejected = [], []
    for row in changed.itertuples(index=False):
        item = json.loads(row.payload)
        try:
            check_item(item, row.fetched_at.to_pydatetime())
        except InvalidPosting as exc:
            rejected.append({
                "source": row.source, "page": row.page, "item_index": None,
                "posting_id": row.posting_id,
                "reason": f"bronze row {row.bronze_row_id} not merged into silver: {exc}",
                "raw": row.payload, "raw_hash": raw_hash(row.payload),
                "fetched_at": row.fetched_at.to_pydatetime(),
                "run_id": row.run_id,
            })
            continue
        rows.append({**silver_row(item), "bronze_row_id": row.bronze_row_id})
    frame = pd.DataFrame.from_records(rows, columns=list(SILVER_ARROW_TYPES))
    frame["category_raw"] = frame["category"]  # `category` becomes the current name below
    frame["publication_date"] = pd.to_datetime(frame["publication_date"], utc=True)
    frame["publication_day"] = frame["publication_date"].dt.date  # already in UTC
    return frame, pa.Table.from_pylist(rejected, schema=QUARANTINE_SCHEMA)


def merge_slice(
    connection: duckdb.DuckDBPyConnection, frame: pd.DataFrame, rejected: pa.Table
) -> None:
    """Replace the postings of `frame` (silver_frame's rows) in silver and quarantine
    `rejected`, in one transaction; the rows go in with SILVER_ARROW_TYPES declared."""
    rows = declared_table(frame, SILVER_ARROW_TYPES)
    with transaction_with(connection, silver_slice=rows, page_quarantine=rejected):
        connection.execute(
            "DELETE FROM silver.silver_postings "
            "WHERE posting_id IN (SELECT posting_id FROM silver_slice)"
        )
        connection.execute("INSERT INTO silver.silver_postings BY NAME "
                           f"SELECT *, {TEXT_KEY_SQL} AS text_key FROM silver_slice")
        if rejected.num_rows:
            connection.execute(INSERT_QUARANTINE_SQL)


# Every name the postings list, and how many list it.
NAMES_LISTED_SQL = """
SELECT name, count(*) FROM (SELECT unnest(categories) AS name FROM silver.silver_postings)
GROUP BY name
"""
# Every row's category: a reviewer's label, else the listed one under the name it is counted
# under (`CategoryNames`); and where it came from. Only rows that change are written.
APPLY_CATEGORIES_SQL = """
UPDATE silver.silver_postings AS s
SET category = n.category, category_source = n.source
FROM (
    SELECT p.posting_id,
           coalesce(l.category, m.current, p.category_raw) AS category,
           CASE WHEN l.category IS NOT NULL THEN 'label'
                WHEN p.category_raw IS NOT NULL THEN 'api' END AS source
    FROM silver.silver_postings AS p
    LEFT JOIN taxonomy_map AS m ON m.old = p.category_raw
    LEFT JOIN label_rows AS l ON l.posting_id = p.posting_id
) AS n
WHERE s.posting_id = n.posting_id
  AND (s.category IS DISTINCT FROM n.category OR s.category_source IS DISTINCT FROM n.source)
"""


def category_names_in_use(connection: duckdb.DuckDBPyConnection, taxonomy: Taxonomy) -> CategoryNames:
    """The category names of the taxonomy and of the postings in silver."""
    return category_names(taxonomy, dict(connection.execute(NAMES_LISTED_SQL).fetchall()))


# Each label file's last complete read (review/labels.py: a file read while it is saved).
KEPT_READS_SCHEMA = pa.schema([("label_file", pa.string()), ("data", pa.binary())])


def kept_label_reads(connection: duckdb.DuckDBPyConnection) -> dict[str, bytes]:
    """`silver.label_files_in_force`: each label file's bytes at its last complete read."""
    connection.execute("CREATE TABLE IF NOT EXISTS silver.label_files_in_force "
                       "(label_file VARCHAR, data BLOB)")
    return {name: bytes(data) for name, data in connection.execute(
        "SELECT label_file, data FROM silver.label_files_in_force").fetchall()}


def apply_categories(
    connection: duckdb.DuckDBPyConnection, names: CategoryNames, labels: Labels,
    kept: dict[str, bytes] | None = None,
) -> int:
    """Counted names and reviewers' labels on every row; keep the labels and their quarantine
    as tables (`silver.reviewer_labels`, `silver.label_quarantine`), and with `kept` the label
    files' reads in force (`silver.label_files_in_force`); return rows changed."""
    raw = [name for (name,) in connection.execute(
        "SELECT DISTINCT category_raw FROM silver.silver_postings WHERE category_raw IS NOT NULL"
    ).fetchall()]
    reads = pa.Table.from_pylist(
        [{"label_file": name, "data": data} for name, data in (kept or {}).items()],
        schema=KEPT_READS_SCHEMA)
    with transaction_with(
            connection, taxonomy_map=declared_table(names.mapping_frame(raw), TAXONOMY_MAP_TYPES),
            label_rows=declared_table(labels.labels, LABEL_ARROW_TYPES),
            label_refused=declared_table(labels.quarantine, LABEL_QUARANTINE_ARROW_TYPES),
            kept_reads=reads):
        changed = connection.execute(APPLY_CATEGORIES_SQL).fetchone()[0]
        connection.execute("CREATE OR REPLACE TABLE silver.reviewer_labels AS "
                           "SELECT * FROM label_rows")
        connection.execute("CREATE OR REPLACE TABLE silver.label_quarantine AS "
                           "SELECT * FROM label_refused")
        if kept is not None:
            connection.execute("CREATE OR REPLACE TABLE silver.label_files_in_force AS "
                               "SELECT * FROM kept_reads")
    return changed


@dataclass(frozen=True)
class SilverUpdate:
    rebuilt: int  # postings (re)built from new bronze payloads
    labels: Labels
    # Of the postings rebuilt: (posting_id, description_note) of those whose description's
    # HTML parse lost most of its text, and how many descriptions were plain text.
    descriptions_misparsed: tuple[tuple[int, str], ...] = ()
    descriptions_plain_text: int = 0
    # Label files read as they were last read whole, or dropping labels, named (review/labels.py).
    label_notes: tuple[str, ...] = ()


def update_silver(
    connection: duckdb.DuckDBPyConnection,
    taxonomy: Taxonomy | None = None,
    slice_postings: int = SLICE_POSTINGS,
    label_files: list[LabelFile] = (),
    now: float | None = None,
) -> SilverUpdate:
    """Bring silver up to date with bronze, the taxonomy and the reviewers' labels (`now`:
    seconds since the epoch, for how long a label file has been unchanged; default the clock)."""
    ensure_silver_schema(connection)
    updated, plain_text, misparsed = 0, 0, []
    # Rejected rows do not raise silver's own watermark: this run moves past them by its own.
    mark = watermark(connection)
    while True:
        changed = connection.execute(
            CHANGED_SQL, {"watermark": mark, "slice": slice_postings}
        ).fetchdf()
        if changed.empty:
            break
        frame, rejected = silver_frame(changed)
        merge_slice(connection, frame, rejected)
        updated += len(frame)
        notes = frame["description_note"]
        plain_text += int((notes == PLAIN_TEXT).sum())
        misparsed += [(int(pid), note) for pid, note in
                      zip(frame["posting_id"], notes, strict=True)
                      if note is not None and note.startswith(MISPARSED)]
        mark = int(changed["bronze_row_id"].max())
    names = category_names_in_use(connection, taxonomy or load_taxonomy())
    reads = settle_label_files(list(label_files), kept_label_reads(connection),
                               time.time() if now is None else now)
    known = {pid for (pid,) in connection.execute(
        "SELECT posting_id FROM silver.silver_postings").fetchall()} if reads.files else set()
    labels = read_labels(reads.files, known, names)
    if reads.refused:
        refused = pd.DataFrame(reads.refused, columns=QUARANTINE_COLUMNS).astype(QUARANTINE_TYPES)
        labels = replace(labels, quarantine=pd.concat([labels.quarantine, refused],
                                                      ignore_index=True))
    apply_categories(connection, names, labels, reads.kept)
    return SilverUpdate(updated, labels, tuple(misparsed), plain_text, tuple(reads.notes))
