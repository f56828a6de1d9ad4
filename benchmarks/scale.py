"""`make bench`: the whole graph at 2k, 20k and 100k postings, served from a loopback API.

    .venv/bin/python -m benchmarks.scale ../shared/data/muse [N ...] [--unlabelled-share 0.7]
        [--profile DIR] [--no-write] [--write FILE]

For each N, postings replayed from the shared real ones (`benchmarks/replay.py`: distinct texts,
1,100 a day back from an hour before the size's full run, 70 % without a category at
random, each built when its page is asked for) are served by the loopback stand-in of The Muse API, and in a fresh CAREERPULSE_HOME:

1. `python -m careerpulse_assets.ops.run` (what `make run` runs) in a child process: wall time, the
   child's peak RSS, each step's time from the Dagster instance's step stats, and each step's peak
   RSS and the machine's load during it (sampled every half second);
2. one new page of 20 newer postings appears and the same command runs again (the incremental
   run the sensor starts), then another page and another run (the "next" incremental run: what
   every run after the first one after a full run costs; the first still copies the whole file
   for the snapshot, whose previous copy the next ones bring up to date);
   before each run the machine writes back what earlier ones left in the page cache (`sync`,
   not timed);
3. in this process, on the stored model and postings: imputation throughput of the fitted model
   against scikit-learn's KNeighborsClassifier.predict fitted on the same feature matrix, and
   model selection (one neighbour query per fold, seed grid) against the seed's GridSearchCV
   over Pipeline(tfidf, knn) on the same folds (GridSearchCV only up to 20k: it is the slow one).

Writes its tables into BENCHMARKS.md (or `--write FILE`) between the `make bench` markers (other
sections stay).
`--profile DIR` runs both runs of each N under pyinstrument and saves text reports there (the
times in the tables then include the profiler's overhead).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from importlib.metadata import version
from pathlib import Path

import duckdb
import mlflow
import numpy as np
import pandas as pd

from benchmarks.replay import UNLABELLED_SHARE, ReplayedPostings, replay_sources, shared_items
from careerpulse_assets.classification.evaluation import labelled_set
from careerpulse_assets.ops.instance import ensure_instance_file
from careerpulse_assets.classification.registry import CHAMPION, REGISTERED_MODEL_NAME, load_model
from careerpulse_assets.classification.knn import model_input
from careerpulse_assets.classification.model_selection import (
    SEED_GRID,
    select_knn,
    selection_sample,
)
from careerpulse_assets_tests.muse_server import serve_muse

from .baselines import gridsearch_seed

ROOT = Path(__file__).resolve().parent.parent
STEPS = ["bronze_postings", "silver_postings", "knn_classifier", "imputed_silver",
         "gold_daily_counts", "gold_category_forecast"]
GRIDSEARCH_UP_TO = 20_000
# How often a run's memory and the machine's load are sampled: a step shorter than this may show
# the figures of its neighbours.
SAMPLE_SECONDS = 0.5
# The most postings without a category the in-process throughput comparison predicts.
COMPARED_UP_TO = 20_000
START_MARK = "<!-- make bench: start -->"
END_MARK = "<!-- make bench: end -->"


@dataclass
class RunFigures:
    seconds: float
    peak_rss_gib: float
    exit_code: int
    step_seconds: dict[str, float] = field(default_factory=dict)
    step_peak_rss_gib: dict[str, float] = field(default_factory=dict)
    step_load: dict[str, tuple[float, float]] = field(default_factory=dict)  # lowest, highest
    checks_seconds: float = 0.0
    summary: str = ""
    # The machine's 1-minute load average at the start and the end of the run: times measured
    # beside other work are not the machine's (2 cores: a load of 4 about halves a run's speed).
    load: tuple[float, float] = (0.0, 0.0)


@dataclass
class SizeFigures:
    n: int
    labelled: int = 0
    to_impute: int = 0
    full: RunFigures | None = None
    incremental: RunFigures | None = None
    next_incremental: RunFigures | None = None
    impute_ours_per_s: float = 0.0
    impute_sklearn_per_s: float = 0.0
    vectorise_per_s: float = 0.0
    same_predictions: float = 0.0
    selection_postings: int = 0
    selection_ours_s: float = 0.0
    selection_gridsearch_s: float | None = None
    same_choice: bool | None = None


def run_make_run(env: dict, profile_to: Path | None = None) -> RunFigures:
    command = [sys.executable, "-m", "careerpulse_assets.ops.run"]
    if profile_to is not None:
        command = [sys.executable, "-m", "pyinstrument", "--show-all", "-o", str(profile_to),
                   "-m", "careerpulse_assets.ops.run"]
    # What earlier runs wrote reaches the disk first (not timed): the kernel writes a full run's
    # gigabytes back over the next tens of seconds, and an incremental run started at once paid
    # for that write-back too, where the sensor's runs come minutes apart.
    os.sync()
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(child.pid)
    sampler.start()
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    sampler.stop()
    child.returncode = os.waitstatus_to_exitcode(status)
    summary = output[output.find("CareerPulse run"):]
    figures = RunFigures(seconds, usage.ru_maxrss / 1024**2, child.returncode, summary=summary,
                         load=(load_before, os.getloadavg()[0]))
    spans, figures.checks_seconds = step_spans(Path(env["DAGSTER_HOME"]))
    for step, (start, end) in spans.items():
        figures.step_seconds[step] = end - start
        # A step shorter than a sample's interval: the first sample after it.
        during = ([(rss, load) for at, rss, load in sampler.samples if start <= at <= end]
                  or [(rss, load) for at, rss, load in sampler.samples if at > end][:1])
        if during:
            figures.step_peak_rss_gib[step] = max(rss for rss, _ in during)
            figures.step_load[step] = (min(load for _, load in during),
                                       max(load for _, load in during))
    return figures


class Sampler(threading.Thread):
    """(time, the process's resident memory in GiB, the machine's 1-minute load) every
    SAMPLE_SECONDS while it runs. The run executes its steps in its own process (in-process
    executor), so that process's RSS is the steps'."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples = pid, []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            rss = resident_gib(self.pid)
            if rss is not None:
                self.samples.append((time.time(), rss, os.getloadavg()[0]))
            self._done.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._done.set()
        self.join()


