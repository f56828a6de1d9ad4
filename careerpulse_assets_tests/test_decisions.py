"""The classifier's decisions as tables of cases: inputs, decision, and the reason given."""

import pytest

from careerpulse_assets.classification.decisions import (
    CountFacts,
    ModelFacts,
    promotion_decision,
    recount_decision,
    training_decision,
)

V1, V2 = "models:/careerpulse-knn-category/1", "models:/careerpulse-knn-category/2"


def facts(version=V1, same=True, changed=0, share=0.0, reviewers=0, drifted=False, promoted=False,
          unreadable=None):
    return ModelFacts(version, same, changed, share, reviewers, drifted, promoted, unreadable)


@pytest.mark.parametrize("champion, latest, force, train, reuse, reason", [
    (None, None, False, True, None, "no model yet"),
    (facts(), facts(), False, False, V1,
     "labels unchanged since models:/careerpulse-knn-category/1: reusing it"),
    # Same labels, same code: a training would give the same model, so even forced it is not run.
    (facts(), facts(), True, False, V1,
     "labels unchanged since models:/careerpulse-knn-category/1: a training (forced) would learn "
     "the same model"),
    (facts(changed=2, share=0.02), facts(changed=2, share=0.02), True, True, None, "forced by config"),
    (facts(changed=3, share=0.04), facts(changed=3, share=0.04), False, False, V1,
     "3 labelled postings changed since models:/careerpulse-knn-category/1 (4.0%), under 5%: reusing it"),
    (facts(changed=6, share=0.06), facts(changed=6, share=0.06), False, True, None,
     "6 labelled postings changed since models:/careerpulse-knn-category/1 (6.0%): retraining from 5%"),
    # Reviewers' labels are learned on the next run, however few.
    (facts(changed=4, share=0.003, reviewers=2), facts(changed=4, share=0.003, reviewers=2), False,
     True, None, "2 reviewer labels new or changed since models:/careerpulse-knn-category/1: learning them"),
    (facts(same=False), facts(same=False), False, True, None,
     "the grid, taxonomy or training code changed since models:/careerpulse-knn-category/1"),
    # Its artifacts are gone: nothing can be said of what changed, and no label is blamed.
    (facts(changed=9, share=1.0, unreadable="labelled_rows.npy: Failed to download"), None,
     False, True, None,
     "the labelled postings models:/careerpulse-knn-category/1 was trained on cannot be read "
     "from its MLflow artifacts (labelled_rows.npy: Failed to download): retraining (were they "
     "deleted, or the home restored without its mlartifacts folder?)"),
    # A challenger on about today's labels was not promoted: the champion stays, no training.
    (facts(changed=6, share=0.06), facts(V2, changed=1, share=0.01), False, False, V1,
     "6 labelled postings changed since models:/careerpulse-knn-category/1 (6.0%), but challenger "
     "models:/careerpulse-knn-category/2 was trained on about these labels and not promoted: "
     "keeping the champion"),
    # ... on these very labels: not even reviewers' labels or a forced run train it again.
    (facts(changed=6, share=0.06, reviewers=3), facts(V2), True, False, V1,
     "6 labelled postings changed since models:/careerpulse-knn-category/1 (6.0%), but challenger "
     "models:/careerpulse-knn-category/2 was trained on these very labels and not promoted: "
     "keeping the champion"),
    # ... but a challenger that passed promotion and lost its handover (its run was killed, or
    # another run's output overtook it) is served now, even when forced: no training loop.
    (facts(changed=2, share=0.006, reviewers=2), facts(V2, promoted=True), True, False, V2,
     "2 labelled postings changed since models:/careerpulse-knn-category/1 (0.6%); challenger "
     "models:/careerpulse-knn-category/2, trained on these very labels, passed promotion but its "
     "run ended before it was made champion: serving it (champion once the quality gate passes)"),
    # ... unless labels moved on since that challenger too.
    (facts(changed=12, share=0.12), facts(V2, changed=6, share=0.06), False, True, None,
     "12 labelled postings changed since models:/careerpulse-knn-category/1 (12.0%): retraining from 5%"),
    # No champion yet: judge the newest again rather than retrain it.
    (None, facts(V2), False, False, V2,
     "labels unchanged since models:/careerpulse-knn-category/2: reusing it"),
    # Drift is answered by labels, not by refitting the same ones.
    (facts(drifted=True), facts(drifted=True), False, False, V1,
     "labels unchanged since models:/careerpulse-knn-category/1: reusing it; category drift was "
     "flagged on it: labels of recent postings answer it (`make review`), a retraining on the "
     "same labels would not"),
    (facts(changed=20, share=0.01, drifted=True), facts(changed=20, share=0.01, drifted=True),
     False, False, V1,
     "20 labelled postings changed since models:/careerpulse-knn-category/1 (1.0%), under 5%: "
     "reusing it; category drift was flagged on it: labels of recent postings answer it "
     "(`make review`), a retraining on the same labels would not"),
    (facts(changed=20, share=0.01, reviewers=20, drifted=True), None, False, True, None,
     "20 reviewer labels new or changed since models:/careerpulse-knn-category/1: learning them"),
])
def test_training_decisions(champion, latest, force, train, reuse, reason):
    decision = training_decision(champion, latest, force, retrain_at=0.05)
    assert decision.train is train
    assert (decision.reuse.version if decision.reuse else None) == reuse
    assert decision.reason == reason


