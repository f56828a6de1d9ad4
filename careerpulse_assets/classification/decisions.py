"""The classifier's decisions, made here and only here, each with its reason.

1. **Train or reuse?** (`training_decision`) The model to reuse is the champion (the registered
   version with the MLflow alias `champion`, the one in service), or while there is none the
   newest trained version. Labels answer everything a training can: a model is never trained
   again on the labels and code it was trained on (the training is deterministic: it would
   learn the same model, so it is not run even when forced, and cannot demote or block
   anything), nor when a challenger trained on these very labels was judged worse (one that
   passed promotion but whose run ended before the handover is served, and made champion once
   the gate passes). Otherwise it
   is trained when forced; when its grid, taxonomy or training code changed; when reviewers'
   labels are new or changed since it was trained (a reviewer's label is the most valuable
   training data there is: learned on the next run whatever their number); or when `retrain_at`
   (5 %) or more of the labelled postings it learned from are new, changed or gone. Category
   drift alone retrains nothing: refitting the same labels cannot answer it; labels of recent
   postings can, and the reason says so.
2. **Promote the challenger?** (`promotion_decision`) Both recipes (the challenger's selection,
   the champion's settings) are scored out-of-fold on today's labelled postings, on the same
   folds and bootstrap resamples. The challenger is *worse* when its macro-F1 or accuracy is
   lower than the champion's by more than `WORSE_BY` (0.01), or lower with the whole paired 95 %
   interval of the difference below 0. A challenger that is not worse is promoted when it
   passes the quality gate (3.), or when the champion does not pass it either; the first model
   is promoted whatever its gate (it is the best available), and the checks say whether it
   passed.

3. **Does the model pass the quality gate?** (`gate_verdict`) Its accuracy and macro-F1 at full
   coverage (every posting its most probable category), estimated nested out-of-fold, reach the
   bars (CAREERPULSE_MIN_ACCURACY 0.75, CAREERPULSE_MIN_MACRO_F1 0.70, or the checks' run
   config). A model trained on shuffled labels fails both. The verdict changes what serves (2.):
   a challenger that fails never replaces a champion that passed; while no model has passed, the
   best one available serves, and the checks stay red until one passes. Gold, the forecast and
   the review queue are written either way; what may be written per posting is decided by its
   own precision bar (`classification/per_posting_policy.py`).
4. **Count again, or keep the count's correction?** (`recount_decision`) The postings without a
   category are counted with a method (PCC, or PACC under a prior shift) and a correction of
   their probabilities (one weight per category) estimated on all of them. With the same model
   version, calibration, per-posting policy and table layout, and while fewer than
   `RECOUNT_AT_CHANGE` (1 %) of the postings without a category they were estimated on are new,
   changed or gone since, the method and the correction are kept: only the silver postings
   that are new, changed or gone are imputed again and replaced, and the counts are the kept
   ones plus theirs, minus those of the postings replaced. Otherwise every posting is imputed
   and counted again.

Plain values in, a decision and its reason out: the asset does the I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WORSE_BY = 0.01
COMPARED = ("macro_f1", "accuracy")
# A model is reused while fewer than this share of the labelled postings it learned from are
# new, changed or gone: a page of 20 new postings every few minutes should not cost a training
# (minutes at 100,000 postings). `careerpulse_retrain` retrains on any change.
RETRAIN_AT_LABELLED_CHANGE = 0.05
# The count's correction is estimated again once this share of the postings it was estimated on
# are new, changed or gone. Adding a share ε of postings moves the mean probabilities a
# quantifier corrects for by at most 2ε in L1, 0.02 here, against an expected L1 error of the
# category shares of 0.148 at 400,000 postings and more at smaller sizes (BENCHMARKS.md); a
# page of 20 new postings among 280,000 without a category is 0.007 %, and counting all of
# them again cost most of an incremental run at that size (issue 29).
RECOUNT_AT_CHANGE = 0.01


@dataclass(frozen=True)
class GateBars:
    """The accuracy and macro-F1 (0 to 1) a model must reach at full coverage to pass the
    quality gate: the settings CAREERPULSE_MIN_ACCURACY / CAREERPULSE_MIN_MACRO_F1, or the
    checks' run config."""

    accuracy: float
    macro_f1: float

    def describe(self) -> str:
        return f"accuracy ≥ {self.accuracy:.2f} and macro-F1 ≥ {self.macro_f1:.2f}"


@dataclass(frozen=True)
class ModelFacts:
    """What the registry says of one trained version, measured against today's labels."""

    version: str  # models:/careerpulse-knn-category/N
    same_settings: bool  # today's grid, taxonomy and training code
    labelled_changed: int  # labelled postings new, changed or gone since it was trained
    labelled_changed_share: float
    reviewer_labels_changed: int = 0  # reviewers' labels new or changed since it was trained
    drift_flagged: bool = False  # the latest category_drift check failed on this version
    # Its training judged it not worse than the champion (MLflow tag careerpulse.promotion).
    promoted_by_its_training: bool = False
    # Why the labelled rows it was trained on could not be read (its artifacts deleted, a home
    # restored without mlartifacts/), or None: then nothing can be said of what changed.
    unreadable: str | None = None


