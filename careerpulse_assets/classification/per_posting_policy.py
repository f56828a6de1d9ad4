"""Which postings get a category written: selective classification with one threshold.

Counting does not need this (`series/quantification.py` counts every posting by its probabilities);
a user reading one posting does. A posting without a category gets its most probable category
written (`imputed`) when that category's calibrated probability (corrected for the estimated
prior shift) reaches one **threshold**; the others stay `Unclassified`. This is classification
with a reject option (Chow 1970; Geifman and El-Yaniv 2017), the way occupational autocoders
route records they cannot code to people.

- **The threshold** is the lowest calibrated confidence at which the out-of-fold predictions
  written are right at least `min_precision` of the time (CAREERPULSE_MIN_PRECISION, 0.90), as
  the lower end of a 90 % Wilson interval (so a threshold met only by luck on few postings is
  not chosen): the largest coverage whose precision is shown to reach the bar; never below 0.5
  (`MORE_LIKELY_RIGHT`: no posting gets a category it is more likely not in). No threshold
  reaches it: nothing is written. Equal confidences are written together.
- **A category is withheld** only when its own written predictions are clearly below the bar:
  the upper end of their 95 % Wilson interval is under it. A category with few predictions is
  not withheld on a guess; one written right 4 times in 10 is. The threshold is then chosen
  again without it, until the two agree.
- **Its estimate is nested**: each outer fold's threshold and withheld categories are chosen on
  the other folds' predictions and applied to its own; precision and coverage with 95 %
  bootstrap intervals over postings.

The precision is estimated on the labelled postings' mix: where the postings without a category
are of another mix (a prior shift), it does not carry over (on the shared postings with Dirichlet-
drawn mixes, 0.73 right at coverage 0.36; BENCHMARKS.md). Raising the threshold until the written
postings' own shift-corrected probabilities promise the bar was tried and did not help there
(0.72 at 0.27): the counts, not the per-posting categories, are what holds under a shift.

Both the threshold and the estimate move gradually with the data: a weaker model writes fewer
postings at the same precision, never nothing-or-everything on a change in the fourth decimal
(the rule before issue 26 served categories by their F1 and then required the nested estimate to
clear the bars again, and fell from 30 of 30 postings written to 0 of 36 when 30 postings were
added).

No Dagster here: plain arrays in, plain values out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from .evaluation import BOOTSTRAP_RESAMPLES
from .out_of_fold import BOOTSTRAP_CHUNK, RANDOM_STATE

DEFAULT_MIN_PRECISION = 0.90
# A category is never written on a posting whose probability says it is more likely wrong than
# right, whatever the others' precision allows: the out-of-fold precision is an average over the
# labelled mix, and under a shift the least sure postings are the first to be wrong (on the
# shared postings without a category the threshold fell to 0 and "Ranger" and "Front Desk
# Clerk" were written as Software Engineering at 0.39 and 0.46).
MORE_LIKELY_RIGHT = 0.5
# One-sided 95 %: the lower end of a two-sided 90 % Wilson interval.
THRESHOLD_INTERVAL_ALPHA = 0.10
# Two-sided 95 % for withholding a category.
WITHHOLD_INTERVAL_ALPHA = 0.05


def _wilson(right: np.ndarray, written: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    low, high = proportion_confint(right, np.maximum(written, 1), alpha=alpha, method="wilson")
    return np.where(written > 0, low, 0.0), np.where(written > 0, high, 1.0)


def choose_threshold(confidence: np.ndarray, right: np.ndarray, min_precision: float,
                     weight: float = 1.0) -> float | None:
    """The lowest confidence t ≥ MORE_LIKELY_RIGHT such that the predictions with confidence ≥ t
    (equal ones together) are right `min_precision` of the time or more at the lower end of
    their 90 % Wilson interval; MORE_LIKELY_RIGHT itself when that is every one of them (none
    below showed the bar missed); None when no t is. `weight`: what one prediction counts as (1
    / repeats when every posting was predicted once per repeat: the interval is over
    postings, not over their repeated predictions)."""
    eligible = confidence >= MORE_LIKELY_RIGHT
    confidence, right = confidence[eligible], right[eligible]
    if not len(confidence):
        return None
    order = np.argsort(-confidence, kind="stable")
    sorted_confidence = confidence[order]
    ends = np.flatnonzero(np.r_[sorted_confidence[1:] != sorted_confidence[:-1], True])
    right_so_far = np.cumsum(right[order])[ends]
    low, _ = _wilson(right_so_far * weight, (ends + 1) * weight, THRESHOLD_INTERVAL_ALPHA)
    meets = np.flatnonzero(low >= min_precision)
    if not len(meets):
        return None
    if meets[-1] == len(ends) - 1:
        return MORE_LIKELY_RIGHT
    return float(sorted_confidence[ends[meets[-1]]])


def withheld_categories(predicted: np.ndarray, right: np.ndarray, written: np.ndarray,
                        min_precision: float, weight: float = 1.0) -> dict[str, float]:
    """The categories whose written predictions are clearly under `min_precision`: the upper end
    of their 95 % Wilson interval below it. Maps each to that upper end."""
    out = {}
    names = predicted.astype(str, copy=False)
    for category in np.unique(names[written]):
        mine = written & (names == category)
        _, high = _wilson(np.array([right[mine].sum() * weight]),
                          np.array([mine.sum() * weight]), WITHHOLD_INTERVAL_ALPHA)
        if high[0] < min_precision:
            out[category] = float(high[0])
    return out


@dataclass(frozen=True)
class Rule:
    """Write a posting's most probable category when its probability is ≥ `threshold` (None:
    never) and the category is not `withheld`."""

    threshold: float | None
    withheld: dict[str, float] = field(default_factory=dict)

    def writes(self, predicted: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        if self.threshold is None:
            return np.zeros(len(confidence), dtype=bool)
        return (confidence >= self.threshold) & ~np.isin(
            np.asarray(predicted).astype(str, copy=False), list(self.withheld))


RULE_ROUNDS = 10
# A category is judged hopeless on its most confident predictions only when they are this many.
HOPELESS_MIN_PREDICTIONS = 20


def hopeless_categories(predicted: np.ndarray, confidence: np.ndarray, right: np.ndarray,
                        min_precision: float, weight: float = 1.0) -> dict[str, float]:
    """The categories clearly under `min_precision` at every confidence: the upper end of the
    95 % Wilson interval of their predictions with confidence ≥ t is under it for every t that
    leaves HOPELESS_MIN_PREDICTIONS or more of them. Maps each to its best upper end."""
    out = {}
    names = predicted.astype(str, copy=False)
    for category in np.unique(names):
        mine = names == category
        if mine.sum() * weight < HOPELESS_MIN_PREDICTIONS:
            continue
        order = np.argsort(-confidence[mine], kind="stable")
        hits = np.cumsum(right[mine][order]) * weight
        counts = np.arange(1, mine.sum() + 1) * weight
        enough = counts >= HOPELESS_MIN_PREDICTIONS
        _, high = _wilson(hits[enough], counts[enough], WITHHOLD_INTERVAL_ALPHA)
        if high.max() < min_precision:
            out[category] = float(high.max())
    return out


def choose_rule(predicted: np.ndarray, confidence: np.ndarray, right: np.ndarray,
                min_precision: float, weight: float = 1.0) -> Rule:
    """The threshold chosen on the predictions of the categories not withheld, and the
    categories withheld judged on every prediction at that threshold, until they agree; a
    category under the bar at every confidence (`hopeless_categories`) is withheld from the
    start, so that a weak category polluting every confidence level does not stop the others
    being written."""
    predicted = predicted.astype(str, copy=False)  # once: the rounds compare it many times
    withheld = hopeless_categories(predicted, confidence, right, min_precision, weight)
    for _ in range(RULE_ROUNDS):
        kept = ~np.isin(predicted, list(withheld))
        threshold = choose_threshold(confidence[kept], right[kept], min_precision, weight)
        # No threshold yet: the categories are judged on every prediction that may be written.
        judged_at = MORE_LIKELY_RIGHT if threshold is None else threshold
        again = withheld_categories(predicted, right, confidence >= judged_at, min_precision,
                                    weight)
        if threshold is None:
            again |= withheld
            if set(again) == set(withheld):
                return Rule(None, withheld)
        if set(again) == set(withheld):
            return Rule(threshold, again)
        withheld = again
    kept = ~np.isin(predicted, list(withheld))
    return Rule(choose_threshold(confidence[kept], right[kept], min_precision, weight),
                withheld)


@dataclass(frozen=True)
class ImputationPolicy:
    """What may be written per posting, and how right it is estimated to be.

    `threshold`, `withheld`: the rule chosen on every out-of-fold prediction (calibrated,
    nested); `estimate`: precision and coverage of what the rule writes, nested (each fold's
    rule chosen without it), each with `_ci_low` / `_ci_high` (95 %), on `postings` labelled
    postings; `reason`: the policy in words."""

    min_precision: float
    threshold: float | None
    withheld: dict[str, float]
    estimate: dict[str, float]
    postings: int
    reason: str

    @property
    def rule(self) -> Rule:
        return Rule(self.threshold, self.withheld)

    @property
    def imputes(self) -> bool:
        return self.threshold is not None

    def summary(self) -> dict:
        return asdict(self)

    @classmethod
    def from_summary(cls, summary: dict) -> ImputationPolicy | None:
        """None when it was written by a policy of another kind (chosen again then)."""
        if "min_precision" not in summary:
            return None
        return cls(**summary)


def _bootstrap(right: np.ndarray, written: np.ndarray, resamples: int
               ) -> dict[str, tuple[float, float]]:
    """95 % intervals of precision and coverage over postings resampled with replacement
    (repeats × postings arrays, the same postings resampled in every repeat)."""
    n = right.shape[1]
    rng = np.random.default_rng(RANDOM_STATE)
    precisions, coverages = [], []
    for start in range(0, resamples, BOOTSTRAP_CHUNK):
        picks = rng.integers(0, n, (min(BOOTSTRAP_CHUNK, resamples - start), n))
        written_count = written[:, picks].sum(axis=(0, 2))
        right_count = (right & written)[:, picks].sum(axis=(0, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            precisions.append(right_count / written_count)
        coverages.append(written_count / (n * right.shape[0]))
    precision, coverage = np.concatenate(precisions), np.concatenate(coverages)

    def interval(values):
        if np.isnan(values).all():
            return float("nan"), float("nan")
        return float(np.nanpercentile(values, 2.5)), float(np.nanpercentile(values, 97.5))

    return {"precision": interval(precision), "coverage": interval(coverage)}


def _describe(min_precision: float, threshold: float | None, withheld: dict[str, float],
              estimate: dict[str, float]) -> str:
    if threshold is None:
        return (f"no confidence threshold writes out-of-fold predictions right ≥ "
                f"{min_precision:.2f} of the time: no category is written per posting (the "
                "counts still include every posting)")
    postings = f"the most probable category where its probability is ≥ {threshold:.2f}"
    held = (f", except {', '.join(f'{c} (right at most {h:.2f} of the time)' for c, h in withheld.items())}"
            if withheld else "")
    return (f"writes {postings}{held}; estimated nested: right {estimate['precision']:.3f} of "
            f"the time (95 % interval {estimate['precision_ci_low']:.3f}–"
            f"{estimate['precision_ci_high']:.3f}) at coverage {estimate['coverage']:.1%}")


def imputation_policy(calibrated: np.ndarray, truth: np.ndarray, fold: np.ndarray,
                      classes: np.ndarray, min_precision: float = DEFAULT_MIN_PRECISION,
                      resamples: int = BOOTSTRAP_RESAMPLES) -> ImputationPolicy:
    """`calibrated`: repeats × postings × `classes` calibrated out-of-fold probabilities
    (nested); `truth`: each posting's category (possibly one not in `classes`: always wrong);
    `fold`: repeats × postings, the outer fold that predicted it."""
    classes = np.asarray(classes).astype(str)
    predicted = classes[calibrated.argmax(axis=2)]
    confidence = calibrated.max(axis=2)
    right = predicted.astype(str) == np.asarray(truth).astype(str)[None, :]
    # Every posting was predicted once per repeat: each prediction counts as 1 / repeats of a
    # posting, so the intervals rest on postings (a reviewer found 16 labels passing as 48).
    rule = choose_rule(predicted.ravel(), confidence.ravel(), right.ravel(), min_precision,
                       weight=1 / predicted.shape[0])
    written = np.zeros(predicted.shape, dtype=bool)
    for r in range(predicted.shape[0]):
        for f in np.unique(fold[r]):
            inside, others = fold[r] == f, fold[r] != f
            fold_rule = choose_rule(predicted[r, others], confidence[r, others],
                                    right[r, others], min_precision)
            written[r, inside] = fold_rule.writes(predicted[r, inside], confidence[r, inside])
    intervals = _bootstrap(right, written, resamples)
    count = written.sum()
    estimate = {
        "precision": float((right & written).sum() / count) if count else float("nan"),
        "precision_ci_low": intervals["precision"][0],
        "precision_ci_high": intervals["precision"][1],
        "coverage": float(written.mean()),
        "coverage_ci_low": intervals["coverage"][0],
        "coverage_ci_high": intervals["coverage"][1],
    }
    return ImputationPolicy(min_precision, rule.threshold, rule.withheld, estimate,
                            predicted.shape[1],
                            _describe(min_precision, rule.threshold, rule.withheld, estimate))


# Below this many postings written and later labelled by a reviewer, the realised precision is
# reported but not judged: 20 give a 95 % Wilson interval about ±0.15 wide at 0.9.
MIN_REALISED_POSTINGS = 20


@dataclass(frozen=True)
class RealisedPrecision:
    """How often categories written per posting agreed with what reviewers later labelled them:
    `right` of `postings`, with a 95 % Wilson interval. Reviewers label the postings the review
    queue hands out first, the least sure ones, so this is a pessimistic sample."""

    postings: int
    right: int
    low: float
    high: float

    @property
    def precision(self) -> float:
        return self.right / self.postings if self.postings else float("nan")

    @property
    def judged(self) -> bool:
        return self.postings >= MIN_REALISED_POSTINGS

    def clearly_below(self, min_precision: float) -> bool:
        """Judged, and the whole interval under the bar."""
        return self.judged and self.high < min_precision

    def describe(self) -> str:
        if not self.postings:
            return "no category written per posting has been labelled by a reviewer yet"
        return (f"reviewers' labels agreed with {self.right} of the {self.postings} categories "
                f"written on the postings they labelled ({self.precision:.2f}, 95 % interval "
                f"{self.low:.2f}–{self.high:.2f})")


def realised_precision(written: np.ndarray, labelled: np.ndarray) -> RealisedPrecision:
    """`written`: the category written on each posting a reviewer later labelled; `labelled`:
    the reviewer's category (equal lengths)."""
    written, labelled = np.asarray(written).astype(str), np.asarray(labelled).astype(str)
    right, n = int((written == labelled).sum()), len(written)
    low, high = _wilson(np.array([right]), np.array([n]), WITHHOLD_INTERVAL_ALPHA)
    return RealisedPrecision(n, right, float(low[0]), float(high[0]))