def resident_gib(pid: int) -> float | None:
    """VmRSS of a live process from /proc, in GiB; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024**2
    return None


def step_spans(dagster_home: Path) -> tuple[dict[str, tuple[float, float]], float]:
    """Each asset step's (start, end) Unix times in the newest run, and the asset-check steps'
    total seconds."""
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        run = instance.get_runs(limit=1)[0]
        stats = instance.get_run_step_stats(run.run_id)
    steps, checks = {}, 0.0
    for stat in stats:
        if stat.start_time is None or stat.end_time is None:
            continue
        if stat.step_key in STEPS:
            steps[stat.step_key] = (stat.start_time, stat.end_time)
        else:
            checks += stat.end_time - stat.start_time
    return steps, checks


def run_environment(home: Path, base_url: str, environ: dict | None = None) -> dict:
    """The environment of one size's runs: its own home and Dagster instance (written here), the
    loopback API, the whole listing in one run (no request budget, no page cap), and nothing
    of the settings that would point the runs elsewhere.

    MLFLOW_TRACKING_URI goes too: this process's mlflow.set_tracking_uri (the comparisons of
    the size before) sets it in os.environ, and the next size's runs then logged their models
    to that home and could not find their champion in their own.
    """
    env = dict(os.environ if environ is None else environ, CAREERPULSE_HOME=str(home),
               DAGSTER_HOME=str(home / "dagster"), CAREERPULSE_MUSE_BASE_URL=base_url,
               PYTHONWARNINGS="ignore", CAREERPULSE_MAX_REQUESTS_PER_RUN="1000000")
    for name in ("CAREERPULSE_MUSE_ARCHIVE", "CAREERPULSE_MAX_PAGES",
                 "CAREERPULSE_CRAWL_CATEGORIES", "CAREERPULSE_CRAWL_LEVELS",
                 "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    ensure_instance_file(home / "dagster", postgres=False)
    return env


def replay_end(now: datetime | None = None) -> datetime:
    """Where a size's replay ends: an hour before `now` (UTC). The live API's newest
    postings are the day's, and its new pages are after them: a replay ending on a fixed day
    (2026-07-01 until issue 29's second stop) put the incremental run's 20 new postings on a
    day the forecast had learnt from and made it forecast across months nobody saw. The two
    new pages (40 postings at 1,100 a day: 52 minutes) end before the full run starts, so both
    are on its day unless it starts in the first minutes after midnight UTC (they were 22
    minutes after it with half an hour). Between 00:00 and 01:00 UTC the end lies in the day
    before."""
    return (now or datetime.now(timezone.utc)) - timedelta(hours=1)


def measure(sources, n: int, profile_dir: Path | None,
            unlabelled_share: float = UNLABELLED_SHARE) -> SizeFigures:
    figures = SizeFigures(n)
    postings = ReplayedPostings(sources, n, unlabelled_share=unlabelled_share, end=replay_end())
    with tempfile.TemporaryDirectory(prefix=f"bench-{n}-") as home, serve_muse(
        postings, in_listing_order=True
    ) as (stub, base_url):
        env = run_environment(Path(home), base_url)
        profile = profile_dir / f"full_run_{n}.txt" if profile_dir else None
        print(f"[{n:,}] full run ...", flush=True)
        figures.full = run_make_run(env, profile)
        print(figures.full.summary, flush=True)
        stub.items = postings.with_newer(20)  # one new page, published after the newest
        print(f"[{n:,}] incremental run after one new page ...", flush=True)
        profile = profile_dir / f"incremental_run_{n}.txt" if profile_dir else None
        figures.incremental = run_make_run(env, profile)
        print(figures.incremental.summary, flush=True)
        stub.items = postings.with_newer(40)  # and the next page
        print(f"[{n:,}] next incremental run after another page ...", flush=True)
        profile = profile_dir / f"next_incremental_run_{n}.txt" if profile_dir else None
        figures.next_incremental = run_make_run(env, profile)
        print(figures.next_incremental.summary, flush=True)
        in_process_comparisons(figures, Path(home))
    return figures


def in_process_comparisons(figures: SizeFigures, home: Path) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    with duckdb.connect(str(home / "careerpulse.duckdb"), read_only=True) as connection:
        silver = connection.execute(
            "SELECT posting_id, title, description_text, category, publication_date "
            "FROM silver.silver_postings ORDER BY posting_id"
        ).fetchdf()
    # The classifier in service, from the home's MLflow registry (the one store of models).
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    pipeline = load_model(f"models:/{REGISTERED_MODEL_NAME}@{CHAMPION}")
    features, knn = pipeline.named_steps["features"], pipeline.named_steps["knn"]
    unlabelled = model_input(silver[silver["category"].isna()])
    figures.to_impute = len(unlabelled)

    started = time.perf_counter()
    x_new = features.transform(unlabelled)
    figures.vectorise_per_s = len(unlabelled) / (time.perf_counter() - started)
    # scikit-learn's classifier on the same training matrix, labels and vote rule. It has no
    # class-prior correction: when the chosen model uses one, "same predictions" says how many
    # predictions the correction changes.
    baseline = KNeighborsClassifier(n_neighbors=knn.n_neighbors, metric="cosine",
                                    algorithm="brute", weights=knn.vote)
    baseline.fit(knn.training_matrix_, knn.classes_[knn.train_labels_])
    # Throughput is per posting: above COMPARED_UP_TO postings to impute both predict the same
    # random sample (scikit-learn's brute search of 280,000 × 120,000 would take about an hour).
    if x_new.shape[0] > COMPARED_UP_TO:
        x_new = x_new[np.random.default_rng(0).choice(x_new.shape[0], COMPARED_UP_TO,
                                                      replace=False)]
    ours_s, ours = best_of(3 if x_new.shape[0] < 5_000 else 1, knn.predict, x_new)
    theirs_s, theirs = best_of(3 if x_new.shape[0] < 5_000 else 1, baseline.predict, x_new)
    figures.impute_ours_per_s = x_new.shape[0] / ours_s
    figures.impute_sklearn_per_s = x_new.shape[0] / theirs_s
    figures.same_predictions = float(np.mean(ours == theirs)) if len(ours) else 1.0

    labelled = labelled_set(silver)
    figures.labelled = len(labelled.postings)
    postings, labels = labelled.postings, labelled.labels
    if figures.n > GRIDSEARCH_UP_TO:
        # What knn_classifier selects on at this size: its stratified sample.
        sample = selection_sample(labels)
        postings, labels = postings.iloc[sample], labels.iloc[sample]
    figures.selection_postings = len(labels)
    started = time.perf_counter()
    selection = select_knn(postings, labels, SEED_GRID)
    figures.selection_ours_s = time.perf_counter() - started
    if figures.n <= GRIDSEARCH_UP_TO:
        started = time.perf_counter()
        search = gridsearch_seed(postings, labels)
        figures.selection_gridsearch_s = time.perf_counter() - started
        figures.same_choice = search.best_params_["knn__n_neighbors"] == selection.best.k
    print(f"[{figures.n:,}] imputation {figures.impute_ours_per_s:,.0f}/s vs scikit-learn "
          f"{figures.impute_sklearn_per_s:,.0f}/s; selection {figures.selection_ours_s:.1f} s vs "
          f"GridSearchCV {figures.selection_gridsearch_s}", flush=True)


def best_of(repeats: int, function, *args):
    """The shortest of `repeats` timings (small inputs are noisy) and the result."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function(*args)
        timings.append(time.perf_counter() - started)
    return min(timings), result


def _steps(run: RunFigures) -> str:
    return " / ".join(f"{run.step_seconds.get(step, float('nan')):.1f}" for step in STEPS)


def _step_cell(run: RunFigures, step: str) -> str:
    if step not in run.step_seconds:
        return "–"
    cell = f"{run.step_seconds[step]:.1f} s"
    if step in run.step_peak_rss_gib:
        low, high = run.step_load[step]
        cell += f"; {run.step_peak_rss_gib[step]:.2f} GiB; load {low:.1f}–{high:.1f}"
    return cell


def report(results: list[SizeFigures], seconds: float, folder: str,
           unlabelled_share: float = UNLABELLED_SHARE) -> str:
    versions = ", ".join(
        f"{name} {version(name)}"
        for name in ("dagster", "duckdb", "scikit-learn", "numpy", "scipy", "mlflow", "pandas")
    )
    lines = [
        START_MARK,
        "## Scale: the whole graph at "
        + ", ".join(f"{r.n:,}" for r in results) + " postings (`make bench`)",
        "",
        f"Written by `make bench` on {date.today()} ({seconds / 60:.1f} min in all): "
        f"{os.cpu_count()} cores, {_memory_gib():.0f} GiB, Python {platform.python_version()}; "
        f"{versions}. Postings replayed from {folder} (distinct texts drawn from the "
        f"shared postings' sentences, 1,100 a day up to an hour before each size's full "
        f"run, {unlabelled_share:.0%} without a category at "
        "random; see `benchmarks/replay.py`), served 20 a page from a loopback API; every "
        "run is `python -m careerpulse_assets.ops.run` in a fresh child process (peak RSS is the "
        "child's), after `sync` (what earlier runs wrote is on disk before a run starts).",
        "",
        "| postings | labelled (learnable) | to impute | full run (s) | peak RSS (GiB) | "
        "steps (s): bronze / silver / classifier / imputed / gold / forecast | checks (s) | "
        "incremental run (s) | incremental steps (s) | incremental RSS (GiB) | "
        "next incremental run (s) | next incremental steps (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.n:,} | {r.labelled:,} | {r.to_impute:,} | {r.full.seconds:.1f}"
            f"{'' if r.full.exit_code == 0 else ' (exit ' + str(r.full.exit_code) + ')'} | "
            f"{r.full.peak_rss_gib:.2f} | {_steps(r.full)} | {r.full.checks_seconds:.1f} | "
            f"{r.incremental.seconds:.1f}"
            f"{'' if r.incremental.exit_code == 0 else ' (exit ' + str(r.incremental.exit_code) + ')'} | "
            f"{_steps(r.incremental)} | {r.incremental.peak_rss_gib:.2f} | "
            f"{r.next_incremental.seconds:.1f}"
            f"{'' if r.next_incremental.exit_code == 0 else ' (exit ' + str(r.next_incremental.exit_code) + ')'} | "
            f"{_steps(r.next_incremental)} |"
        )
    loads = "; ".join(f"{r.n:,}: full run {r.full.load[0]:.1f}–{r.full.load[1]:.1f}, incremental "
                      f"{r.incremental.load[0]:.1f}–{r.incremental.load[1]:.1f}, next "
                      f"{r.next_incremental.load[0]:.1f}–{r.next_incremental.load[1]:.1f}"
                      for r in results)
    lines += ["", f"Load average (1 min) at the start and end of each run: {loads}."]
    lines += ["", "Each step: seconds; peak RSS of the run's process during the step (GiB, "
              f"sampled every {SAMPLE_SECONDS} s); the machine's 1-minute load during it "
              "(lowest–highest; 2 cores: a load of 4 about halves a step's speed).", "",
              "| postings | run | " + " | ".join(STEPS) + " |",
              "|---|---|" + "---|" * len(STEPS)]
    for r in results:
        for name, run in (("full", r.full), ("incremental", r.incremental),
                          ("next incremental", r.next_incremental)):
            lines.append(f"| {r.n:,} | {name} | "
                         + " | ".join(_step_cell(run, step) for step in STEPS) + " |")
    lines += [
        "",
        "| postings | TF-IDF of postings to impute (postings/s) | imputation predict, ours "
        "(postings/s) | scikit-learn KNeighborsClassifier.predict (postings/s) | ratio | same "
        "predictions | selection on (postings) | selection, one query per fold (s) | "
        "GridSearchCV (s) | speed-up | same k |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        grid = r.selection_gridsearch_s
        lines.append(
            f"| {r.n:,} | {r.vectorise_per_s:,.0f} | {r.impute_ours_per_s:,.0f} | "
            f"{r.impute_sklearn_per_s:,.0f} | "
            f"{r.impute_ours_per_s / r.impute_sklearn_per_s:.2f}x | {r.same_predictions:.1%} | "
            f"{r.selection_postings:,} | {r.selection_ours_s:.1f} | {'–' if grid is None else f'{grid:.1f}'} | "
            f"{'–' if grid is None else f'{grid / r.selection_ours_s:.1f}x'} | "
            f"{'–' if r.same_choice is None else r.same_choice} |"
        )
    lines += [
        "",
        f"Selection is timed on the seed's grid (k only); up to {GRIDSEARCH_UP_TO:,} postings on "
        "every learnable posting against GridSearchCV on the same folds, above that on the "
        "stratified sample knn_classifier selects on (GridSearchCV would take most of an hour). "
        f"Above {COMPARED_UP_TO:,} postings without a category, both predict the same random "
        f"{COMPARED_UP_TO:,} of them. "
        "Imputation: the fitted model's KNN predict on the TF-IDF of the postings without a "
        "category (the transform, the same for both, in its own column) against "
        "KNeighborsClassifier(metric=\"cosine\", "
        "algorithm=\"brute\") fitted on the model's own training matrix and labels.",
    ]
    lines += ["", "Goals on this machine:", ""] + goals(results) + ["", END_MARK]
    return "\n".join(lines)


# The whole graph's goals at a size: minutes, peak GiB, and the classifier step's minutes (None:
# no goal). 20,000: the first scale issue's; 400,000 (the live API's size): issue 29's.
FULL_GRAPH_GOALS = {20_000: (10.0, 4.0, None), 400_000: (20.0, 6.0, 8.0)}


def goals(results: list[SizeFigures]) -> list[str]:
    by_n = {r.n: r for r in results}
    lines = []
    for n, (minutes, gib, classifier_minutes) in FULL_GRAPH_GOALS.items():
        if n not in by_n:
            continue
        full = by_n[n].full
        met = full.seconds <= minutes * 60 and full.peak_rss_gib <= gib and full.exit_code == 0
        line = (f"- full graph at {n:,} postings: {full.seconds / 60:.1f} min (goal ≤ {minutes:g} "
                f"min), peak RSS {full.peak_rss_gib:.2f} GiB (goal ≤ {gib:g} GiB)")
        if classifier_minutes is not None:
            step = full.step_seconds.get("knn_classifier", float("nan")) / 60
            met = met and step <= classifier_minutes
            line += f", knn_classifier {step:.1f} min (goal ≤ {classifier_minutes:g} min)"
        lines.append(f"{line}: {'met' if met else 'NOT met'}")
    largest, smallest = results[-1], results[0]
    for name, run_of in (("the first incremental one-page run after the full run",
                          lambda r: r.incremental),
                         ("the next one", lambda r: r.next_incremental)):
        ratio = run_of(largest).seconds / run_of(smallest).seconds
        lines.append(
            f"- {name}, at {largest.n:,} vs {smallest.n:,}: {run_of(largest).seconds:.1f} s / "
            f"{run_of(smallest).seconds:.1f} s = {ratio:.2f}x (goal ≤ 2x): "
            f"{'met' if ratio <= 2 else 'NOT met'}"
        )
    if 20_000 in by_n and by_n[20_000].selection_gridsearch_s:
        r = by_n[20_000]
        speedup = r.selection_gridsearch_s / r.selection_ours_s
        lines.append(
            f"- model selection at 20,000: {speedup:.1f}x faster than GridSearchCV (goal ≥ 3x), "
            f"same k: {r.same_choice}: {'met' if speedup >= 3 and r.same_choice else 'NOT met'}"
        )
    worst = min(results, key=lambda r: r.impute_ours_per_s / r.impute_sklearn_per_s)
    lines.append(
        f"- imputation throughput vs scikit-learn's predict: lowest ratio "
        f"{worst.impute_ours_per_s / worst.impute_sklearn_per_s:.2f}x (at {worst.n:,}; goal ≥ 1x): "
        f"{'met' if worst.impute_ours_per_s >= worst.impute_sklearn_per_s else 'NOT met'}"
    )
    return lines


def _memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3


def write_section(text: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    if START_MARK in current and END_MARK in current:
        before, rest = current.split(START_MARK, 1)
        after = rest.split(END_MARK, 1)[1]
        current = before + text + after
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(current)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the shared postings, e.g. ../shared/data/muse")
    parser.add_argument("sizes", nargs="*", type=int, default=[2_000, 20_000, 100_000])
    parser.add_argument("--unlabelled-share", type=float, default=UNLABELLED_SHARE,
                        help="the share of postings served without a category (at random)")
    parser.add_argument("--profile", type=Path, help="save pyinstrument reports here")
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md")
    parser.add_argument("--write", type=Path, default=ROOT / "BENCHMARKS.md",
                        help="the file whose `make bench` section is rewritten (BENCHMARKS.md)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sources = replay_sources(shared_items(args.folder))
    results = [measure(sources, n, args.profile, args.unlabelled_share) for n in args.sizes]
    text = report(results, time.perf_counter() - started, args.folder, args.unlabelled_share)
    print(text)
    if not args.no_write:
        write_section(text, args.write)
        print(f"written to {args.write}")


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
