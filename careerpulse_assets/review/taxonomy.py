"""The Muse category taxonomy: current names, and old names mapped onto them; and how category
names are compared.

Names are compared by their key (`name_key`): case folded, `&` read as "and", every run of
whitespace (a no-break space included) one space. So "Data & Analytics", "data and analytics"
and "Data  and  Analytics" are one category, under the taxonomy's spelling when it knows the
name, else under the spelling the API serves most (`CategoryNames`), in the API's categories and
in reviewers' labels alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from ..ingestion.postings import NO_CATEGORY_NAMES

TAXONOMY_FILE = Path(__file__).resolve().parent / "muse_categories.yaml"


class TaxonomyError(ValueError):
    """A taxonomy file that cannot be used as it is."""


def name_key(name: str) -> str:
    """A category name as names are compared: case folded, `&` as "and", whitespace runs (no-break
    spaces included) as one space."""
    return " ".join(name.replace("&", " and ").casefold().split())


@dataclass(frozen=True)
class Taxonomy:
    version: int
    current: frozenset[str]
    old_to_current: dict[str, str]
    # name_key of every current and old name -> its current name (built from the two above)
    by_key: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        by_key: dict[str, str] = {}
        for name, current in [*((c, c) for c in sorted(self.current)),
                              *sorted(self.old_to_current.items())]:
            key = name_key(name)
            if by_key.setdefault(key, current) != current:
                raise TaxonomyError(f"{name!r} reads as {key!r}, as another name does, but maps "
                                    f"to {current!r}, not {by_key[key]!r}")
        object.__setattr__(self, "by_key", by_key)

    def current_name(self, name: str) -> str | None:
        """The current name a current or old name is counted under, compared by `name_key`;
        None when the taxonomy does not know it."""
        return self.by_key.get(name_key(name))

    def unknown(self, name_counts: dict[str, int]) -> dict[str, int]:
        """Names neither current nor mapped, compared by `name_key` (a new taxonomy arriving?),
        most frequent first.

        The Muse's literal "Unknown" is no category at all, not an unknown name.
        """
        unknown = {
            name: count for name, count in name_counts.items()
            if self.current_name(name) is None and name.lower() not in NO_CATEGORY_NAMES
        }
        return dict(sorted(unknown.items(), key=lambda item: (-item[1], item[0])))


@dataclass(frozen=True)
class CategoryNames:
    """Every category name a posting or a label may carry: the taxonomy's current and old names,
    and the names the API serves that the taxonomy does not know (a category the API serves is
    a category: it is counted, learned, imputed and may be a reviewer's label). Each is counted
    under one name: the current one, or the spelling the API serves most (ties: the first in
    alphabetical order)."""

    taxonomy: Taxonomy
    served: dict[str, str]  # name_key -> the spelling counted, for names the taxonomy lacks

    def counted_as(self, name: str) -> str | None:
        """The name `name` is counted under; None when it is no category anyone knows."""
        return self.taxonomy.current_name(name) or self.served.get(name_key(name))

    def mapping_frame(self, names) -> pd.DataFrame:
        """`old` (a name as listed) -> `current` (the name it is counted under), for `names`."""
        pairs = [(name, self.counted_as(name)) for name in names]
        return pd.DataFrame([p for p in pairs if p[1] is not None], columns=["old", "current"])


def category_names(taxonomy: Taxonomy, listed_counts: Mapping[str, int]) -> CategoryNames:
    """`listed_counts`: how many postings list each name (silver's `categories`)."""
    spellings: dict[str, list[tuple[int, str]]] = {}
    for name, count in listed_counts.items():
        if taxonomy.current_name(name) is None and name.lower() not in NO_CATEGORY_NAMES:
            spellings.setdefault(name_key(name), []).append((-int(count), name))
    return CategoryNames(taxonomy, {key: min(found)[1] for key, found in spellings.items()})


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