@dataclass(frozen=True)
class TrainingDecision:
    train: bool
    reason: str
    reuse: ModelFacts | None = None  # the version to serve when not training


def _changes(facts: ModelFacts) -> str:
    if not facts.labelled_changed:
        return f"labels unchanged since {facts.version}"
    return (f"{facts.labelled_changed} labelled postings changed since {facts.version} "
            f"({facts.labelled_changed_share:.1%})")


def _drift_note(facts: ModelFacts) -> str:
    if not facts.drift_flagged:
        return ""
    return ("; category drift was flagged on it: labels of recent postings answer it "
            "(`make review`), a retraining on the same labels would not")


def training_decision(
    champion: ModelFacts | None,
    latest: ModelFacts | None,
    force: bool = False,
    retrain_at: float = RETRAIN_AT_LABELLED_CHANGE,
) -> TrainingDecision:
    """`force` (the job config `force_retrain`) trains whatever share of the labels changed, but
    never on the very labels and code of the model to reuse: that training would learn the same
    model (see 1. above)."""
    candidate = champion or latest
    if candidate is None:
        return TrainingDecision(True, "no model yet")
    if not candidate.same_settings:
        return TrainingDecision(
            True, f"the grid, taxonomy or training code changed since {candidate.version}"
        )
    if candidate.unreadable:
        return TrainingDecision(
            True, f"the labelled postings {candidate.version} was trained on cannot be read "
            f"from its MLflow artifacts ({candidate.unreadable}): retraining (were they deleted, "
            "or the home restored without its mlartifacts folder?)"
        )
    if not candidate.labelled_changed:
        forced = ": a training (forced) would learn the same model" if force else ": reusing it"
        return TrainingDecision(False, _changes(candidate) + forced + _drift_note(candidate),
                                candidate)
    challenger = latest if (latest is not None and latest.version != candidate.version
                            and latest.same_settings) else None
    if challenger is not None and challenger.promoted_by_its_training and (
            not challenger.labelled_changed):
        # Its run ended (killed, or another run overtook it) between training and the handover
        # in imputed_silver: it is served now, and handed over once the quality gate passes.
        return TrainingDecision(
            False, f"{_changes(candidate)}; challenger {challenger.version}, trained on these very "
            "labels, passed promotion but its run ended before it was made champion: serving it "
            "(champion once the quality gate passes)", challenger,
        )
    if challenger is not None and not challenger.labelled_changed:
        return TrainingDecision(
            False, f"{_changes(candidate)}, but challenger {challenger.version} was trained on "
            "these very labels and not promoted: keeping the champion", candidate,
        )
    if force:
        return TrainingDecision(True, "forced by config")
    if candidate.reviewer_labels_changed:
        return TrainingDecision(
            True, f"{candidate.reviewer_labels_changed} reviewer labels new or changed since "
            f"{candidate.version}: learning them"
        )
    if candidate.labelled_changed_share >= retrain_at:
        if challenger is not None and challenger.labelled_changed_share < retrain_at:
            return TrainingDecision(
                False, f"{_changes(candidate)}, but challenger {challenger.version} was trained "
                "on about these labels and not promoted: keeping the champion", candidate,
            )
        return TrainingDecision(
            True, f"{_changes(candidate)}: retraining from {retrain_at:.0%}"
        )
    return TrainingDecision(
        False, f"{_changes(candidate)}, under {retrain_at:.0%}: reusing it"
        + _drift_note(candidate), candidate,
    )


@dataclass(frozen=True)
class GateVerdict:
    """The quality gate on a model's full-coverage estimate: `accuracy` and `macro_f1` each
    against its bar (NaN macro-F1, no category judged, fails: nothing shows the model is good)."""

    accuracy_passed: bool
    macro_f1_passed: bool
    reason: str
    bars: GateBars | None = None  # what it was judged against (None: nothing to judge)

    @property
    def passed(self) -> bool:
        return self.accuracy_passed and self.macro_f1_passed


