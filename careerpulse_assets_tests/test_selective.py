"""Selective imputation: the threshold and served categories, their nested estimate and the
decision, on plain arrays."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from careerpulse_assets.core.decisions import Bars, imputation_decision
from careerpulse_assets.core.out_of_fold import OutOfFold, point_metrics
from careerpulse_assets.core.selective import (
    ImputationPolicy,
    Service,
    category_curves,
    choose_service,
    deployed_service,
    imputation_policy,
    nested_policies,
)

CATEGORIES = np.array(["Healthcare", "Sales", "Software Engineering", "Legal Services"])


def predictions(n=600, repeats=2, seed=0) -> OutOfFold:
    """Out-of-fold-like predictions whose confidence says how often they are right."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(CATEGORIES, n, p=[0.3, 0.2, 0.48, 0.02]).astype(object)
    confidence = rng.uniform(0.2, 1.0, (repeats, n))
    learnable = truth != "Legal Services"  # too rare to learn: never predicted
    right = (rng.random((repeats, n)) < confidence) & learnable
    wrong = rng.choice(CATEGORIES[:3], (repeats, n)).astype(object)
    predicted = np.where(right, truth[None, :], wrong)
    fold = np.stack([rng.permutation(np.arange(n) % 5) for _ in range(repeats)])
    return OutOfFold(truth, learnable, predicted, confidence, fold)


def with_categories(counts: dict[str, int], right: dict[str, float], repeats=3, seed=1) -> OutOfFold:
    """Out-of-fold-like predictions with `counts` postings per category, each right with the
    category's `right` share (more often when confident), else guessed as another category; a
    weak category is also guessed for postings of the others, as a KNN guesses a category it
    cannot tell from its neighbours."""
    rng = np.random.default_rng(seed)
    names = list(counts)
    truth = np.array([name for name in names for _ in range(counts[name])], dtype=object)
    n = len(truth)
    share = np.array([right[name] for name in truth])
    confidence = rng.uniform(0.3, 1.0, (repeats, n))
    # Right more often when confident, at the category's share on average.
    is_right = rng.random((repeats, n)) < np.clip(share + (confidence - 0.65), 0, 1)
    weakest = min(names, key=lambda name: right[name])
    # A weak category is the guess for half the wrong postings of the others; the rest, and its
    # own wrong ones, go to another category at random.
    steals = (rng.random((repeats, n)) < 0.5) & (right[weakest] < 0.6) & (truth != weakest)
    wrong = np.where(steals, weakest, rng.choice(names, (repeats, n)).astype(object))
    wrong = np.where(wrong == truth, np.where(truth == names[0], names[1], names[0]), wrong)
    predicted = np.where(is_right, truth[None, :], wrong)
    fold = np.stack([rng.permutation(np.arange(n) % 5) for _ in range(repeats)])
    return OutOfFold(truth, np.ones(n, dtype=bool), predicted, confidence, fold)


def brute_force(truth, predicted, confidence, learned, judged, bars):
    """The policy by its definition, threshold by threshold."""
    best = None
    thresholds = np.unique(confidence)[::-1]
    for i, t in enumerate(thresholds):
        above = confidence >= t
        served = []
        for c in learned:
            is_true, is_predicted = above & (truth == c), above & (predicted == c)
            both = is_true.sum() + is_predicted.sum()
            right = (is_true & is_predicted).sum()
            if c in judged:
                good = both and 2 * right / both >= bars.macro_f1
            else:  # too rare to judge: its own predictions right as often as the accuracy bar
                good = (right / is_predicted.sum() if is_predicted.any() else 0.0) >= bars.accuracy
            if good:
                served.append(c)
        written = above & np.isin(predicted, served)
        if written.any() and (truth[written] == predicted[written]).mean() >= bars.accuracy and (
                best is None or written.mean() > best[0]):
            best = (written.mean(), 0.0 if i == len(thresholds) - 1 else t, tuple(served))
    return best


