"""`python -m careerpulse_assets_tests.ingest_once HOME SOURCE [BUDGET]`: bronze + silver in a
process of its own, as a second run (the sensor's, a manual one) would be. SOURCE is an archive
folder or an API base URL; BUDGET the requests the run may make. Used by the concurrency and
crash tests."""

import subprocess
import sys
import time
from pathlib import Path

from dagster import DagsterInstance, materialize

from careerpulse_assets.assets.bronze import bronze_postings
from careerpulse_assets.assets.silver import silver_postings
from careerpulse_assets.definitions import build_resources
from careerpulse_assets.ops.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def killed_after(stub, home: Path, base_url: str, requests: int, budget: int | None = None
                 ) -> None:
    """Start an ingestion in a process of its own and SIGKILL it once `stub` has answered
    `requests` requests (raises AssertionError when it never gets that far)."""
    command = [sys.executable, "-m", "careerpulse_assets_tests.ingest_once", str(home), base_url]
    run = subprocess.Popen(command + ([str(budget)] if budget else []), cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(stub.requests) < requests and time.monotonic() < deadline:
        time.sleep(0.05)
    run.kill()
    run.wait()
    assert len(stub.requests) >= requests, "the run never got going"


if __name__ == "__main__":
    home, source = Path(sys.argv[1]), sys.argv[2]
    if source.startswith("http"):
        settings = Settings(home=home, muse_base_url=source)
        if len(sys.argv) > 3:
            settings = Settings(home=home, muse_base_url=source,
                                max_requests_per_run=int(sys.argv[3]))
    else:
        settings = Settings(home=home, muse_archive=Path(source))
    result = materialize(
        [bronze_postings, silver_postings],
        resources=build_resources(settings),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    sys.exit(0 if result.success else 1)
