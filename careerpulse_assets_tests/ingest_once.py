"""`python -m careerpulse_assets_tests.ingest_once HOME ARCHIVE`: bronze + silver in a process of
its own, as a second run (the sensor's, a manual one) would be. Used by the concurrency test."""

import sys
from pathlib import Path

from dagster import DagsterInstance, materialize

from careerpulse_assets.assets.bronze import bronze_postings
from careerpulse_assets.assets.silver import silver_postings
from careerpulse_assets.definitions import build_resources
from careerpulse_assets.settings import Settings

if __name__ == "__main__":
    settings = Settings(home=Path(sys.argv[1]), muse_archive=Path(sys.argv[2]))
    result = materialize(
        [bronze_postings, silver_postings],
        resources=build_resources(settings),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    sys.exit(0 if result.success else 1)
