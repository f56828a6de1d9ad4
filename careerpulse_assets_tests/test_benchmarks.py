"""Every benchmark script runs, at a tiny size on the tests' own postings: a figure in
BENCHMARKS.md that can no longer be reproduced is found here, not by the next person to try
(issue 27: `make bench` crashed for weeks on the run-scoped classifier file and nothing noticed).

Each runs its module entry (`python -m benchmarks.<name> ...`), as BENCHMARKS.md says to, with
a home of its own: in this process as `-m` runs it (runpy), the environment, arguments and
working directory those of the command, all put back after; in a child process of its own where
the script starts processes (`make bench`, the soak, the model store's loads). A child process
cost 3.5 s of imports per script here. `replay.py` and `baselines.py` are libraries of the
others.
"""

import contextlib
import hashlib
import io
import os
import runpy
import subprocess
import sys

import pytest

from .muse_fixtures import synthetic_postings, write_archive
from .servers import REPO, careerpulse_env

# Each runs a benchmark script whole: what is tested is the script as BENCHMARKS.md runs it.
pytestmark = pytest.mark.slow


@pytest.fixture
def archive(tmp_path):
    """54 postings of the tests' own (42 labelled in 3 categories), as a saved-pages folder."""
    return write_archive(tmp_path / "archive", synthetic_postings())


