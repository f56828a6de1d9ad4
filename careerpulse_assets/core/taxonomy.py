"""The Muse category taxonomy: current names, and old names mapped onto them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from .postings import NO_CATEGORY_NAMES

TAXONOMY_FILE = Path(__file__).resolve().parents[1] / "taxonomy" / "muse_categories.yaml"


class TaxonomyError(ValueError):
    """A taxonomy file that cannot be used as it is."""


@dataclass(frozen=True)
class Taxonomy:
    version: int
    current: frozenset[str]
    old_to_current: dict[str, str]

    def unknown(self, name_counts: dict[str, int]) -> dict[str, int]:
        """Names neither current nor mapped (a new taxonomy arriving?), most frequent first.

        The Muse's literal "Unknown" is no category at all, not an unknown name.
        """
        unknown = {
            name: count for name, count in name_counts.items()
            if name not in self.current and name not in self.old_to_current
            and name.lower() not in NO_CATEGORY_NAMES
        }
        return dict(sorted(unknown.items(), key=lambda item: (-item[1], item[0])))

    def mapping_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"old": list(self.old_to_current), "current": list(self.old_to_current.values())}
        )


def load_taxonomy(path: Path = TAXONOMY_FILE) -> Taxonomy:
    data = yaml.safe_load(Path(path).read_text())
    try:
        current = frozenset(data["current"])
        entries = data["old_to_current"]
        version = int(data["version"])
    except (KeyError, TypeError, ValueError) as exc:
        raise TaxonomyError(f"{path}: needs version, current and old_to_current ({exc})") from None
    mapping = {}
    for entry in entries:
        old, new = entry.get("old"), entry.get("current")
        if new not in current:
            raise TaxonomyError(f"{path}: {old!r} maps to {new!r}, which is not a current name")
        if old in mapping:
            raise TaxonomyError(f"{path}: {old!r} is mapped twice")
        mapping[old] = new
    # A name that is both old and current maps to itself; anything else would be ambiguous.
    clashes = [old for old, new in mapping.items() if old in current and old != new]
    if clashes:
        raise TaxonomyError(f"{path}: {clashes} are current names mapped to other names")
    return Taxonomy(version, current, mapping)
