import json
import os
import shutil
from functools import cache
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


@pytest.fixture(scope="session", autouse=True)
def new_mlflow_stores_copied(tmp_path_factory):
    """In this process, a new SQLite MLflow store is a copy of one that `create_store` made
    once. MLflow makes a store by running its schema migrations, 1.4-1.9 s, and the graph runs
    of these tests open about forty new homes; the copy is the same file (a store holds no path
    of its own), and `create_store` still runs on it (it finds the store complete). Processes
    the tests start make theirs for real (test_mlflow_store races three at once)."""
    from careerpulse_assets import resources
    from careerpulse_assets.classification import registry

    make = registry.create_store

    @cache
    def made() -> Path:
        store = tmp_path_factory.mktemp("mlflow-store") / "mlflow.db"
        make(f"sqlite:///{store}")
        return store

    def create_store(tracking_uri: str) -> None:
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if tracking_uri.startswith("sqlite:///") and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(made(), path)
        make(tracking_uri)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "create_store", create_store)
        patch.setattr(resources, "create_store", create_store)
        yield


@pytest.fixture
def settings_for(tmp_path):
    """Settings with a fresh CAREERPULSE_HOME under tmp_path, for an archive or a base URL."""

    def make(archive: Path | None = None, base_url: str | None = None, **kwargs) -> Settings:
        fields = {"home": tmp_path / "home", "muse_archive": archive, **kwargs}
        if base_url:
            fields["muse_base_url"] = base_url
        return Settings(**fields)

    return make


# Seconds each test file took in `make test` (three workers on two cores, 2026-12-08), for the
# order below; a file not listed is short, and a stale figure only costs balance, never a test.
FILE_SECONDS = {
    "test_entry_points": 203, "test_benchmarks": 154, "test_assets": 93, "test_deployment": 90,
    "test_live_api": 80, "test_browser": 80, "test_recovery": 78, "test_failures_explained": 61,
    "test_people_in_the_loop": 52, "test_end_to_end": 50, "test_champion": 41,
    "test_ingestion_faults": 32, "test_mlflow_store": 31, "test_labels_help": 28,
    "test_duckdb_readers": 25, "test_quality_settings": 21, "test_tracking": 18,
    "test_hostile_inputs": 16, "test_forecast": 16, "test_selection": 12, "test_concurrency": 10,
    "test_quantification": 9,
}


def pytest_collection_modifyitems(config, items):
    """The longest files first. `make test` hands whole files to its workers in this order
    (`--dist loadfile --no-loadscope-reorder`): longest first, the short ones fill in at the end
    and the workers finish together (xdist's own order, the files with most tests first, gave one
    worker both 200-second files: it ended 130 s after the others)."""
    items.sort(key=lambda item: -FILE_SECONDS.get(item.path.stem, 0))