def bench(tmp_path, *args: str, timeout: float = 600) -> str:
    """Run `python -m benchmarks.<args>` in a child process; its output, after asserting it
    exited 0."""
    done = subprocess.run([sys.executable, "-m", *args], cwd=REPO,
                          env=careerpulse_env(tmp_path / "home", PYTHONWARNINGS="ignore"),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def bench_here(tmp_path, module: str, *args: str) -> str:
    """Run `python -m <module> <args>` in this process as `-m` does (runpy, `__main__`), in the
    repository with the environment `bench` gives its child; its output, after asserting it
    ended without an error. The environment, arguments, working directory and MLflow's tracking
    URI (mlflow.set_tracking_uri sets it in os.environ too) are put back whatever it did."""
    import mlflow

    environ, argv, cwd = dict(os.environ), sys.argv, os.getcwd()
    tracking_uri = mlflow.get_tracking_uri()
    out = io.StringIO()
    try:
        os.environ.clear()
        os.environ.update(careerpulse_env(tmp_path / "home", PYTHONWARNINGS="ignore"))
        sys.argv = [module, *args]
        os.chdir(REPO)
        sys.modules.pop(module, None)  # imported by another script: run afresh, as `-m` does
        with contextlib.redirect_stdout(out):
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            except SystemExit as exit_:
                assert exit_.code in (0, None), out.getvalue()[-3000:]
    finally:
        os.chdir(cwd)
        sys.argv = argv
        os.environ.clear()
        os.environ.update(environ)
        mlflow.set_tracking_uri(tracking_uri)
    return out.getvalue()


def test_classifier_comparison(tmp_path, archive):
    out = bench_here(tmp_path, "benchmarks.classifier_comparison", str(archive))
    assert "| chosen KNN | holdout |" in out
    assert "same k (" in out and "and same CV scores: True" in out


def test_drift_rates(tmp_path, archive):
    out = bench_here(tmp_path, "benchmarks.drift_rates", str(archive), "--windows", "5")
    assert "| 20-point shift |" in out
    assert "verdict: not evaluated: 54 postings, the check needs 500" in out


def test_forecast_backtest(tmp_path, archive):
    out = bench_here(tmp_path, "benchmarks.forecast_backtest", str(archive))
    assert "### dense 120-day stream" in out and "80 % interval coverage" in out
    assert "skipped: no category has 56 days to learn from" in out  # 3 weeks of postings


def test_review_queue(tmp_path, archive):
    out = bench_here(tmp_path, "benchmarks.review_queue", str(archive), "--seeds", "1",
                "--labels", "5")
    assert "per seed, macro-F1:" in out


def test_incremental_ingestion(tmp_path, archive):
    out = bench_here(tmp_path, "benchmarks.incremental_ingestion", str(archive), "100")
    assert "| 100 |" in out and "| incremental: requests |" in out


def test_mlflow_logging(tmp_path, archive):
    out = bench_here(tmp_path, "benchmarks.mlflow_logging", str(archive))
    assert "| this checkout | 54 | 42 |" in out


def test_live_crawl_parts_a_listing_over_the_page_cap(tmp_path, archive):
    out = bench_here(tmp_path, "benchmarks.live_crawl", "--postings", "2500", "--companies", "50",
                "--shared", str(archive))
    row = next(line for line in out.splitlines() if line.startswith("| 2,500 |"))
    assert "(1, 0) |" in row  # one listing over the 2,000 cap, parted
    assert "postings not reached, by cause:" in out


def test_soak(tmp_path):
    out = bench(tmp_path, "benchmarks.soak", "--cycles", "1", "--kill-share", "0",
                "--shared", str(tmp_path / "no shared postings"))
    assert "FAILED" not in out
    assert "ok     every valid posting in bronze" in out


def test_make_bench_at_a_tiny_size_writes_its_tables_where_it_is_told(tmp_path, archive):
    """The README's `make bench`, at 150 postings (45 with a category: 7 a category are needed
    to learn one), its tables in a file of the test's. (Two sizes once shared one MLflow store:
    test_replay.py's test of `run_environment` keeps that from coming back without paying for a
    second size here.)"""
    before = hashlib.sha256((REPO / "BENCHMARKS.md").read_bytes()).hexdigest()
    report = tmp_path / "BENCHMARKS.md"
    done = subprocess.run(
        ["make", "--no-print-directory", "bench", f"SHARED_MUSE={archive}", "BENCH_SIZES=150",
         f"BENCH_REPORT={report}"],
        cwd=REPO, env=careerpulse_env(tmp_path / "home"), capture_output=True, text=True,
        timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = report.read_text()
    assert "<!-- make bench: start -->" in text and f"replayed from {archive}" in text
    assert "\n| 150 | " in text
    assert "(exit" not in text  # both runs of the graph succeeded
    assert "70% without a category" in text
    # Each step of the three runs with its seconds, peak memory and the load during it.
    for run in ("full", "incremental", "next incremental"):
        row = next(line for line in text.splitlines() if line.startswith(f"| 150 | {run} |"))
        assert row.count(" GiB; load ") >= 5, row
    assert "imputation throughput vs scikit-learn's predict" in text
    assert hashlib.sha256((REPO / "BENCHMARKS.md").read_bytes()).hexdigest() == before


def test_count_accuracy(tmp_path, archive):
    out = bench_here(tmp_path, "benchmarks.count_accuracy", str(archive), "--seeds", "1", "--bags",
                "1")
    assert "| draw" in out and "| random (1)" in out and "| shifted (1)" in out
    for method in ("hard counts", "CC", "PCC", "ACC", "PACC", "EMQ", "chosen"):
        assert f" {method} " in out.splitlines()[2], method
    assert "90 % intervals hold" in out and "random draws: written right" in out
    assert "every labelled posting: PCC" in out or "every labelled posting: PACC" in out


def test_model_store(tmp_path, archive):
    out = bench(tmp_path, "benchmarks.model_store", str(archive), "--n", "60", "--repeats", "1")
    assert out.splitlines()[0].startswith("| postings | labelled | registry load (s) |")
    assert out.strip().splitlines()[-1].startswith("| 60 |")


def test_ivf_accuracy(tmp_path, archive):
    out = bench_here(tmp_path, "benchmarks.ivf_accuracy", str(archive), "400", "--rows-per-cluster",
                "20", "--probes", "2")
    assert "| exact |" in out and "| IVF |" in out
    assert "IVF 5 clusters (~20 rows each), 2 probed" in out
    assert "accuracy loss" in out and "count L1" in out
