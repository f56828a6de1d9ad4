"""`make review N=50`: the first N postings of `silver.review_queue` as a label file to fill in.

    python -m careerpulse_assets.review.handout [N]

Writes `$CAREERPULSE_LABELS_DIR/review-<UTC time>.csv` (never over a file already there) in the
labels format: `posting_id`, `category` pre-filled with the model's guess, `note`, `labelled_by`
and `labelled_at` empty, then for the reviewer the title, the guess's share, the runner-up and a
link to the posting. A row counts as a label once `labelled_by` names who checked it (correct
`category` first where the guess is wrong); until then it waits, and the next run says how many
rows wait. Postings already in a label file are not handed out again.

The queue is there after any run: ordered by the model in service's guesses (whether or not it
passes the quality gate), or, while no model can be trained, every posting without a category,
newest first, with no guess to check.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from .labels import posting_ids_named
from .spreadsheet import write_rows
from ..resources import ReviewerLabels
from ..ops.preflight import settings_for_command

COLUMNS = ["posting_id", "category", "note", "labelled_by", "labelled_at", "title",
           "model_share", "runner_up_category", "runner_up_share", "link"]


def new_file(folder: Path, now: datetime) -> tuple[Path, object]:
    """A file of a name not yet taken, created exclusively (never over another)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"review-{now:%Y%m%d-%H%M%S}"
    for n in range(1000):
        path = folder / (f"{stem}.csv" if n == 0 else f"{stem}-{n}.csv")
        try:
            return path, path.open("x", newline="", encoding="utf-8")
        except FileExistsError:
            continue
    raise RuntimeError(f"no free review file name in {folder}")


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    settings = settings_for_command(check=False)
    if settings is None:
        return 1
    try:
        wanted = int(args[0]) if args else 50
        if wanted < 1:
            raise ValueError
    except ValueError:
        print(f"careerpulse: N must be a positive number, got {args[0]!r}", file=sys.stderr)
        return 1
    source = "silver.review_queue"
    try:
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
            if not connection.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name "
                                      "= 'silver' AND table_name = 'review_queue'").fetchone()[0]:
                print("careerpulse: nothing to review yet: no silver.review_queue; run `make run` "
                      "first", file=sys.stderr)
                return 1
            queue = connection.execute(
                "SELECT * FROM silver.review_queue ORDER BY priority").fetchdf()
    except duckdb.Error as exc:
        print(f"careerpulse: cannot read {settings.duckdb_path} "
              f"({str(exc).splitlines()[0]}): run `make run` first", file=sys.stderr)
        return 1
    taken = posting_ids_named(ReviewerLabels(folder=str(settings.labels_dir)).files())
    rows = queue[~queue["posting_id"].isin(taken)].head(wanted)
    if rows.empty:
        print("careerpulse: nothing to review: " + (
            "the queue is empty (every posting has a category)" if queue.empty else
            f"every queued posting is in a file in {settings.labels_dir} already"))
        return 0
    path, handle = new_file(settings.labels_dir, datetime.now(timezone.utc))
    with handle:
        # Titles and links come from the API: no cell a spreadsheet would evaluate.
        write_rows(handle, COLUMNS, ([
            row.posting_id, row.category or "", "", "", "", row.title,
            "" if row.imputation_confidence != row.imputation_confidence
            else f"{row.imputation_confidence:.2f}", row.runner_up_category or "",
            "" if row.runner_up_share != row.runner_up_share else f"{row.runner_up_share:.2f}",
            getattr(row, "link", None) or "",
        ] for row in rows.itertuples()))
    print(f"careerpulse: {len(rows)} postings to review in {path}, ordered from {source}: "
          "check `category`, put your name in `labelled_by`, save; the next run learns from them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
