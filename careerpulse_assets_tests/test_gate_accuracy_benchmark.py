"""benchmarks/gate_accuracy.py scores what the imputation policy writes as imputed_silver writes
it; on main it imported helpers of the first pass that no longer existed and crashed at once."""

import numpy as np
from sklearn.metrics import f1_score

from benchmarks.classifier_comparison import silver_from_items
from benchmarks.gate_accuracy import selective_seed, written_on
from careerpulse_assets.core.decisions import Bars
from careerpulse_assets.core.evaluation import labelled_set
from careerpulse_assets.core.knn import model_input
from careerpulse_assets.core.selection import KnnGrid
from careerpulse_assets.core.training import train

from .muse_fixtures import imbalanced_postings

COUNTS = {"Software Engineering": 60, "Healthcare": 40, "Sales": 30}


def silver():
    return silver_from_items(imbalanced_postings(COUNTS, unlabelled=10)).reset_index(drop=True)


def test_written_figures_equal_scikit_learn_on_the_written_postings():
    postings = silver()
    labelled = postings[postings["category"].notna()]
    model = train(labelled_set(labelled.iloc[::2]), KnnGrid()).model
    truth = labelled.iloc[1::2]
    probabilities = model.predict_proba(model_input(truth))
    predicted = model.classes_[probabilities.argmax(axis=1)]
    threshold = float(np.median(probabilities.max(axis=1)))
    served = ["Software Engineering", "Sales"]
    mask = (probabilities.max(axis=1) >= threshold) & np.isin(predicted, served)
    y = truth["category"].to_numpy(dtype=object)
    assert 0 < mask.sum() < len(truth)

    written = written_on(truth, model, threshold, served, ["Software Engineering"])

    assert written.coverage == mask.mean()
    assert written.accuracy == (y[mask] == predicted[mask]).mean()
    assert written.macro_f1 == f1_score(y[mask], predicted[mask],
                                        labels=["Software Engineering"], average="macro")
    assert written.f1["Sales"] == f1_score(y[mask], predicted[mask], labels=["Sales"],
                                           average="macro")
    assert written.every_posting_accuracy == (y == predicted).mean()
    # Nothing written without a threshold.
    assert written_on(truth, model, None, served, []).coverage == 0


def test_a_seed_reports_the_policy_and_its_truth():
    row = selective_seed(silver(), seed=0, bars=Bars(0.9, 0.7))

    assert row["hidden"] == round(sum(COUNTS.values()) / 4)
    assert set(row["served"]) <= set(row["learned"]) == set(COUNTS)
    assert set(row["left out"]) == set(row["judged"]) - set(row["served"])
    for name in ("coverage", "accuracy"):
        assert 0 <= row[f"{name} (true)"] <= 1
        assert 0 <= row[f"{name} (est.)"] <= 1
    assert 0 <= row["without a category: imputed"] <= 1
