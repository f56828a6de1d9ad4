"""The classifier's two decisions, made here and only here, each with its reason.

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
   interval of the difference below 0. A challenger that is not worse is promoted once the
   quality gate passes; the first model is promoted when it passes the gate.

3. **What may the model impute?** (`imputation_decision`) A posting is imputed when its
   confidence reaches the threshold chosen on the out-of-fold predictions for the bars and its
   predicted category is served (a judged category only when its own F1 meets the macro-F1
   bar: `selective.py`), and only if the nested estimate of what that policy writes meets the
   bars too; otherwise nothing is imputed (every posting without a category is counted as
   `Unclassified`), and the reason gives the figures and names the categories left out.

Plain values in, a decision and its reason out: the asset does the I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WORSE_BY = 0.01
COMPARED = ("macro_f1", "accuracy")


@dataclass(frozen=True)
class Bars:
    """The accuracy and macro-F1 (0 to 1) the imputations written must reach: the settings
    CAREERPULSE_MIN_ACCURACY / CAREERPULSE_MIN_MACRO_F1, or the checks' run config."""

    accuracy: float
    macro_f1: float

    def met_by(self, metrics: dict[str, float], macro_judged: bool = True) -> bool:
        """NaN (nothing written) meets no bar; macro-F1 is left out when no category has
        postings enough to judge it (`macro_judged` False)."""
        met = metrics["accuracy"] >= self.accuracy
        if macro_judged:
            met = met and metrics["macro_f1"] >= self.macro_f1
        return bool(met)

    def describe(self) -> str:
        return f"accuracy ≥ {self.accuracy:.2f} and macro-F1 ≥ {self.macro_f1:.2f}"


@dataclass(frozen=True)
class ImputationDecision:
    threshold: float | None  # impute when confidence >= threshold; None: nothing
    reason: str


def _written_figures(metrics: dict[str, float], macro_judged: bool = True) -> str:
    if math.isnan(metrics["accuracy"]):
        return "nothing would be written"
    macro = metrics["macro_f1"]
    if not math.isnan(macro):
        macro_text = f"macro-F1 {macro:.3f}"
    elif macro_judged:  # a category served, but by no policy chosen without its postings
        macro_text = "macro-F1 not estimated (a category served by none of them)"
    else:
        macro_text = "macro-F1 not judged"
    return (f"accuracy {metrics['accuracy']:.3f}, {macro_text}, "
            f"coverage {metrics['coverage']:.1%}")


def _what(threshold: float, served: int, left_out: dict[str, float], bar: float) -> str:
    postings = "every posting" if threshold == 0 else f"postings with confidence ≥ {threshold:.2f}"
    if not left_out:
        return f"{postings} (all {served} categories it learned)"
    named = ", ".join(f"{name} {f1:.2f}" for name, f1 in left_out.items())
    return (f"{postings} predicted in one of {served} categories, not in {named} (F1 under "
            f"{bar:.2f}: label them)")


def imputation_decision(
    bars: Bars,
    threshold: float | None,
    nested: dict[str, float] | None,
    served: int = 0,
    left_out: dict[str, float] | None = None,
    macro_judged: bool = True,
) -> ImputationDecision:
    """`threshold`: the confidence chosen on the out-of-fold predictions for `bars`, with its
    `served` categories (how many) and the judged ones `left_out` (name: F1 at the threshold);
    None when no threshold reaches the accuracy bar. `nested`: accuracy, macro_f1 (over the
    served judged categories; NaN when none is, `macro_judged` False) and coverage of what it
    writes, each posting's threshold and categories chosen without it."""
    nothing = "nothing is imputed: every posting without a category is Unclassified"
    if threshold is None or nested is None:
        return ImputationDecision(
            None, f"no confidence threshold gives out-of-fold imputations with accuracy ≥ "
            f"{bars.accuracy:.2f}, even in the categories whose F1 reaches "
            f"{bars.macro_f1:.2f}: {nothing}"
        )
    what = _what(threshold, served, left_out or {}, bars.macro_f1)
    figures = _written_figures(nested, macro_judged)
    if not bars.met_by(nested, macro_judged):
        return ImputationDecision(
            None, f"imputing {what} meets {bars.describe()} on the out-of-fold predictions it "
            f"was chosen on, but not nested (each fold's threshold and categories chosen "
            f"without it: {figures}): {nothing}"
        )
    unjudged = "" if macro_judged else (
        "; macro-F1 not judged: no category with postings enough to estimate its F1 is served")
    return ImputationDecision(
        threshold, f"imputes {what}: what it writes is estimated nested at {figures} "
        f"({bars.describe()}){unjudged}"
    )


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
    retrain_at: float = 0.05,
) -> TrainingDecision:
    candidate = champion or latest
    if candidate is None:
        return TrainingDecision(True, "no model yet")
    if not candidate.same_settings:
        return TrainingDecision(
            True, f"the grid, taxonomy or training code changed since {candidate.version}"
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
class PromotionDecision:
    promote: bool
    reason: str


def promotion_decision(
    champion_version: str | None,
    challenger: dict[str, float],
    champion: dict[str, float] | None = None,
    difference_intervals: dict[str, tuple[float, float]] | None = None,
) -> PromotionDecision:
    """`challenger` and `champion` are out-of-fold metrics on the same postings and folds;
    `difference_intervals` the paired 95 % intervals of challenger minus champion."""
    if champion_version is None or champion is None or difference_intervals is None:
        return PromotionDecision(
            True, "no champion yet: becomes champion when it passes the quality gate"
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
    return PromotionDecision(
        True, f"not worse than champion {champion_version} on the same postings: {figures}"
    )