def gate_verdict(estimate: dict[str, float], bars: GateBars) -> GateVerdict:
    """`estimate`: accuracy and macro_f1 (with `_ci_low` / `_ci_high`) at full coverage, nested
    out-of-fold."""
    accuracy, macro = estimate.get("accuracy", float("nan")), estimate.get("macro_f1", float("nan"))
    accuracy_passed = not math.isnan(accuracy) and accuracy >= bars.accuracy
    macro_passed = not math.isnan(macro) and macro >= bars.macro_f1
    failed = [name for name, ok in (("accuracy", accuracy_passed), ("macro-F1", macro_passed))
              if not ok]
    figures = (f"accuracy {accuracy:.3f}, macro-F1 {macro:.3f} at full coverage, nested "
               f"out-of-fold ({bars.describe()})")
    return GateVerdict(accuracy_passed, macro_passed,
                       f"passes: {figures}" if not failed else
                       f"fails on {' and '.join(failed)}: {figures}", bars)


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def promotion_decision(
    champion_version: str | None,
    challenger: dict[str, float],
    champion: dict[str, float] | None = None,
    difference_intervals: dict[str, tuple[float, float]] | None = None,
    challenger_passes: bool = True,
    champion_passes: bool = False,
) -> PromotionDecision:
    """`challenger` and `champion` are out-of-fold metrics on the same postings and folds;
    `difference_intervals` the paired 95 % intervals of challenger minus champion;
    `challenger_passes` / `champion_passes` their quality gates on these postings. A challenger
    is promoted when it is not worse and either passes the gate or the champion does not (the
    best model available serves while none passes); one that fails never replaces a champion
    that passes."""
    gate = "passes the quality gate" if challenger_passes else "fails the quality gate"
    if champion_version is None or champion is None or difference_intervals is None:
        return PromotionDecision(
            True, f"no champion yet: becomes champion ({gate}"
            + ("" if challenger_passes else "; it serves as the best model available, and the "
               "checks stay red until a model passes") + ")"
        )
    lines, worse = [], []
    for name in COMPARED:
        difference = challenger[name] - champion[name]
        low, high = difference_intervals[name]
        lines.append(f"{name} {challenger[name]:.3f} vs {champion[name]:.3f} "
                     f"({difference:+.3f}, 95 % interval {low:+.3f} to {high:+.3f})")
        if difference < -WORSE_BY or high < 0:
            worse.append(name)
    figures = "; ".join(lines)
    if worse:
        return PromotionDecision(
            False, f"worse than champion {champion_version} on the same postings "
            f"({', '.join(worse)}): {figures}"
        )
    if not challenger_passes and champion_passes:
        return PromotionDecision(
            False, f"it {gate} and champion {champion_version} passes it on the same postings: "
            f"a model that fails never replaces one that passes; {figures}"
        )
    why = ("" if challenger_passes else
           f"; it {gate}, as does champion {champion_version}: the best model available serves")
    return PromotionDecision(
        True, f"not worse than champion {champion_version} on the same postings{why}: {figures}"
    )


@dataclass(frozen=True)
class CountFacts:
    """What the kept count of the postings without a category was made with (the table
    silver.unlabelled_mix)."""

    model_version: str | None
    min_precision: float | None  # the precision bar of the categories written with it
    estimated_on: int  # postings without a category its correction was estimated on
    changed_since: int  # of those, or postings without a category now, new, changed or gone since
    # The calibration, per-posting policy and table layout it was made with
    # (serving.counting_fingerprint): code or a calibration made again change it.
    fingerprint: str = ""


@dataclass(frozen=True)
class RecountDecision:
    recount: bool
    reason: str
    changed_since: int  # what the count kept after this run has changed since (0: recounted)


def recount_decision(kept: CountFacts | None, model_version: str | None, min_precision: float,
                     changed: int, fingerprint: str = "",
                     recount_at: float = RECOUNT_AT_CHANGE) -> RecountDecision:
    """Impute and count every posting again, or only the silver postings new, changed or gone
    since the table was written, with the kept count's method and correction. `changed`: how
    many of those are or were without a category; `model_version`: the model in service (None:
    none, every posting Unclassified); `min_precision`: the precision bar of what is written per
    posting now; `fingerprint`: the calibration, policy and layout now (CountFacts)."""
    def again(why: str) -> RecountDecision:
        return RecountDecision(True, f"{why}: every posting imputed and counted again", 0)

    if model_version is None:
        return again("no model in service")
    if kept is None:
        return again("no count kept to update (the first imputation, none of this model's "
                     "categories, or one written by older code)")
    if kept.model_version != model_version:
        return again(f"the model in service is {model_version}, the count kept was made with "
                     f"{kept.model_version}")
    if kept.min_precision != min_precision:
        return again(f"the precision bar is {min_precision:.2f}, the categories kept were "
                     f"written for {kept.min_precision}")
    if kept.fingerprint != fingerprint:
        return again(f"the calibration, per-posting policy or table layout of {model_version} "
                     "differ from those the count kept was made with")
    since = kept.changed_since + changed
    share = since / kept.estimated_on if kept.estimated_on else (1.0 if since else 0.0)
    figures = (f"{since:,} postings without a category new, changed or gone since the count's "
               f"correction was estimated on {kept.estimated_on:,} ({share:.2%})")
    if share >= recount_at:
        return again(f"{figures}, {recount_at:.0%} or more")
    return RecountDecision(False, f"{figures}, under {recount_at:.0%}: its method and correction "
                           "kept, only the postings new, changed or gone imputed again", since)
