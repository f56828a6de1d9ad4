import json
import os
from pathlib import Path

import pytest

from careerpulse_assets.ops.settings import Settings

# The real postings lie beside the checkout (../shared), read-only; tests never write there.
SHARED_MUSE = Path(
    os.environ.get("CAREERPULSE_SHARED_MUSE")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "muse"
)


@pytest.fixture
def shared_items() -> list[dict]:
    if not SHARED_MUSE.is_dir():
        pytest.skip(f"shared Muse postings not found at {SHARED_MUSE}")
    items = []
    for path in sorted(SHARED_MUSE.glob("*.json")):
        items += json.loads(path.read_text())
    return items


@pytest.fixture(scope="session")
def shared_gold():
    """gold.gold_daily_counts of the shared postings as listed (no classifier: postings without
    a category are Unclassified), built through bronze and silver as the pipeline does."""
    if not SHARED_MUSE.is_dir():
        pytest.skip(f"shared Muse postings not found at {SHARED_MUSE}")
    from .gold_frames import archive_gold

    return archive_gold(SHARED_MUSE)


@pytest.fixture
def settings_for(tmp_path):
    """Settings with a fresh CAREERPULSE_HOME under tmp_path, for an archive or a base URL."""

    def make(archive: Path | None = None, base_url: str | None = None, **kwargs) -> Settings:
        fields = {"home": tmp_path / "home", "muse_archive": archive, **kwargs}
        if base_url:
            fields["muse_base_url"] = base_url
        return Settings(**fields)

    return make
