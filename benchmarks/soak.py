"""Soak: many ingestion runs against a hostile loopback API, then count what was lost.

    .venv/bin/python -m benchmarks.soak [--cycles N] [--seed S] [--shared ../shared/data/muse]

One CAREERPULSE_HOME and one Dagster instance (the repository's dagster.yaml, as `make` writes
it) live through every cycle. A cycle grows the listing by new postings (replayed from the shared ones, or the
tests' synthetic ones when the shared data is absent) and a few poisoned items of random kinds,
arms random faults on random pages (5xx, 403 rate limits, dropped connections, bodies cut short
once or for good, slow answers), then runs `python -m careerpulse_assets.ops.run
careerpulse_ingestion` (what `make run JOB=careerpulse_ingestion` runs), and with probability
`--kill-share` SIGKILLs it at a random moment. The server echoes every request (API key
included) into error bodies, cut-short bodies and the first item of each page.

After the cycles, one run without faults or kills (a walk cut short is finished by the next run,
so the last cycle's gaps need it), then one full crawl (`full_crawl: true`): a poisoned item
dated 1970 sorts to the end of a newest-first listing, where incremental walks that stop at the
first stored page never go, as in the real API. The checks:

- every valid posting in bronze and silver exactly once (none lost, none doubled);
- every poisoned item in bronze.bronze_quarantine, none in bronze.bronze_postings;
- no run left in progress and no slot of the DuckDB pool held;
- the key nowhere: not in any file under CAREERPULSE_HOME (DuckDB, the Dagster instance, logs),
  not in anything a run printed.

Prints the figures; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from careerpulse_assets_tests.muse_fixtures import synthetic_postings
from careerpulse_assets_tests.muse_server import serve_muse
from careerpulse_assets_tests.servers import REPO, careerpulse_env

from .replay import replay, shared_items

KEY = "s0ak-k3y-that-must-never-be-stored"
FAULTS = ["500", "503", "rate_limited", "drop", "truncated once", "truncated for good", "slow"]
POISONS = ["huge id", "date 9999", "date 1970", "contents not a string", "NaN",
           "lone surrogate", "nested 40 deep", "company name an object", "no id"]


def poison(kind: str, template: dict, posting_id: int, published: str) -> dict:
    """A poisoned copy of `template`; its title carries a token to find it in the quarantine."""
    item = dict(template, id=posting_id, name=f"soak-poison-{posting_id}",
                publication_date=published)
    if kind == "huge id":
        item["id"] = 10**20 + posting_id
    elif kind == "date 9999":
        item["publication_date"] = "9999-12-31T00:00:00Z"
    elif kind == "date 1970":
        item["publication_date"] = "1970-01-01T00:00:00Z"
    elif kind == "contents not a string":
        item["contents"] = ["a", "list"]
    elif kind == "NaN":
        item["tags"] = [float("nan")]
    elif kind == "lone surrogate":
        item["name"] += " \ud800"
    elif kind == "nested 40 deep":
        nested: list = []
        for _ in range(40):
            nested = [nested]
        item["refs"] = nested
    elif kind == "company name an object":
        item["company"] = {"name": {"oops": True}}
    elif kind == "no id":
        del item["id"]
    return item


def newer_batch(base: list[dict], n: int, first_id: int, newest: datetime, copy: int) -> list[dict]:
    batch = replay(base, n, first_id=first_id, first_copy=copy) if base else synthetic_postings(
        per_category=n // 3 + 1, unlabelled=0, first_id=first_id, seed=copy)[:n]
    for offset, item in enumerate(batch):
        item["publication_date"] = (newest + timedelta(minutes=offset + 1)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    return batch


def run_ingestion(env: dict, kill_after: float | None) -> tuple[str, bool]:
    """Run the ingestion job; kill it after `kill_after` seconds if given. (output, killed)"""
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "careerpulse_assets.ops.run", "careerpulse_ingestion"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )
        try:
            child.wait(timeout=kill_after if kill_after is not None else 900)
            killed = False
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL if kill_after is not None else signal.SIGTERM)
            child.wait()
            killed = kill_after is not None
        out.seek(0)
        return out.read(), killed


def stored_ids(home: Path) -> set[int]:
    with duckdb.connect(str(home / "careerpulse.duckdb"), read_only=True) as connection:
        return {pid for (pid,) in connection.execute(
            "SELECT DISTINCT posting_id FROM bronze.bronze_postings").fetchall()}


def full_crawl(home: Path, base_url: str, env: dict) -> None:
    """bronze (full_crawl: true) and silver in this process, on the soak's Dagster instance."""
    from dagster import DagsterInstance, materialize

    from careerpulse_assets.assets.bronze import bronze_postings
    from careerpulse_assets.assets.silver import silver_postings
    from careerpulse_assets.definitions import build_resources
    from careerpulse_assets.ops.settings import Settings

    os.environ["CAREERPULSE_MUSE_API_KEY"] = KEY  # the resource reads it as an EnvVar
    settings = Settings(home=home, muse_base_url=base_url, muse_api_key=KEY)
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        result = materialize(
            [bronze_postings, silver_postings], resources=build_resources(settings),
            instance=instance, raise_on_error=False,
            run_config={"ops": {"bronze_postings": {"config": {"full_crawl": True}}}},
        )
    assert result.success, "the full crawl failed"


