"""Per-posting imputation: one threshold on calibrated confidence, categories withheld only when
clearly below the precision bar, a nested estimate, and coverage that moves gradually."""

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from careerpulse_assets.classification.per_posting_policy import (
    ImputationPolicy,
    choose_rule,
    choose_threshold,
    imputation_policy,
    withheld_categories,
)

CLASSES = np.array(["Healthcare", "Sales", "Software Engineering"])


def calibrated_predictions(n=900, repeats=2, seed=0, weak="Sales", weak_right=0.4):
    """Calibrated-like out-of-fold probabilities (repeats × postings × classes): the top class is
    right as often as its probability says, except `weak`, right `weak_right` of the time."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(CLASSES, n, p=[0.3, 0.2, 0.5]).astype(object)
    fold = np.stack([rng.permutation(np.arange(n) % 5) for _ in range(repeats)])
    probabilities = np.zeros((repeats, n, len(CLASSES)))
    for r in range(repeats):
        top = rng.uniform(0.4, 1.0, n)
        guess = np.where(rng.random(n) < top, truth, rng.choice(CLASSES, n))
        guess = np.where((truth != weak) & (rng.random(n) < 0.15), weak, guess)
        weak_rows = guess == weak
        guess[weak_rows] = np.where(rng.random(weak_rows.sum()) < weak_right, truth[weak_rows],
                                    weak)
        columns = np.searchsorted(CLASSES, guess)
        probabilities[r] = ((1 - top) / (len(CLASSES) - 1))[:, None]
        probabilities[r, np.arange(n), columns] = top
    return probabilities, truth, fold


def test_the_threshold_is_the_largest_coverage_whose_precision_is_shown_to_reach_the_bar():
    rng = np.random.default_rng(3)
    confidence = np.round(rng.uniform(0, 1, 2000), 2)  # ties: written together
    right = rng.random(2000) < confidence
    threshold = choose_threshold(confidence, right, 0.9)
    written = confidence >= threshold
    low, _ = proportion_confint(right[written].sum(), written.sum(), alpha=0.10, method="wilson")
    assert low >= 0.9
    # One step lower (the next distinct confidence) no longer shows it.
    lower = confidence[confidence < threshold].max()
    more = confidence >= lower
    low_more, _ = proportion_confint(right[more].sum(), more.sum(), alpha=0.10, method="wilson")
    assert low_more < 0.9
    assert choose_threshold(confidence, np.zeros(2000, bool), 0.9) is None
    # Every prediction right: down to the floor (never a category more likely wrong than right).
    assert choose_threshold(confidence, np.ones(2000, bool), 0.9) == 0.5


def test_a_weak_category_at_every_confidence_is_withheld_and_the_others_written():
    probabilities, truth, fold = calibrated_predictions()
    predicted = CLASSES[probabilities[0].argmax(axis=1)]
    confidence = probabilities[0].max(axis=1)
    right = predicted == truth
    # With Sales among them, no threshold shows 0.90 ...
    assert choose_threshold(confidence, right, 0.9) is None
    # ... without it, one does: it is right 4 times in 10 at every confidence.
    rule = choose_rule(predicted, confidence, right, 0.9)
    assert list(rule.withheld) == ["Sales"] and rule.threshold is not None
    kept = predicted != "Sales"
    assert rule.threshold == choose_threshold(confidence[kept], right[kept], 0.9)


def test_a_category_is_withheld_only_when_clearly_below_the_bar():
    predicted = np.array(["Sales"] * 10 + ["Healthcare"] * 2 + ["Software Engineering"] * 50,
                         dtype=object)
    right = np.array([True] * 4 + [False] * 6 + [True, False] + [True] * 48 + [False] * 2)
    withheld = withheld_categories(predicted, right, np.ones(len(right), bool), 0.9)
    # 4 right of 10: the interval's top (0.69) is under the bar. 1 of 2 proves nothing.
    assert list(withheld) == ["Sales"]
    assert withheld["Sales"] < 0.9


def test_the_policy_writes_at_the_bar_and_its_estimate_is_nested():
    probabilities, truth, fold = calibrated_predictions()
    policy = imputation_policy(probabilities, truth, fold, CLASSES, 0.9, resamples=200)

    assert policy.imputes and 0 < policy.threshold < 1
    assert "Sales" in policy.withheld  # right 4 times in 10
    estimate = policy.estimate
    assert estimate["precision"] >= 0.85
    assert estimate["precision_ci_low"] <= estimate["precision"] <= estimate["precision_ci_high"]
    assert 0.2 < estimate["coverage"] < 1
    # The nested estimate: each fold's rule chosen on the other folds only, by hand.
    predicted = CLASSES[probabilities.argmax(axis=2)]
    confidence = probabilities.max(axis=2)
    right = predicted == truth[None, :]
    written = np.zeros(predicted.shape, bool)
    for r in range(probabilities.shape[0]):
        for f in range(5):
            inside, others = fold[r] == f, fold[r] != f
            rule = choose_rule(predicted[r, others], confidence[r, others], right[r, others], 0.9)
            written[r, inside] = rule.writes(predicted[r, inside], confidence[r, inside])
    assert estimate["coverage"] == written.mean()
    assert estimate["precision"] == (right & written).sum() / written.sum()
    assert "right" in policy.reason and f"{policy.threshold:.2f}" in policy.reason


def test_coverage_moves_a_little_when_the_data_moves_a_little():
    """The rule before issue 26 went from writing every posting to writing none when 30 postings
    were added; this one moves gradually."""
    probabilities, truth, fold = calibrated_predictions(n=600, seed=5)
    before = imputation_policy(probabilities, truth, fold, CLASSES, 0.9, resamples=50)
    extra, extra_truth, extra_fold = calibrated_predictions(n=30, seed=6, weak_right=0.0)
    after = imputation_policy(np.concatenate([probabilities, extra], axis=1),
                              np.concatenate([truth, extra_truth]),
                              np.concatenate([fold, extra_fold], axis=1), CLASSES, 0.9,
                              resamples=50)
    assert before.imputes and after.imputes
    assert abs(after.estimate["coverage"] - before.estimate["coverage"]) < 0.1
    # A weaker model writes less at the same precision, not nothing.
    bar_higher = imputation_policy(probabilities, truth, fold, CLASSES, 0.93, resamples=50)
    assert 0 < bar_higher.estimate["coverage"] < before.estimate["coverage"]


def test_a_model_that_is_never_right_enough_writes_nothing_and_says_why():
    probabilities, truth, fold = calibrated_predictions(n=300, seed=2)
    shuffled = np.random.default_rng(0).permutation(truth)
    policy = imputation_policy(probabilities, shuffled, fold, CLASSES, 0.9, resamples=50)
    assert not policy.imputes
    assert policy.estimate["coverage"] == 0
    assert "no confidence threshold" in policy.reason


def test_a_policy_round_trips_through_its_summary():
    probabilities, truth, fold = calibrated_predictions(n=300)
    policy = imputation_policy(probabilities, truth, fold, CLASSES, 0.9, resamples=20)
    assert ImputationPolicy.from_summary(policy.summary()) == policy
    assert ImputationPolicy.from_summary({"threshold": 0.5, "served": []}) is None


def test_realised_precision_is_judged_from_20_labelled_postings_and_fails_only_clearly_below():
    from careerpulse_assets.classification.per_posting_policy import realised_precision

    few = realised_precision(["Sales"] * 5, ["Healthcare"] * 5)
    assert few.postings == 5 and few.right == 0 and not few.judged
    assert not few.clearly_below(0.9)  # 5 postings prove nothing
    bad = realised_precision(["Sales"] * 30, ["Sales"] * 15 + ["Healthcare"] * 15)
    assert bad.judged and bad.precision == 0.5 and bad.clearly_below(0.9)
    good = realised_precision(["Sales"] * 30, ["Sales"] * 27 + ["Healthcare"] * 3)
    assert good.low <= 0.9 <= good.high and not good.clearly_below(0.9)
    assert "agreed with 27 of the 30" in good.describe()
    assert realised_precision([], []).describe().startswith("no category written")


def test_repeated_predictions_of_the_same_postings_count_once():
    """A reviewer found 16 labelled postings, predicted in 3 repeats, passing as 48: the
    deployed rule wrote every posting while 16 right out of 16 shows no 0.90."""
    probabilities = np.zeros((3, 16, 3))
    probabilities[:, :, 2] = 1.0
    truth = np.array(["Software Engineering"] * 16, dtype=object)
    fold = np.tile(np.arange(16) % 5, (3, 1))
    policy = imputation_policy(probabilities, truth, fold, CLASSES, 0.9, resamples=20)
    assert not policy.imputes
    assert choose_threshold(np.ones(48), np.ones(48, bool), 0.9, weight=1 / 3) is None
    assert choose_threshold(np.ones(48), np.ones(48, bool), 0.9) == 0.5