def test_the_curves_equal_scikit_learn_at_every_threshold():
    oof = predictions()
    truth, predicted, confidence = oof.truth, oof.predicted[0], oof.confidence[0]
    curves = category_curves(truth, predicted, confidence)
    assert (np.diff(curves.thresholds) < 0).all()
    assert list(curves.categories) == sorted(CATEGORIES)
    served = np.isin(curves.categories, ["Healthcare", "Software Engineering"])
    coverage, accuracy = curves.written(np.repeat(served[:, None], len(curves.thresholds), 1))
    f1 = curves.f1()
    for i in (0, 17, len(curves.thresholds) // 2, len(curves.thresholds) - 1):
        above = confidence >= curves.thresholds[i]
        expected = f1_score(truth[above], predicted[above], labels=list(curves.categories),
                            average=None, zero_division=0)
        present = np.isin(curves.categories, list(set(truth[above]) | set(predicted[above])))
        assert np.allclose(f1[present, i], expected[present]) and np.isnan(f1[~present, i]).all()
        written = above & np.isin(predicted, ["Healthcare", "Software Engineering"])
        assert coverage[i] == pytest.approx(written.mean())
        assert accuracy[i] == pytest.approx(accuracy_score(truth[written], predicted[written]))


@pytest.mark.parametrize("bars", [Bars(0.9, 0.85), Bars(0.8, 0.7), Bars(0.95, 0.9), Bars(0, 0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_policy_is_the_largest_coverage_at_the_accuracy_bar_in_the_categories_good_enough(
    bars, seed
):
    oof = predictions(seed=seed)
    truth, predicted, confidence = oof.truth, oof.predicted[0], oof.confidence[0]
    judged, learned = ["Healthcare", "Sales", "Software Engineering"], sorted(CATEGORIES[:3])
    service = choose_service(category_curves(truth, predicted, confidence), learned, judged, bars)
    expected = brute_force(truth, predicted, confidence, learned, judged, bars)
    assert (service is None) == (expected is None)
    if service is not None:
        assert (service.threshold, service.served) == expected[1:]
        written = service.writes(predicted, confidence)
        assert accuracy_score(truth[written], predicted[written]) >= bars.accuracy
    if bars == Bars(0, 0):  # every posting, every category
        assert service == Service(0.0, tuple(learned))


def test_a_category_not_judged_is_served_when_its_own_predictions_meet_the_accuracy_bar():
    oof = predictions()
    truth, predicted, confidence = oof.truth, oof.predicted[0], oof.confidence[0]
    curves = category_curves(truth, predicted, confidence)
    learned = sorted(CATEGORIES[:3])
    # Nothing judged: the F1 bar, however high, changes nothing; each one's precision decides.
    service = choose_service(curves, learned, [], Bars(0.9, 0.99))
    assert service == choose_service(curves, learned, [], Bars(0.9, 0.0))
    assert service is not None and service.served
    assert choose_service(curves, learned, [], Bars(0.0, 0.99)).served == tuple(learned)
    for category in service.served:
        written = (confidence >= service.threshold) & (predicted == category)
        assert (truth[written] == category).mean() >= 0.9
    assert choose_service(curves, learned, [], Bars(1.01, 0.0)) is None


def test_a_category_learned_from_a_few_labels_is_not_written_on_the_others_accuracy():
    # The reviewer's case: Sales learned from 3 labels, guessed out-of-fold for 6 postings of
    # which 1 is Sales; Software Engineering right 96 times in 100. Overall accuracy at
    # threshold 0 is 97/106 = 0.915, over the bar; Sales' own predictions are right 1 in 6.
    truth = np.array(["Software Engineering"] * 100 + ["Sales"] * 3 + ["Software Engineering"] * 5,
                     dtype=object)
    predicted = np.array(["Software Engineering"] * 96 + ["Sales"] * 4 + ["Sales"]
                         + ["Software Engineering"] * 2 + ["Sales"] * 1
                         + ["Software Engineering"] * 4, dtype=object)
    confidence = np.full(len(truth), 0.5)
    curves = category_curves(truth, predicted, confidence)
    learned = ["Sales", "Software Engineering"]
    service = choose_service(curves, learned, [], Bars(0.9, 0.7))
    assert service == Service(0.0, ("Software Engineering",))
    # With the accuracy bar at 0 every learned category is written, as "impute every posting".
    assert choose_service(curves, learned, [], Bars(0.0, 0.0)).served == tuple(learned)


def test_a_folds_policy_is_chosen_without_its_postings():
    oof = predictions()
    judged = ["Healthcare", "Sales", "Software Engineering"]
    bars = Bars(0.9, 0.85)
    written = nested_policies(oof, bars, judged).written
    # Make every prediction of repeat 0's fold 2 wrong (its postings' truth changed): its policy
    # (chosen on the other folds) does not move, so it writes the same postings; the other
    # folds', chosen on fold 2 among others, write fewer.
    inside = oof.fold[0] == 2
    truth = oof.truth.copy()
    truth[inside] = np.where(oof.predicted[0, inside] == "Sales", "Healthcare", "Sales")
    again = nested_policies(OutOfFold(truth, oof.learnable, oof.predicted, oof.confidence,
                                      oof.fold), bars, judged).written
    assert (again[0, inside] == written[0, inside]).all()
    assert again[0, ~inside].sum() < written[0, ~inside].sum()


def test_the_policy_imputes_only_when_the_nested_estimate_meets_the_bars():
    oof = predictions()
    bars = Bars(0.75, 0.7)
    policy = imputation_policy(oof, bars, resamples=200)
    deployed = deployed_service(oof, bars, policy.judged_categories)
    assert policy.imputes and 0 < policy.threshold < 1
    assert (policy.threshold, tuple(policy.served)) == (deployed.threshold, deployed.served)
    assert policy.imputed_categories == policy.served
    nested = nested_policies(oof, bars, policy.judged_categories)
    figures = point_metrics(oof, nested.written)
    for name in ("accuracy", "coverage"):
        assert policy.written[name] == pytest.approx(figures[name])
    # macro-F1 is the mean F1 of the served judged categories, each over the postings written
    # by the fold policies that serve it.
    served_judged = [c for c in policy.judged_categories if c in policy.served]
    assert list(policy.served_f1) == served_judged
    for category in served_judged:
        written = nested.written_when_served(category)
        assert policy.served_f1[category] == pytest.approx(np.mean([
            f1_score(oof.truth[written[r]], oof.predicted[r, written[r]], labels=[category],
                     average="macro") for r in range(2)]))
    assert policy.written["macro_f1"] == pytest.approx(np.mean(list(policy.served_f1.values())))
    # Sales is near the bar: some folds' policies serve it, some do not. Scored over every
    # written posting, those that do not would count its postings written under other
    # categories as its misses, with none of its hits.
    sales = nested.serves["Sales"]
    assert 0 < sales.mean() < 1
    everywhere = point_metrics(oof, nested.written, ["Sales"])["macro_f1"]
    assert everywhere < policy.served_f1["Sales"] - 0.02
    for name in ("accuracy", "macro_f1", "coverage"):
        assert policy.written[f"{name}_ci_low"] <= policy.written[name] <= policy.written[f"{name}_ci_high"]
    assert policy.written["accuracy"] >= 0.75 and policy.written["coverage"] < 1
    assert policy.judged_categories == ["Healthcare", "Sales", "Software Engineering"]
    assert ImputationPolicy.from_summary(policy.summary()) == policy

    everything = imputation_policy(oof, Bars(0.0, 0.0), resamples=50)
    assert everything.threshold == 0.0
    # Every posting is imputed but those of Legal Services, which no model can predict.
    assert everything.written["coverage"] == 1.0
    assert everything.served == ["Healthcare", "Sales", "Software Engineering"]
    assert everything.reason.startswith("imputes every posting (all 3 categories it learned)")
    nothing = imputation_policy(oof, Bars(1.01, 0.9), resamples=50)
    assert not nothing.imputes and nothing.written == {"coverage": 0.0}
    assert nothing.candidate is None and nothing.imputed_categories == []
    # A candidate that does not hold up nested is kept, with its estimate, to say how far off.
    held_back = imputation_policy(oof, Bars(0.9, 0.85), resamples=50)
    assert not held_back.imputes and held_back.candidate is not None
    assert held_back.estimate["accuracy"] < 0.9 and "accuracy_ci_low" in held_back.estimate
    assert held_back.written == {"coverage": 0.0} and held_back.imputed_categories == []
    assert held_back.served  # what it would have served


def test_a_policy_stored_before_categories_were_served_is_chosen_again():
    old = {"threshold": 0.6, "bars": {"accuracy": 0.9, "macro_f1": 0.7}, "reason": "imputes",
           "candidate": 0.6, "estimate": {}, "postings": 100, "judged_categories": []}
    assert ImputationPolicy.from_summary(old) is None


# --- labels help, never hurt -------------------------------------------------------------------

GOOD = {"Software Engineering": 0.98, "Healthcare": 0.95, "Education": 0.93}


def test_labels_that_make_a_weak_category_judged_do_not_stop_the_others_being_imputed():
    bars = Bars(0.9, 0.7)
    counts = {"Software Engineering": 300, "Healthcare": 80, "Education": 60}
    # 12 labelled postings of Account Management: too few to judge its F1; its own guesses are
    # seldom right, so it is not served, though its few errors would cost little accuracy.
    before = imputation_policy(
        with_categories(counts | {"Account Management": 12}, GOOD | {"Account Management": 0.35}),
        bars, resamples=100)
    assert "Account Management" not in before.judged_categories
    assert before.imputes and set(before.served) == set(GOOD)

    # Reviewers label 18 more: judged now, and weak. It is not imputed; the others still are.
    after_oof = with_categories(counts | {"Account Management": 30},
                                GOOD | {"Account Management": 0.35})
    after = imputation_policy(after_oof, bars, resamples=100)
    assert "Account Management" in after.judged_categories
    assert after.imputes, after.reason
    assert set(after.served) == set(GOOD) and after.written["coverage"] > 0.8
    assert after.written["accuracy"] >= 0.9 and after.written["macro_f1"] >= 0.7
    assert set(after.left_out) == {"Account Management"}
    assert after.left_out["Account Management"]["f1"] < 0.7
    assert after.reason.startswith("imputes every posting predicted in one of 3 categories, not "
                                   "in Account Management 0.")


def test_a_category_that_becomes_good_enough_is_then_served():
    bars = Bars(0.9, 0.7)
    counts = {"Software Engineering": 300, "Healthcare": 80, "Education": 60,
              "Account Management": 40}
    weak = imputation_policy(with_categories(counts, GOOD | {"Account Management": 0.35}), bars,
                             resamples=100)
    assert weak.imputes and "Account Management" not in weak.served
    # Labels taught the model the category: right on 9 of 10 of its postings.
    learned = imputation_policy(with_categories(counts, GOOD | {"Account Management": 0.9}), bars,
                                resamples=100)
    assert learned.imputes and "Account Management" in learned.served
    assert learned.left_out == {} and learned.served_f1["Account Management"] >= 0.7
    assert learned.written["coverage"] > weak.written["coverage"]


@pytest.mark.parametrize("threshold, nested, imputes, start", [
    (None, None, None, "no confidence threshold gives out-of-fold imputations with accuracy ≥ "
     "0.90, even in the categories whose F1 reaches 0.70: nothing is imputed"),
    (0.6, {"accuracy": 0.92, "macro_f1": 0.68, "coverage": 0.9}, None,
     "imputing postings with confidence ≥ 0.60 predicted in one of 4 categories, not in Account "
     "Management 0.41 (F1 under 0.70: label them) meets accuracy ≥ 0.90 and macro-F1 ≥ 0.70 on "
     "the out-of-fold predictions it was chosen on, but not nested (each fold's threshold and "
     "categories chosen without it: accuracy 0.920, macro-F1 0.680, coverage 90.0%): nothing is "
     "imputed"),
    (0.6, {"accuracy": 0.92, "macro_f1": 0.72, "coverage": 0.9}, 0.6,
     "imputes postings with confidence ≥ 0.60 predicted in one of 4 categories, not in Account "
     "Management 0.41 (F1 under 0.70: label them): what it writes is estimated nested at "
     "accuracy 0.920, macro-F1 0.720, coverage 90.0%"),
    (0.0, {"accuracy": 0.95, "macro_f1": 0.8, "coverage": 1.0}, 0.0, "imputes every posting"),
    (0.6, {"accuracy": float("nan"), "macro_f1": float("nan"), "coverage": 0.0}, None,
     "imputing postings with confidence ≥ 0.60 predicted in one of 4 categories, not in Account "
     "Management 0.41 (F1 under 0.70: label them) meets accuracy ≥ 0.90 and macro-F1 ≥ 0.70 on "
     "the out-of-fold predictions it was chosen on, but not nested (each fold's threshold and "
     "categories chosen without it: nothing would be written)"),
])
def test_imputation_decisions(threshold, nested, imputes, start):
    decision = imputation_decision(Bars(0.9, 0.7), threshold, nested, 4,
                                   {"Account Management": 0.41}, macro_judged=True)
    assert decision.threshold == imputes
    assert decision.reason.startswith(start)


def test_with_no_judged_category_served_macro_f1_is_not_judged():
    decision = imputation_decision(
        Bars(0.9, 0.7), 0.5, {"accuracy": 0.93, "macro_f1": float("nan"), "coverage": 0.7}, 2,
        {"Sales": 0.4}, macro_judged=False)
    assert decision.threshold == 0.5
    assert decision.reason.endswith("macro-F1 not judged: no category with postings enough to "
                                    "estimate its F1 is served")
