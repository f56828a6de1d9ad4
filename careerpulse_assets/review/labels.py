"""Reviewers' labels: CSV files of `posting_id,category` that win over the API and the model.

Plain functions over the files' texts; the silver asset reads the folder and applies the result.

A file holds labels when it is a `*.csv` with a header naming `posting_id` and `category`;
`note`, `labelled_by` and `labelled_at` (ISO-8601) are optional, other columns are ignored (a
review file carries the title, the runner-up and a link for the reviewer). A row whose
`labelled_by` is empty, in a file that has that column, is waiting for a reviewer and is not a
label yet: `make review` writes its rows that way, with the model's guess in `category`.

Every row that cannot be used goes to the quarantine with its file, line and reason, never
silently: a malformed file (not UTF-8, no such header, not CSV), a posting id that is not an
integer or not a posting silver knows, a category no one knows (neither a current Muse name, nor
an old one mapped in the taxonomy, nor one the API serves: names compared by
`taxonomy.name_key`, so case, `&`/"and" and spacing do not matter), a `labelled_at` that is not
a date.

Two rows on one posting that disagree: the one labelled last wins (`labelled_at`; a row without
one counts as older than any with one), then the file whose name sorts last, then the later
line. The other is quarantined, naming the row that won. A label is kept under the name the
category is counted under (the current name, or the API's spelling).

**A file read while it is saved** (`settle_label_files`) must not undo the labels it held: a
spreadsheet or a sync client that writes in place leaves it empty or cut mid-row for a moment,
and a label gone for one run is a category count gone from gold. So the last complete read of
every file is kept (`silver.label_files_in_force`), and a file that now drops or changes a label
it held is read as it was until it is stable: unchanged for LABEL_FILE_SETTLE_SECONDS (then the
labels it dropped go, named), or, when it cannot be read at all (0 bytes, no header, not UTF-8),
until it can or is removed. Labels added to a file apply at once, and a file removed takes its
labels with it. Each file held or dropping labels is named, with the posting ids.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from .spreadsheet import restore
from .taxonomy import CategoryNames, Taxonomy, category_names

REQUIRED = ("posting_id", "category")
OPTIONAL = ("note", "labelled_by", "labelled_at")
LABEL_COLUMNS = ["posting_id", "category", "label_file", "label_line", "note", "labelled_by",
                 "labelled_at"]
QUARANTINE_COLUMNS = ["label_file", "label_line", "posting_id", "category", "reason"]
# Typed even when empty: the frames become DuckDB tables and join on posting_id.
LABEL_TYPES = {"posting_id": "int64", "category": "string", "label_file": "string",
               "label_line": "Int64", "note": "string", "labelled_by": "string",
               "labelled_at": "datetime64[ns, UTC]"}
QUARANTINE_TYPES = {"label_file": "string", "label_line": "Int64", "posting_id": "Int64",
                    "category": "string", "reason": "string"}


# How long a label file that dropped labels must stay unchanged (by its modification time) before
# the drop is taken as meant: saving a file takes well under a second, a sync client seconds.
LABEL_FILE_SETTLE_SECONDS = 60
# Posting ids named in a note about vanished labels, at most.
NAMED_IDS = 20


@dataclass(frozen=True)
class LabelFile:
    name: str
    data: bytes
    error: str | None = None  # the file could not be read at all
    modified_at: float | None = None  # its modification time (seconds since the epoch)


@dataclass(frozen=True)
class Labels:
    labels: pd.DataFrame  # LABEL_COLUMNS: one row per posting, the winning label
    quarantine: pd.DataFrame  # QUARANTINE_COLUMNS
    awaiting_review: int  # rows with an empty labelled_by in files that have that column


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class MalformedFile(ValueError):
    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.reason, self.line = reason, line


def _csv_rows(file: LabelFile) -> tuple[list[str], list[tuple[int, dict]]]:
    """The header and the (line, row) pairs of a label file; MalformedFile when it has none."""
    if file.error is not None:
        raise MalformedFile(f"malformed file: cannot be read ({file.error})")
    try:
        text = file.data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedFile(f"malformed file: not UTF-8 (byte 0x{file.data[exc.start]:02x} at "
                            f"{exc.start})") from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        header = [name.strip() for name in (reader.fieldnames or [])]
        if not set(REQUIRED) <= set(header):
            raise MalformedFile(f"malformed file: the header must name {', '.join(REQUIRED)}; it "
                                f"names {', '.join(header) or 'nothing'}", line=1)
        reader.fieldnames = header
        return header, [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise MalformedFile(f"malformed file: not CSV ({exc})") from None


def _values(row: dict) -> dict[str, str]:
    # A cell CareerPulse neutralised for spreadsheets (`make review`) reads back as written.
    return {k: restore((row.get(k) or "").strip()).strip() for k in (*REQUIRED, *OPTIONAL)}


def posting_ids_named(files: list[LabelFile]) -> set[int]:
    """Every posting a label file names, labelled or awaiting review: what `make review` must
    not hand out again. Malformed files and rows name none (the next run quarantines them)."""
    named = set()
    for file in files:
        try:
            _, rows = _csv_rows(file)
        except MalformedFile:
            continue
        for _, row in rows:
            raw_id = _values(row)["posting_id"]
            if raw_id.isascii() and raw_id.isdigit():
                named.add(int(raw_id))
    return named


def _rows(file: LabelFile, quarantine: list[dict]) -> tuple[list[dict], int]:
    """The candidate rows of one file (or none, with the file quarantined)."""

    def refuse(line, reason, posting_id=None, category=None):
        quarantine.append({"label_file": file.name, "label_line": line,
                           "posting_id": posting_id, "category": category, "reason": reason})

    try:
        header, raw_rows = _csv_rows(file)
    except MalformedFile as malformed:
        refuse(malformed.line, malformed.reason)
        return [], 0
    waiting, rows = 0, []
    for line, row in raw_rows:
        if None in row:  # more fields than the header
            refuse(line, "malformed row: more fields than the header has")
            continue
        values = _values(row)
        if not any(values.values()):
            continue  # an empty line
        if "labelled_by" in header and not values["labelled_by"]:
            waiting += 1
            continue
        raw_id, category = values["posting_id"], values["category"]
        if not (raw_id.isascii() and raw_id.isdigit()) or not 0 < int(raw_id) < 2**63:
            refuse(line, f"posting_id is not a posting id: {raw_id[:40]!r}", None, category)
            continue
        if not category:
            refuse(line, "category is empty", int(raw_id))
            continue
        labelled_at = None
        if values["labelled_at"]:
            try:
                labelled_at = _parse_time(values["labelled_at"])
            except ValueError:
                refuse(line, f"labelled_at is not ISO-8601: {values['labelled_at'][:40]!r}",
                       int(raw_id), category)
                continue
        rows.append({"posting_id": int(raw_id), "category": category, "label_file": file.name,
                     "label_line": line, "note": values["note"] or None,
                     "labelled_by": values["labelled_by"] or None, "labelled_at": labelled_at})
    return rows, waiting


def _precedence(row: dict) -> tuple:
    """Higher wins: labelled later, then the file named last, then the later line."""
    when = row["labelled_at"]
    return (when is not None, when or datetime.min.replace(tzinfo=timezone.utc),
            row["label_file"], row["label_line"])


def read_labels(
    files: list[LabelFile], known_ids: set[int], names: CategoryNames | Taxonomy
) -> Labels:
    """`names`: the category names a label may use (a bare Taxonomy: its names only)."""
    if isinstance(names, Taxonomy):
        names = category_names(names, {})
    quarantine: list[dict] = []
    candidates, waiting = [], 0
    for file in sorted(files, key=lambda f: f.name):
        rows, file_waiting = _rows(file, quarantine)
        candidates += rows
        waiting += file_waiting
    valid = []
    for row in candidates:
        name = row["category"]
        counted_as = names.counted_as(name)
        if counted_as is None:
            quarantine.append({**_where(row), "reason": f"category {name[:60]!r} is neither a "
                               "current Muse category, nor an old one mapped in the taxonomy, nor "
                               "one the API serves"})
        elif row["posting_id"] not in known_ids:
            quarantine.append({**_where(row), "reason": "posting_id is not a posting in silver"})
        else:
            valid.append({**row, "category": counted_as})
    winners: dict[int, dict] = {}
    for row in sorted(valid, key=_precedence):
        winners[row["posting_id"]] = row  # the last in precedence order wins
    for row in valid:
        won = winners[row["posting_id"]]
        if row is not won and row["category"] != won["category"]:
            quarantine.append({**_where(row), "reason": (
                f"disagrees with {won['label_file']}:{won['label_line']} "
                f"({won['category']!r}), which wins (labelled later, or a later file or line)")})
    return Labels(
        labels=pd.DataFrame(list(winners.values()), columns=LABEL_COLUMNS).astype(LABEL_TYPES),
        quarantine=pd.DataFrame(quarantine, columns=QUARANTINE_COLUMNS).astype(QUARANTINE_TYPES),
        awaiting_review=waiting,
    )


def _where(row: dict) -> dict:
    return {"label_file": row["label_file"], "label_line": row["label_line"],
            "posting_id": row["posting_id"], "category": row["category"]}


@dataclass(frozen=True)
class LabelFileReads:
    files: list[LabelFile]  # what to read: each file as it is now, or as it was last read whole
    kept: dict[str, bytes]  # each file's last complete read, to keep for the next run
    notes: list[str]  # each file held at its last read or dropping labels, with the posting ids
    refused: list[dict]  # QUARANTINE_COLUMNS rows: files held because they cannot be read now


def _labels_held(file: LabelFile) -> tuple[dict[int, str], str | None]:
    """posting id -> category of a file's rows that are labels (an integer id, a category, not
    awaiting review), before any check against silver or the taxonomy; and why the file cannot
    be read as a label file (None when it can: then the labels are all it holds)."""
    refused: list[dict] = []
    rows, _ = _rows(file, refused)
    if refused and refused[0]["reason"].startswith("malformed file"):
        return {}, refused[0]["reason"]
    return {row["posting_id"]: row["category"] for row in rows}, None


def _named(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in sorted(ids)[:NAMED_IDS])
    return shown + (f" and {len(ids) - NAMED_IDS} more" if len(ids) > NAMED_IDS else "")


def settle_label_files(
    files: list[LabelFile], kept: dict[str, bytes], now: float,
    settle_seconds: float = LABEL_FILE_SETTLE_SECONDS,
) -> LabelFileReads:
    """Which version of each label file to read (module docstring: a file read while it is
    saved). `files`: the folder now (`modified_at` set); `kept`: each file's bytes at its last
    complete read, by name; `now`: seconds since the epoch."""
    chosen, kept_now, notes, refused = [], {}, [], []
    current = {file.name: file for file in files}
    for name in sorted(set(current) | set(kept)):
        file, before = current.get(name), kept.get(name)
        held = _labels_held(LabelFile(name, before))[0] if before is not None else {}
        if file is None:  # removed: a save replaces a file in one rename, never removes it
            if held:
                notes.append(f"{name} was removed: its {len(held)} labels no longer apply "
                             f"(posting ids {_named(list(held))})")
            continue
        labels, unreadable = _labels_held(file)
        gone = sorted(i for i, category in held.items() if labels.get(i) != category)
        if not gone:
            chosen.append(file)
            if unreadable is None:
                kept_now[name] = file.data
            continue
        if unreadable is not None:  # 0 bytes, no header, not UTF-8: never taken as a removal
            chosen.append(LabelFile(name, before))
            kept_now[name] = before
            said = (f"{unreadable}; its last complete read stays in force ({len(held)} labels) "
                    "until it can be read again or is removed")
            refused.append({"label_file": name, "label_line": None, "posting_id": None,
                            "category": None, "reason": said})
            notes.append(f"{name}: {said}")
            continue
        age = now - file.modified_at if file.modified_at is not None else settle_seconds
        if age >= settle_seconds:
            chosen.append(file)
            kept_now[name] = file.data
            notes.append(f"{name} drops or changes {len(gone)} of its labels (posting ids "
                         f"{_named(gone)}): as it says now (the file has been unchanged for "
                         f"{settle_seconds:.0f} s)")
            continue
        chosen.append(LabelFile(name, before))
        kept_now[name] = before
        notes.append(f"{name} was changed {max(age, 0):.0f} s ago and drops or changes {len(gone)} "
                     f"of its labels (posting ids {_named(gone)}): it is read as it was until it "
                     f"has been unchanged for {settle_seconds:.0f} s (a file being saved)")
    return LabelFileReads(chosen, kept_now, notes, refused)
