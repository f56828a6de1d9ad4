"""The count of the postings without a category, kept between runs: updated by the postings that
changed instead of estimated again (classification/serving.py `updated_mix`)."""

import numpy as np
import pandas as pd

from careerpulse_assets.classification.decisions import CountFacts
from careerpulse_assets.classification.serving import kept_count, unlabelled_mix, updated_mix
from careerpulse_assets.series.quantification import CountEstimate, count_interval

CLASSES = np.array(["Healthcare", "Sales", "Software Engineering", "Legal"])


def estimate_of(probabilities: np.ndarray) -> CountEstimate:
    counts = probabilities.sum(axis=0)
    variance = (probabilities * (1 - probabilities)).sum(axis=0)
    share_error = np.array([0.02, 0.03, 0.05, 0.0])
    low, high = count_interval(counts, variance, share_error, len(probabilities))
    return CountEstimate(CLASSES, probabilities, "PACC", None, np.array([1.5, 0.5, 0.8]), counts,
                         low, high, variance, share_error, 0.12)


def sums(probabilities: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"category": CLASSES, "counts": probabilities.sum(axis=0),
                         "variance": (probabilities * (1 - probabilities)).sum(axis=0)})


def test_the_kept_count_minus_the_replaced_plus_the_new_is_the_count_of_the_postings_now():
    rng = np.random.default_rng(3)
    before = rng.dirichlet(np.ones(4), 500)
    mix = unlabelled_mix(estimate_of(before), "v1", 0.9, estimated_on=500,
                         count_key="k1").to_pandas()
    kept = kept_count(mix, CLASSES[:3])
    assert kept.facts == CountFacts("v1", 0.9, 500, 0, "k1")
    assert kept.weights == {"Healthcare": 1.5, "Sales": 0.5, "Software Engineering": 0.8}
    # 30 postings replaced (a new version of each, or a reviewer's label), 40 new ones.
    replaced, added = before[:30], rng.dirichlet(np.ones(4), 40)
    now = np.vstack([before[30:], added])

    updated = updated_mix(kept, sums(replaced).iloc[::-1], estimate_of(added), len(now), 70)

    frame = updated.to_pandas().set_index("category").loc[CLASSES]
    expected = estimate_of(now)
    np.testing.assert_allclose(frame["estimated_postings"], expected.counts, atol=1e-9)
    np.testing.assert_allclose(frame["estimated_low"], expected.low, atol=1e-9)
    np.testing.assert_allclose(frame["estimated_high"], expected.high, atol=1e-9)
    assert (frame["changed_since"] == 70).all() and (frame["estimated_on"] == 500).all()
    assert (frame["count_key"] == "k1").all()
    assert frame["prior_weight"].isna().tolist() == [False, False, False, True]


def test_no_count_is_kept_without_a_method_or_for_another_models_categories():
    mix = unlabelled_mix(estimate_of(np.full((3, 4), 0.25)), "v1", 0.9, 3).to_pandas()
    assert kept_count(mix, CLASSES[:3]) is not None
    assert kept_count(mix, np.array(["Healthcare", "Sales"])) is None
    assert kept_count(unlabelled_mix(None, None).to_pandas(), CLASSES[:3]) is None
    assert kept_count(None, CLASSES[:3]) is None
    assert kept_count(mix, None) is None


def test_the_count_key_of_a_policy_read_back_is_that_of_the_policy_chosen():
    """The run after a training reads the policy back from evaluation.json (plain str and
    float where the training held NumPy's): the same policy, so the count is kept."""
    import json
    from dataclasses import replace

    from careerpulse_assets.classification.per_posting_policy import ImputationPolicy
    from careerpulse_assets.classification.serving import calibrate_model, counting_fingerprint

    from .test_quantification import knn_like_out_of_fold

    oof, _ = knn_like_out_of_fold()
    chosen = calibrate_model(oof, 0.5).policy
    # As a training holds it: NumPy's str and float (a category withheld).
    in_run = replace(chosen, threshold=np.float64(chosen.threshold),
                     withheld={np.str_("Sales"): np.float64(0.8)})
    summary = json.loads(json.dumps(in_run.summary()))
    read_back = ImputationPolicy.from_summary(summary)
    assert read_back == in_run
    assert (counting_fingerprint(calibrate_model(oof, 0.5, policy=read_back))
            == counting_fingerprint(calibrate_model(oof, 0.5, policy=in_run)))
    assert (counting_fingerprint(calibrate_model(oof, 0.5, policy=replace(in_run, withheld={})))
            != counting_fingerprint(calibrate_model(oof, 0.5, policy=in_run)))
