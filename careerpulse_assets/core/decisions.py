"""The classifier's two decisions, made here and only here, each with its reason.

1. **Train or reuse?** (`training_decision`) The model to reuse is the champion (the registered
   version with the MLflow alias `champion`, the one in service), or while there is none the
   newest trained version. It is reused unless a training was forced; its grid, taxonomy or
   training code changed; `retrain_at` (5 %) or more of the labelled postings it learned from
   are new, changed or gone; or category drift was flagged on it and it was not itself trained
   because of drift (retraining on the same labels helps once at most). A challenger already
   trained on about these labels (under `retrain_at` changed since) and not promoted is not
   trained again: the champion stays, and the reason says so.
2. **Promote the challenger?** (`promotion_decision`) Both recipes (the challenger's selection,
   the champion's settings) are scored out-of-fold on today's labelled postings, on the same
   folds and bootstrap resamples. The challenger is *worse* when its macro-F1 or accuracy is
   lower than the champion's by more than `WORSE_BY` (0.01), or lower with the whole paired 95 %
   interval of the difference below 0. A challenger that is not worse is promoted once the
   quality gate passes; the first model is promoted when it passes the gate.

Plain values in, a decision and its reason out: the asset does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

WORSE_BY = 0.01
COMPARED = ("macro_f1", "accuracy")


@dataclass(frozen=True)
class ModelFacts:
    """What the registry says of one trained version, measured against today's labels."""

    version: str  # models:/careerpulse-knn-category/N
    same_settings: bool  # today's grid, taxonomy and training code
    labelled_changed: int  # labelled postings new, changed or gone since it was trained
    labelled_changed_share: float
    retrained_for_drift: bool
    drift_flagged: bool  # the latest category_drift check failed on this version


@dataclass(frozen=True)
class TrainingDecision:
    train: bool
    reason: str
    reuse: ModelFacts | None = None  # the version to serve when not training
    for_drift: bool = False  # a training because category drift was flagged


def _changes(facts: ModelFacts) -> str:
    if not facts.labelled_changed:
        return f"labels unchanged since {facts.version}"
    return (f"{facts.labelled_changed} labelled postings changed since {facts.version} "
            f"({facts.labelled_changed_share:.1%})")


def training_decision(
    champion: ModelFacts | None,
    latest: ModelFacts | None,
    force: bool = False,
    retrain_at: float = 0.05,
) -> TrainingDecision:
    if force:
        return TrainingDecision(True, "forced by config")
    candidate = champion or latest
    if candidate is None:
        return TrainingDecision(True, "no model yet")
    if not candidate.same_settings:
        return TrainingDecision(
            True, f"the grid, taxonomy or training code changed since {candidate.version}"
        )
    # A challenger on about today's labels that was not promoted: training again gives it again.
    judged = (
        latest if latest is not None and latest.version != candidate.version
        and latest.same_settings and latest.labelled_changed_share < retrain_at else None
    )
    if candidate.labelled_changed_share >= retrain_at:
        if judged is not None:
            return TrainingDecision(
                False, f"{_changes(candidate)}, but challenger {judged.version} was trained on "
                "these labels and not promoted: keeping the champion", candidate,
            )
        return TrainingDecision(
            True, f"{_changes(candidate)}: retraining from {retrain_at:.0%}"
        )
    if candidate.drift_flagged:
        if candidate.retrained_for_drift:
            return TrainingDecision(
                False, f"category drift persists on {candidate.version}, itself trained because "
                "of drift: the same labels cannot help; label recent postings", candidate,
            )
        if judged is not None and judged.retrained_for_drift:
            return TrainingDecision(
                False, f"category drift persists; challenger {judged.version}, retrained for it, "
                "was not promoted: label recent postings", candidate,
            )
        return TrainingDecision(
            True, f"category drift was flagged on {candidate.version}", for_drift=True
        )
    return TrainingDecision(
        False, f"{_changes(candidate)}, under {retrain_at:.0%}: reusing it", candidate
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
