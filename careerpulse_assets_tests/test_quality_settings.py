"""The quality bars and the coverage warning as settings, and `make run CONFIG=...`."""

import subprocess
import sys

import pytest

from careerpulse_assets.classification.decisions import GateBars
from careerpulse_assets.definitions import build_definitions
from careerpulse_assets.ops.run import LOGGERS, run_config_from
from careerpulse_assets.ops.settings import Settings, SettingsError
from careerpulse_assets.resources import QualityBars

from .graph import query
from .muse_fixtures import synthetic_postings, write_archive
from .servers import REPO, careerpulse_env


def test_the_bars_are_settings_with_documented_defaults(tmp_path):
    default = Settings.from_env({"CAREERPULSE_HOME": str(tmp_path)})
    assert (default.min_accuracy, default.min_macro_f1, default.min_precision,
            default.min_coverage, default.max_count_error) == (0.75, 0.70, 0.90, 0.80, 0.25)
    chosen = Settings.from_env({"CAREERPULSE_HOME": str(tmp_path), "CAREERPULSE_MIN_ACCURACY": "0.85",
                                "CAREERPULSE_MIN_MACRO_F1": " 0 ", "CAREERPULSE_MIN_COVERAGE": "0.5",
                                "CAREERPULSE_MIN_PRECISION": "0.8",
                                "CAREERPULSE_MAX_COUNT_ERROR": "1.5"})
    bars = build_definitions(chosen).resources["quality_bars"]
    assert (bars.min_accuracy, bars.min_macro_f1, bars.min_coverage, bars.min_precision,
            bars.max_count_error) == (0.85, 0.0, 0.5, 0.8, 1.5)
    with pytest.raises(SettingsError, match="CAREERPULSE_MAX_COUNT_ERROR must be a number from "
                                            "0 to 2, got '3'"):
        Settings.from_env({"CAREERPULSE_MAX_COUNT_ERROR": "3"})
    for raw in ("high", "1.5", "-0.1"):
        with pytest.raises(SettingsError, match=f"CAREERPULSE_MIN_ACCURACY must be a number from 0 "
                                                f"to 1, got '{raw}'"):
            Settings.from_env({"CAREERPULSE_MIN_ACCURACY": raw})


def test_a_bar_in_the_run_config_wins_over_the_setting_for_that_run():
    settings = QualityBars(min_accuracy=0.9, min_macro_f1=0.7)
    assert settings.for_run({}) == GateBars(0.9, 0.7)
    config = {"ops": {"knn_classifier_knn_holdout_macro_f1": {"config": {"min_macro_f1": 0.5}},
                      "knn_classifier_knn_holdout_accuracy": {"config": {"min_accuracy": None}}}}
    assert settings.for_run(config) == GateBars(0.9, 0.5)


def test_a_run_config_file_is_read_with_what_is_wrong_said(tmp_path):
    assert run_config_from(None) == {"loggers": LOGGERS}
    good = tmp_path / "bars.yaml"
    good.write_text("ops:\n  knn_classifier_knn_holdout_accuracy:\n    config: {min_accuracy: 0.8}\n")
    assert run_config_from(str(good))["ops"]["knn_classifier_knn_holdout_accuracy"] == {
        "config": {"min_accuracy": 0.8}}
    (tmp_path / "list.yaml").write_text("- ops\n")
    (tmp_path / "bad.yaml").write_text("ops: [\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        run_config_from(str(tmp_path / "list.yaml"))
    with pytest.raises(ValueError, match="is not YAML"):
        run_config_from(str(tmp_path / "bad.yaml"))
    with pytest.raises(ValueError, match="cannot read the run config"):
        run_config_from(str(tmp_path / "missing.yaml"))


@pytest.mark.slow
def test_make_run_takes_a_run_config_file(tmp_path):
    archive = write_archive(tmp_path / "archive", synthetic_postings(shuffle_labels=True))
    home = tmp_path / "home"
    env = careerpulse_env(home, CAREERPULSE_MUSE_ARCHIVE=str(archive))

    def make_run(config_text: str) -> subprocess.CompletedProcess:
        config = tmp_path / "run.yaml"
        config.write_text(config_text)
        return subprocess.run(["make", "--no-print-directory", "run", f"CONFIG={config}",
                               f"CAREERPULSE_HOME={home}"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)

    typo = make_run("ops:\n  knn_classifier:\n    config: {kz: [3]}\n")
    assert typo.returncode != 0
    assert "careerpulse: the run config" in typo.stderr and "kz" in typo.stderr
    # A model of shuffled labels meets no bar; with the bars at 0 in the file it passes them.
    done = make_run("ops:\n  knn_classifier_knn_holdout_accuracy:\n    config: {min_accuracy: 0}\n"
                    "  knn_classifier_knn_holdout_macro_f1:\n    config: {min_macro_f1: 0}\n")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "knn_holdout_accuracy FAILED" not in done.stdout  # only failed checks are listed
    assert "(bars: accuracy ≥ 0.00 and macro-F1 ≥ 0.00)" in done.stdout
    # Per posting, the precision bar still holds: a model of shuffled labels writes nothing,
    # and gold counts every posting all the same.
    settings = Settings(home=home)
    assert query(settings, "SELECT count(*) FILTER (WHERE is_imputed) AS i FROM "
                           "silver.imputed_silver")["i"][0] == 0
    assert query(settings, "SELECT round(sum(estimated_postings)) AS n FROM "
                           "gold.gold_daily_counts")["n"][0] == query(
        settings, "SELECT count(*) AS n FROM silver.imputed_silver")["n"][0]
