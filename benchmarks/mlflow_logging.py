"""What recording a training in MLflow costs, against the training itself.

    .venv/bin/python -m benchmarks.mlflow_logging ../shared/data/muse [--n 100000]

On the shared postings (or `--n` postings replayed from them, `benchmarks/replay.py`), silver is
built as the pipeline builds it, the classifier is trained as `knn_classifier` trains it
(`classification.training.train`, the default grid), and the training is recorded by `classification.registry.log_training`
(what the asset calls) in a fresh SQLite tracking store: its parameters, metrics, tables and
pictures, the model with its input example and signature, and the registered version. Prints
one markdown row: seconds of training, of logging and their ratio, the bytes of the run's
artifacts and of the model file, the model file's zip entries, and the seconds to load the
registered version back (`classification.registry.load_model`, what `model_store` falls back to).

The goal (issue 21): logging costs at most a tenth of the training step.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import mlflow
import pandas as pd

from careerpulse_assets.classification.serving import calibrate_model
from careerpulse_assets.classification.decisions import GateBars, gate_verdict
from careerpulse_assets.classification.evaluation import labelled_set
from careerpulse_assets.classification.model_selection import KnnGrid
from careerpulse_assets.classification.training import evaluation_of, train
from careerpulse_assets.ops.settings import DEFAULT_MIN_ACCURACY, DEFAULT_MIN_MACRO_F1
from careerpulse_assets.classification.registry import load_model, log_training

from .classifier_comparison import silver_from_items
from .replay import replay, shared_items


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def measure(items: list[dict]) -> dict:
    silver = silver_from_items(items)
    labelled = labelled_set(silver)
    started = time.perf_counter()
    training = train(labelled, KnnGrid())
    train_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
        experiment = mlflow.create_experiment("careerpulse", (home / "mlartifacts").as_uri())
        # The calibration and gate knn_classifier logs with the training, for the default bars.
        calibration = calibrate_model(training.challenger.oof)
        gate = gate_verdict(evaluation_of(training.challenger, "", labelled).estimate,
                            GateBars(DEFAULT_MIN_ACCURACY, DEFAULT_MIN_MACRO_F1))
        with mlflow.start_run(experiment_id=experiment):
            started = time.perf_counter()
            version, _, _ = log_training(training, labelled, "benchmark", "benchmark", 0.1,
                                         calibration, gate)
            log_seconds = time.perf_counter() - started
        model_files = [path for path in (home / "mlartifacts").rglob("model.*")
                       if path.suffix in (".skops", ".pkl")]
        (model_file,) = model_files
        entries = (len(zipfile.ZipFile(model_file).namelist())
                   if zipfile.is_zipfile(model_file) else 1)
        started = time.perf_counter()
        load_model(version)
        load_seconds = time.perf_counter() - started
        return {
            "postings": len(silver),
            "labelled": len(labelled.postings),
            "train_s": train_seconds,
            "log_s": log_seconds,
            "artifacts_mb": folder_bytes(home / "mlartifacts") / 1e6,
            "model_mb": model_file.stat().st_size / 1e6,
            "entries": entries,
            "load_s": load_seconds,
        }


def row(label: str, figures: dict) -> str:
    return (f"| {label} | {figures['postings']:,} | {figures['labelled']:,} | "
            f"{figures['train_s']:.1f} | {figures['log_s']:.1f} | "
            f"{figures['log_s'] / figures['train_s']:.2f} | {figures['artifacts_mb']:.1f} | "
            f"{figures['model_mb']:.1f} | {figures['entries']:,} | {figures['load_s']:.2f} |")


HEADER = ("| code | postings | labelled | training (s) | MLflow logging (s) | logging / training "
          "| artifacts (MB) | model file (MB) | zip entries | load back (s) |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the shared Muse postings (../shared/data/muse)")
    parser.add_argument("--n", type=int, default=None, help="replay this many postings")
    parser.add_argument("--label", default="this checkout", help="the table's first column")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    items = shared_items(args.folder)
    if args.n:
        items = replay(items, args.n)
    figures = measure(items)
    print(HEADER)
    print(row(args.label, figures))


if __name__ == "__main__":
    main()
