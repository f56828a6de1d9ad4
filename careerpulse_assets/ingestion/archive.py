"""Reading saved Muse pages from a folder instead of the API.

A file is either one saved API answer (an object with `results`) or a JSON list of result items
(the form of the shared data). Lists are cut into pages of 20 so that `page` means what it
means for the API. Files are read as UTF-8, with or without a byte-order mark; `.json` in any
case of letters. Other files are not read, and `skipped_files` names them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .pages import PAGE_SIZE, RawPage, parse_body


def _is_json(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".json"


def archive_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"Muse archive folder does not exist: {folder}")
    return sorted(p for p in folder.iterdir() if _is_json(p))


def skipped_files(folder: str | Path) -> list[str]:
    """Names of the files in the archive folder that are not read (not `.json`)."""
    return sorted(p.name for p in Path(folder).iterdir() if p.is_file() and not _is_json(p))


def iter_archive_pages(folder: str | Path) -> Iterator[RawPage]:
    for path in archive_files(Path(folder)):
        source = f"archive:{path.name}"
        data = path.read_bytes()
        try:
            text, notes = data.decode("utf-8-sig"), ()
        except UnicodeDecodeError as exc:
            text = data.decode("utf-8", errors="replace")
            notes = (f"not UTF-8 (byte 0x{data[exc.start]:02x} at {exc.start}): undecodable "
                     "bytes replaced by U+FFFD",)
        try:
            data = parse_body(text)
        except ValueError as exc:
            yield RawPage(source, 0, [], error=f"not valid JSON: {exc}", raw=text, notes=notes)
            continue
        if isinstance(data, dict) and isinstance(data.get("results"), list):
            page = data.get("page") if isinstance(data.get("page"), int) else 0
            yield RawPage(
                source, page, data["results"],
                page_count=data.get("page_count"), total=data.get("total"), notes=notes,
            )
        elif isinstance(data, list):
            for start in range(0, len(data), PAGE_SIZE):
                yield RawPage(source, start // PAGE_SIZE, data[start : start + PAGE_SIZE],
                              notes=notes if start == 0 else ())
        else:
            yield RawPage(
                source, 0, [], error="neither a page with `results` nor a list of items",
                raw=text, notes=notes,
            )
