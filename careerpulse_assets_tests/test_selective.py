"""Selective imputation: the threshold, its nested estimate and the decision, on plain arrays."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from careerpulse_assets.core.decisions import Bars, imputation_decision
from careerpulse_assets.core.out_of_fold import OutOfFold, point_metrics
from careerpulse_assets.core.selective import (
    ImputationPolicy,
    deployed_threshold,
    imputation_policy,
    lowest_threshold,
    nested_written,
    written_curve,
)

CATEGORIES = np.array(["Healthcare", "Sales", "Software Engineering", "Legal Services"])


def predictions(n=600, repeats=2, seed=0) -> OutOfFold:
    """Out-of-fold-like predictions whose confidence says how often they are right."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(CATEGORIES, n, p=[0.3, 0.2, 0.48, 0.02]).astype(object)
    confidence = rng.uniform(0.2, 1.0, (repeats, n))
    right = rng.random((repeats, n)) < confidence
    wrong = rng.choice(CATEGORIES[:3], (repeats, n)).astype(object)
    predicted = np.where(right, truth[None, :], wrong)
    fold = np.stack([rng.permutation(np.arange(n) % 5) for _ in range(repeats)])
    return OutOfFold(truth, truth != "Legal Services", predicted, confidence, fold)


def test_the_curve_equals_scikit_learn_at_every_threshold():
    oof = predictions()
    truth, predicted, confidence = oof.truth, oof.predicted[0], oof.confidence[0]
    judged = ["Healthcare", "Sales", "Software Engineering"]
    curve = written_curve(truth, predicted, confidence, judged)
    assert (np.diff(curve.thresholds) < 0).all() and curve.coverage[-1] == 1.0
    for i in (0, 17, len(curve.thresholds) // 2, len(curve.thresholds) - 1):
        written = confidence >= curve.thresholds[i]
        assert curve.coverage[i] == pytest.approx(written.mean())
        assert curve.accuracy[i] == pytest.approx(accuracy_score(truth[written], predicted[written]))
        present = [c for c in judged if c in set(truth[written]) | set(predicted[written])]
        assert curve.macro_f1[i] == pytest.approx(f1_score(
            truth[written], predicted[written], labels=present, average="macro", zero_division=0))


def test_the_threshold_is_the_lowest_confidence_that_meets_both_bars():
    oof = predictions()
    judged = ["Healthcare", "Sales", "Software Engineering"]
    curve = written_curve(oof.truth, oof.predicted[0], oof.confidence[0], judged)
    threshold = lowest_threshold(curve, Bars(0.9, 0.85))
    written = oof.confidence[0] >= threshold
    assert accuracy_score(oof.truth[written], oof.predicted[0][written]) >= 0.9
    meets = (curve.accuracy >= 0.9) & (curve.macro_f1 >= 0.85)
    assert not meets[curve.thresholds < threshold].any()  # nothing lower would do
    assert lowest_threshold(curve, Bars(0.0, 0.0)) == 0.0  # everything: impute every posting
    assert lowest_threshold(curve, Bars(1.01, 0.0)) is None
    # Without judged categories macro-F1 is not estimated (NaN): accuracy alone decides.
    unjudged = written_curve(oof.truth, oof.predicted[0], oof.confidence[0], [])
    assert np.isnan(unjudged.macro_f1).all()
    assert lowest_threshold(unjudged, Bars(0.9, 0.99), macro_judged=False) is not None


def test_a_folds_threshold_is_chosen_without_its_postings():
    oof = predictions()
    judged = ["Healthcare", "Sales", "Software Engineering"]
    bars = Bars(0.9, 0.85)
    written = nested_written(oof, bars, judged)
    # Make every prediction of repeat 0's fold 2 wrong: its threshold (chosen on the other
    # folds) does not move, so it writes the same postings; the other folds' thresholds, chosen
    # on fold 2 among others, write fewer.
    spoiled = oof.predicted.copy()
    inside = oof.fold[0] == 2
    spoiled[0, inside] = np.where(oof.truth[inside] == "Sales", "Healthcare", "Sales")
    again = nested_written(OutOfFold(oof.truth, oof.learnable, spoiled, oof.confidence, oof.fold),
                           bars, judged)
    assert (again[0, inside] == written[0, inside]).all()
    assert again[0, ~inside].sum() < written[0, ~inside].sum()
    assert (again[1] == written[1]).all()  # another repeat, other folds: untouched


def test_the_policy_imputes_only_when_the_nested_estimate_meets_the_bars():
    oof = predictions()
    policy = imputation_policy(oof, Bars(0.85, 0.8), resamples=200)
    assert policy.imputes and 0 < policy.threshold < 1
    assert policy.threshold == deployed_threshold(oof, Bars(0.85, 0.8), policy.judged_categories)
    nested = point_metrics(oof, nested_written(oof, Bars(0.85, 0.8), policy.judged_categories))
    for name in ("accuracy", "macro_f1", "coverage"):
        assert policy.written[name] == pytest.approx(nested[name])
        assert policy.written[f"{name}_ci_low"] <= policy.written[name] <= policy.written[f"{name}_ci_high"]
    assert policy.written["accuracy"] >= 0.85 and policy.written["coverage"] < 1
    assert policy.judged_categories == ["Healthcare", "Sales", "Software Engineering"]
    assert ImputationPolicy.from_summary(policy.summary()) == policy

    everything = imputation_policy(oof, Bars(0.0, 0.0), resamples=50)
    assert everything.threshold == 0.0 and everything.written["coverage"] == 1.0
    assert everything.reason.startswith("imputes every posting")
    nothing = imputation_policy(oof, Bars(0.999, 0.9), resamples=50)
    assert not nothing.imputes and nothing.written == {"coverage": 0.0}
    # A candidate that does not hold up nested is kept, with its estimate, to say how far off.
    held_back = imputation_policy(oof, Bars(0.9, 0.85), resamples=50)
    assert not held_back.imputes and held_back.candidate is not None
    assert held_back.estimate["accuracy"] < 0.9 and "accuracy_ci_low" in held_back.estimate
    assert held_back.written == {"coverage": 0.0}


@pytest.mark.parametrize("threshold, nested, imputes, start", [
    (None, None, None, "no confidence threshold gives out-of-fold imputations with accuracy ≥ 0.90"),
    (0.6, {"accuracy": 0.92, "macro_f1": 0.68, "coverage": 0.9}, None,
     "confidence ≥ 0.60 meets accuracy ≥ 0.90 and macro-F1 ≥ 0.70 on the out-of-fold predictions "
     "it was chosen on, but not nested (each fold's threshold chosen without it: accuracy 0.920, "
     "macro-F1 0.680, coverage 90.0%): nothing is imputed"),
    (0.6, {"accuracy": 0.92, "macro_f1": 0.72, "coverage": 0.9}, 0.6,
     "imputes postings with confidence ≥ 0.60: what it writes is estimated nested at accuracy "
     "0.920, macro-F1 0.720, coverage 90.0%"),
    (0.0, {"accuracy": 0.95, "macro_f1": 0.8, "coverage": 1.0}, 0.0, "imputes every posting"),
    (0.6, {"accuracy": float("nan"), "macro_f1": float("nan"), "coverage": 0.0}, None,
     "confidence ≥ 0.60 meets accuracy ≥ 0.90 and macro-F1 ≥ 0.70 on the out-of-fold predictions "
     "it was chosen on, but not nested (each fold's threshold chosen without it: nothing would "
     "be written)"),
])
def test_imputation_decisions(threshold, nested, imputes, start):
    decision = imputation_decision(Bars(0.9, 0.7), threshold, nested, macro_judged=True)
    assert decision.threshold == imputes
    assert decision.reason.startswith(start)
