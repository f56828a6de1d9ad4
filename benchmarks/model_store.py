"""Loading a fitted classifier: from MLflow's registry (skops), or from a pickle of it.

    .venv/bin/python -m benchmarks.model_store ../shared/data/muse --n 2000 100000

For each size, `--n` postings are replayed from the shared ones (`benchmarks/replay.py`), silver
is built as the pipeline builds it, and the deployed model is fitted on every labelled posting
with the largest representation the grid has (title×2 + description, word pairs: the biggest
vocabulary). It is registered as `knn_classifier` registers it (`classification/registry.py`:
`mlflow.sklearn.log_model` with skops and the trusted types) in a fresh SQLite store, and pickled
as the old `model_store` did. Each is loaded back `--repeats` times, in a fresh process each time
(no warm caches; the libraries imported before the clock starts, as a run has them); the median seconds are printed as a markdown row.

Issue 28 asked whether a second copy of the model beside the registry earns its keep.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import mlflow

from careerpulse_assets.classification.evaluation import labelled_set
from careerpulse_assets.classification.model_selection import KnnParams, fit_knn
from careerpulse_assets.classification.registry import REGISTERED_MODEL_NAME, SKOPS_TRUSTED_TYPES

from .classifier_comparison import silver_from_items
from .replay import replay, shared_items

LOAD = """
import pickle, sys, time, warnings
warnings.filterwarnings("ignore")
import mlflow, mlflow.sklearn  # imported before the clock starts, as a run has them
import careerpulse_assets.classification.knn  # the model's classes
mlflow.set_tracking_uri(sys.argv[2])
started = time.perf_counter()
if sys.argv[1] == "registry":
    mlflow.sklearn.load_model(sys.argv[3])
else:
    with open(sys.argv[3], "rb") as stored:
        pickle.load(stored)
print(time.perf_counter() - started)
"""

def load_seconds(kind: str, uri: str, target: str, repeats: int) -> float:
    times = [float(subprocess.run([sys.executable, "-c", LOAD, kind, uri, target], check=True,
                                  capture_output=True, text=True).stdout.strip().splitlines()[-1])
             for _ in range(repeats)]
    return statistics.median(times)


def measure(items: list[dict], repeats: int) -> dict:
    labelled = labelled_set(silver_from_items(items))
    model = fit_knn(labelled.postings, labelled.labels, KnnParams(title_weight=2.0, ngrams=2))
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        uri = f"sqlite:///{home / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.create_experiment("careerpulse", (home / "mlartifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.sklearn.log_model(model, name="model",
                                            registered_model_name=REGISTERED_MODEL_NAME,
                                            skops_trusted_types=SKOPS_TRUSTED_TYPES)
        version = f"models:/{REGISTERED_MODEL_NAME}/{info.registered_model_version}"
        pickled = home / "model.pkl"
        pickled.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
        return {
            "postings": len(items), "labelled": len(labelled.postings),
            "registry_s": load_seconds("registry", uri, version, repeats),
            "pickle_s": load_seconds("pickle", uri, str(pickled), repeats),
            "pickle_mb": pickled.stat().st_size / 1e6,
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the shared Muse postings (../shared/data/muse)")
    parser.add_argument("--n", type=int, nargs="+", default=[2000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    items = shared_items(args.folder)
    print("| postings | labelled | registry load (s) | pickle load (s) | registry / pickle "
          "| pickle (MB) |\n|---:|---:|---:|---:|---:|---:|")
    for n in args.n:
        f = measure(replay(items, n), args.repeats)
        print(f"| {f['postings']:,} | {f['labelled']:,} | {f['registry_s']:.2f} | "
              f"{f['pickle_s']:.2f} | {f['registry_s'] / f['pickle_s']:.1f}x | "
              f"{f['pickle_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