SAME = {"macro_f1": 0.80, "accuracy": 0.90}


@pytest.mark.parametrize("challenger, intervals, promote, start", [
    ({"macro_f1": 0.82, "accuracy": 0.91}, {"macro_f1": (-0.01, 0.05), "accuracy": (0.0, 0.02)},
     True, "not worse than champion"),
    # Lower, but within 0.01 and an interval that reaches 0: noise.
    ({"macro_f1": 0.795, "accuracy": 0.90}, {"macro_f1": (-0.03, 0.02), "accuracy": (-0.01, 0.01)},
     True, "not worse than champion"),
    # Lower by more than 0.01.
    ({"macro_f1": 0.78, "accuracy": 0.90}, {"macro_f1": (-0.05, 0.01), "accuracy": (-0.01, 0.01)},
     False, "worse than champion"),
    # Lower by little, but every resample says lower.
    ({"macro_f1": 0.80, "accuracy": 0.895}, {"macro_f1": (-0.01, 0.01), "accuracy": (-0.008, -0.002)},
     False, "worse than champion"),
])
def test_promotion_decisions(challenger, intervals, promote, start):
    decision = promotion_decision(V1, challenger, SAME, intervals)
    assert decision.promote is promote
    assert decision.reason.startswith(start + f" {V1} on the same postings")
    assert "95 % interval" in decision.reason


def test_the_first_model_is_promoted_when_it_passes_the_gate():
    decision = promotion_decision(None, SAME)
    assert decision.promote and decision.reason.startswith("no champion yet")


def counted(version=V1, bar=0.9, on=280_000, since=0, key="k1"):
    return CountFacts(version, bar, on, since, key)


@pytest.mark.parametrize("kept, version, bar, changed, recount, since, reason", [
    (counted(), None, 0.9, 5, True, 0,
     "no model in service: every posting imputed and counted again"),
    (None, V1, 0.9, 5, True, 0, "no count kept to update (the first imputation, none of this "
     "model's categories, or one written by older code): every posting imputed and counted "
     "again"),
    (counted(), V2, 0.9, 5, True, 0, "the model in service is models:/careerpulse-knn-category/2"
     ", the count kept was made with models:/careerpulse-knn-category/1: every posting imputed "
     "and counted again"),
    (counted(), V1, 0.8, 5, True, 0, "the precision bar is 0.80, the categories kept were "
     "written for 0.9: every posting imputed and counted again"),
    # The same version calibrated again (its registry copy unreadable), or new code.
    (counted(key="k0"), V1, 0.9, 5, True, 0, "the calibration, per-posting policy or table "
     "layout of models:/careerpulse-knn-category/1 differ from those the count kept was made "
     "with: every posting imputed and counted again"),
    # A page of 20 among 280,000: the correction is kept, the 20 imputed.
    (counted(), V1, 0.9, 20, False, 20, "20 postings without a category new, changed or gone "
     "since the count's correction was estimated on 280,000 (0.01%), under 1%: its method and "
     "correction kept, only the postings new, changed or gone imputed again"),
    # Pages add up: what changed in earlier runs counts toward the 1 %.
    (counted(since=2_790), V1, 0.9, 20, True, 0, "2,810 postings without a category new, "
     "changed or gone since the count's correction was estimated on 280,000 (1.00%), 1% or "
     "more: every posting imputed and counted again"),
    (counted(on=0), V1, 0.9, 1, True, 0, "1 postings without a category new, changed or gone "
     "since the count's correction was estimated on 0 (100.00%), 1% or more: every posting "
     "imputed and counted again"),
    (counted(on=0), V1, 0.9, 0, False, 0, "0 postings without a category new, changed or gone "
     "since the count's correction was estimated on 0 (0.00%), under 1%: its method and "
     "correction kept, only the postings new, changed or gone imputed again"),
])
def test_the_count_is_made_again_only_when_what_it_rests_on_changed(kept, version, bar, changed,
                                                                   recount, since, reason):
    decision = recount_decision(kept, version, bar, changed, fingerprint="k1")
    assert (decision.recount, decision.changed_since, decision.reason) == (recount, since, reason)
