"""Reading saved Muse pages from a folder instead of the API.

A file is either one saved API answer (an object with `results`) or a JSON list of result items
(the form of the shared data). Lists are cut into pages of 20 so that `page` means what it
means for the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from .pages import PAGE_SIZE, RawPage


def archive_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"Muse archive folder does not exist: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix == ".json" and p.is_file())


def iter_archive_pages(folder: str | Path) -> Iterator[RawPage]:
    for path in archive_files(Path(folder)):
        source = f"archive:{path.name}"
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            yield RawPage(source, 0, [], error=f"not valid JSON: {exc}", raw=text)
            continue
        if isinstance(data, dict) and isinstance(data.get("results"), list):
            page = data.get("page") if isinstance(data.get("page"), int) else 0
            yield RawPage(
                source, page, data["results"],
                page_count=data.get("page_count"), total=data.get("total"),
            )
        elif isinstance(data, list):
            for start in range(0, len(data), PAGE_SIZE):
                yield RawPage(source, start // PAGE_SIZE, data[start : start + PAGE_SIZE])
        else:
            yield RawPage(
                source, 0, [], error="neither a page with `results` nor a list of items",
                raw=text,
            )