def files_holding(folder: Path, secret: bytes) -> list[str]:
    return [str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and secret in p.read_bytes()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--kill-share", type=float, default=0.35)
    parser.add_argument("--shared", default=str(REPO.parent / "shared" / "data" / "muse"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    base = shared_items(args.shared) if Path(args.shared).is_dir() else []
    newest = datetime(2026, 7, 1, tzinfo=timezone.utc)
    listing = newer_batch(base, 300, 70_000_000, newest - timedelta(days=30), 0)
    newest = max(datetime.fromisoformat(i["publication_date"]) for i in listing)
    poisons: list[dict] = []
    # What finds each poison in the quarantine's raw text: its title token, or for an item too
    # deep to store, the id the quarantine names.
    poison_marks: list[tuple[str, str]] = []
    faults, kills, outputs, exit_codes = Counter(), 0, [], Counter()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder, serve_muse(listing) as (stub, base_url):
        home = Path(folder) / "home"
        env = careerpulse_env(home, CAREERPULSE_MUSE_BASE_URL=base_url,
                              CAREERPULSE_MUSE_API_KEY=KEY)
        stub.echo_url, stub.reset_seconds, stub.slow_seconds = True, 1, 1.0
        next_id = 80_000_000
        for cycle in range(args.cycles):
            batch = newer_batch(base, rng.randint(10, 60), next_id, newest, cycle + 1)
            next_id += 1000
            newest = max(datetime.fromisoformat(i["publication_date"]) for i in batch)
            for kind in rng.sample(POISONS, rng.randint(1, 3)):
                published = (newest + timedelta(seconds=rng.randint(1, 59))).strftime(
                    "%Y-%m-%dT%H:%M:%SZ")
                poisons.append(poison(kind, batch[0], next_id, published))
                poison_marks.append((kind, f"id {next_id}" if kind == "nested 40 deep"
                                     else f"soak-poison-{next_id}"))
                next_id += 1
                batch.append(poisons[-1])
            stub.items = stub.items + batch
            pages = (len(stub.items) + 19) // 20
            stub.faults = {}
            for _ in range(rng.randint(1, 4)):
                fault = rng.choice(FAULTS)
                faults[fault] += 1
                page = rng.randrange(0, min(pages, 6))
                stub.faults.setdefault(page, []).extend(
                    {"truncated once": ["truncated"], "truncated for good": ["truncated"] * 3}.get(
                        fault, [int(fault)] if fault.isdigit() else [fault])
                )
            kill_after = rng.uniform(1.0, 12.0) if rng.random() < args.kill_share else None
            output, killed = run_ingestion(env, kill_after)
            kills += killed
            outputs.append(output)
            if not killed:
                exit_codes["ok" if "succeeded" in output else "failed"] += 1
            print(f"cycle {cycle + 1:>3}: {len(stub.items):>5} items listed, "
                  f"{'killed' if killed else ('ok' if 'succeeded' in output else 'FAILED')}",
                  flush=True)
        stub.faults = {}
        final_output, _ = run_ingestion(env, None)
        outputs.append(final_output)
        listed = list(stub.items)
        before_full_crawl = stored_ids(home)
        full_crawl(home, base_url, env)

        valid_ids = {item["id"] for item in listed if item not in poisons}
        with duckdb.connect(str(home / "careerpulse.duckdb"), read_only=True) as connection:
            bronze = connection.execute(
                "SELECT posting_id, count(*) FROM bronze.bronze_postings GROUP BY posting_id"
            ).fetchall()
            silver = connection.execute(
                "SELECT posting_id FROM silver.silver_postings").fetchall()
            quarantine = connection.execute(
                "SELECT reason, coalesce(raw, '') FROM bronze.bronze_quarantine").fetchall()
        from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

        with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            in_progress = instance.get_runs(RunsFilter(statuses=[
                DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.QUEUED]))
            held = instance.event_log_storage.get_concurrency_info("careerpulse_duckdb")
            all_runs = len(instance.get_runs())
        leaked_files = files_holding(home, KEY.encode())
        printed_key = sum(KEY in output for output in outputs)

    bronze_ids = {pid for pid, _ in bronze}
    doubled = [pid for pid, n in bronze if n > 1]
    lost = valid_ids - bronze_ids
    silver_ids = [pid for (pid,) in silver]
    raw_text = "\n".join(raw for _, raw in quarantine)
    unquarantined = [mark for _, mark in poison_marks if mark not in raw_text]
    poison_ids = {p["id"] for p in poisons if "id" in p}
    poison_in_bronze = sorted(bronze_ids & poison_ids)
    reasons = Counter(re.sub(r"\d+", "N", reason.split(":")[0])[:60] for reason, _ in quarantine)
    checks = {
        "every valid posting in bronze": not lost,
        "none doubled in bronze": not doubled,
        "silver holds each valid posting once": sorted(silver_ids) == sorted(valid_ids),
        "every poisoned item quarantined": not unquarantined,
        "no poisoned item in bronze": not poison_in_bronze,
        "no run left in progress": not in_progress,
        "no pool slot held": not held.claimed_slots,
        "the key in no file": not leaked_files,
        "the key in no output": not printed_key,
    }
    print()
    print(f"cycles {args.cycles} (seed {args.seed}) + 1 clean run, {all_runs} Dagster runs, "
          f"{time.monotonic() - started:.0f} s")
    print(f"listing: {len(listed)} items, {len(valid_ids)} valid postings, {len(poisons)} poisoned "
          f"({', '.join(f'{k} {v}' for k, v in sorted(Counter(k for k, _ in poison_marks).items()))})")
    print(f"faults armed: {sum(faults.values())} ({', '.join(f'{k} {v}' for k, v in sorted(faults.items()))})")
    print(f"runs killed: {kills}; runs not killed: {dict(exit_codes)}")
    print(f"before the full crawl: {len(valid_ids - before_full_crawl)} valid postings not yet "
          f"stored (dated before the newest stored page)")
    print(f"quarantine rows: {len(quarantine)}; reasons: "
          + "; ".join(f"{k} ×{v}" for k, v in reasons.most_common()))
    print(f"lost: {len(lost)}, doubled: {len(doubled)}, poisons not quarantined: "
          f"{len(unquarantined)}, runs in progress: {len(in_progress)}, slots held: "
          f"{len(held.claimed_slots)}, files with the key: {leaked_files or 0}, outputs with "
          f"the key: {printed_key}")
    for name, ok in checks.items():
        print(f"  {'ok    ' if ok else 'FAILED'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
