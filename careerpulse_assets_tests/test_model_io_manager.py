"""The classifier handed between steps: each run loads its own run's, whatever runs overlap."""

import pickle

from careerpulse_assets.resources import input_path, record_latest_run, run_output_path


def write(base, asset, run_id, value):
    path = base / run_output_path(asset, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(value))
    record_latest_run(base, asset, run_id, keep=3)


def load(base, asset, run_id):
    return pickle.loads((base / input_path(base, asset, run_id)).read_bytes())


def test_overlapping_runs_each_load_their_own_output(tmp_path):
    # A reviewer's finding: run A trained v4, run B (started a second later) reused v3 and wrote
    # it after A; A's imputed_silver then imputed with B's v3.
    write(tmp_path, "knn_classifier", "run-a", "v4")
    write(tmp_path, "knn_classifier", "run-b", "v3")
    assert load(tmp_path, "knn_classifier", "run-a") == "v4"
    assert load(tmp_path, "knn_classifier", "run-b") == "v3"
    # A run that did not make one (imputed_silver materialised alone) loads the latest.
    assert load(tmp_path, "knn_classifier", "run-c") == "v3"
    assert load(tmp_path, "knn_classifier", None) == "v3"


def test_a_store_from_before_is_read_and_old_runs_are_pruned(tmp_path):
    (tmp_path / "knn_classifier").write_bytes(pickle.dumps("v1"))  # FilesystemIOManager's file
    assert load(tmp_path, "knn_classifier", "run-x") == "v1"
    for n in range(5):
        write(tmp_path, "knn_classifier", f"run-{n}", f"v{n}")
    kept = sorted(p.name for p in (tmp_path / "knn_classifier.runs").iterdir())
    assert kept == ["run-2", "run-3", "run-4"]
    assert load(tmp_path, "knn_classifier", "run-0") == "v4"  # its own is gone: the latest
