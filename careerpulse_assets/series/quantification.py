"""How many postings of each category are among the postings without one: quantification.

Counting the postings a classifier assigns to each category (classify and count, CC) is biased
whenever the mix of the postings counted differs from the mix the classifier learned from, and
the postings the API sends without a category do differ: on the shared postings the labelled
ones are 86 % Software Engineering, while the model's guesses for the 172 without a category are
mostly Healthcare and Business Operations. The methods here (Forman 2008, "Quantifying counts
and costs via classification"; QuaPy implements them and is used for each):

- **CC**: count the top category; **PCC**: sum the calibrated class probabilities (Bella et al.
  2010); **ACC** / **PACC**: CC / PCC corrected by the misclassification rates measured
  out-of-fold; **EMQ**: the class prior of the postings counted found by expectation
  maximisation, each posting's probabilities corrected for it (Saerens, Latinne and
  Decaestecker 2002).

**The method used** is PCC unless the postings without a category show a prior shift, then
PACC. With no shift, PCC on calibrated probabilities is unbiased and has the least variance;
PACC and EMQ correct a shift but pay variance for it (on the shared postings with a quarter of
the labels hidden at random, L1 error of the category shares 0.115 for PCC against 0.161 for
PACC; with the hidden postings drawn in a Dirichlet mix, 0.671 against 0.456: BENCHMARKS.md
"Counts of the postings without a category", where this choice was measured). EMQ did as well
as PACC there, but on the real postings without a category it sent Software Engineering to
0.1 % (its likelihood runs away when they hold categories the labelled postings lack). All of
this assumes a prior shift: the postings without a category differ in their mix, not in kind.
Postings of a kind no labelled posting is are counted at the labelled mix (classification/serving.py). The shift test: the L1
distance between the mean calibrated probabilities of the postings without a category and those
of the labelled postings out-of-fold, against its 95th percentile over samples of the same size
drawn from the labelled postings (which have no shift by construction).

**Per posting**, the probabilities the counts sum are the calibrated ones, re-weighted by one
prior so that they add up to the method's estimate (Saerens et al.'s eq. 2.4, the prior found by
iterative proportional fitting: `matched`), so that each day's counts add up to the day's
postings and the totals to the method's estimate.

**Intervals** (90 %) of a count: its variance is the per-posting part Σ q(1 − q) (each posting is
in the category with probability q) plus a systematic part (σ_c × postings)², σ_c the method's
error for the category as a share of the postings counted, estimated out-of-fold (`CountModel`):
samples of labelled postings (each outer fold at its own mix and bootstrap resamples of it for
PCC, at Dirichlet-drawn mixes for PACC) counted by a model and calibration that never saw them,
σ_c the split-conformal 90 % quantile of what each sample needed (`share_errors`).

No Dagster here: plain arrays in, plain values out.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..classification.calibration import ScoresAsFeatures, calibrated, fit_calibration
from ..classification.out_of_fold import OutOfFold

METHODS = ("CC", "PCC", "ACC", "PACC", "EMQ")
NO_SHIFT_METHOD, SHIFT_METHOD = "PCC", "PACC"
MATCH_ITERATIONS = 200
MATCH_TOLERANCE = 1e-9
INTERVAL_Z = 1.645  # 90 % two-sided, normal
SHIFT_TEST_LEVEL = 0.95
SHIFT_TEST_SAMPLES = 400
# From this many postings the shift test's critical value comes from the normal approximation of
# its bootstrap (the central limit theorem): within the bootstrap's own Monte-Carlo spread from
# 20 postings on (test_quantification), in milliseconds where the bootstrap took 1.1 s at 20,000
# reference rows (its draws cost reference rows x samples).
SHIFT_TEST_NORMAL_FROM = 1_000
# Samples per outer fold when the count error is estimated: at its own mix (the fold, then
# bootstrap resamples of it) and at Dirichlet-drawn mixes.
NATURAL_SAMPLES_PER_FOLD = 3
SHIFTED_SAMPLES_PER_FOLD = 3
INTERVAL_LEVEL = 0.90
RANDOM_STATE = 42


def prevalence(method: str, classes: np.ndarray, train_probabilities: np.ndarray,
               train_labels: np.ndarray, test_probabilities: np.ndarray) -> np.ndarray:
    """The share of each of `classes` among the postings whose (calibrated) probabilities are
    `test_probabilities` (postings × classes), by `method` (one of METHODS), its adjustment
    fitted on out-of-fold `train_probabilities` with their true `train_labels` (names among
    `classes`). Returns a vector summing to 1. ValueError for an unknown method."""
    from quapy.method.aggregative import ACC, CC, EMQ, PACC, PCC

    classes = np.asarray(classes)
    scores = ScoresAsFeatures(classes)
    train_labels = np.asarray(train_labels)
    # CC and ACC count each posting's most probable class; the others use the probabilities.
    quantifiers = {"CC": (CC, True, {}), "ACC": (ACC, True, {"val_split": None}),
                   "PCC": (PCC, False, {}), "PACC": (PACC, False, {"val_split": None}),
                   "EMQ": (EMQ, False, {"val_split": None})}
    if method not in quantifiers:
        raise ValueError(f"unknown quantification method {method!r}; expected one of {METHODS}")
    kind, crisp, options = quantifiers[method]
    if crisp:
        train_probabilities = classes[train_probabilities.argmax(axis=1)]
        test_probabilities = classes[test_probabilities.argmax(axis=1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # QuaPy warns about val_split with a fitted classifier
        quantifier = kind(scores, fit_classifier=False, **options)
        if method == "EMQ":
            quantifier.train_prevalence = class_shares(train_labels, classes)
        quantifier.aggregation_fit(train_probabilities, train_labels)
        return quantifier.aggregate(test_probabilities)


def class_shares(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The share of each of `classes` among `labels`."""
    labels = np.asarray(labels)
    return np.array([(labels == c).mean() for c in classes]) if len(labels) else np.zeros(len(classes))


def matched(probabilities: np.ndarray, train_prior: np.ndarray, shares: np.ndarray
            ) -> np.ndarray:
    """Per-posting probabilities (postings × classes) corrected by one class prior so that their
    mean is `shares` (a quantifier's estimate): `prior_corrected` with `matching_weights`. Rows
    sum to 1."""
    if not len(probabilities):
        return probabilities
    weights = matching_weights(probabilities, train_prior, shares)
    return prior_corrected(probabilities, np.ones_like(weights), weights)


def matching_weights(probabilities: np.ndarray, train_prior: np.ndarray, shares: np.ndarray
                     ) -> np.ndarray:
    """The per-class weights (one per class of `probabilities`, postings × classes) of Saerens et
    al.'s correction that make the corrected probabilities' mean `shares`: each class's weight
    rescaled by shares / current mean until they agree (iterative proportional fitting; the
    fixed point EMQ reaches when the estimate is its own). A class the estimate gives 0 gets
    weight 0; a posting whose every class gets 0 keeps its calibrated probabilities."""
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(train_prior > 0, shares / train_prior, 0.0)
    for _ in range(MATCH_ITERATIONS):
        mean = _corrected_mean(probabilities, weights)
        if np.abs(mean - shares).max() < MATCH_TOLERANCE:
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            weights = np.where(mean > 0, weights * shares / mean, 0.0)
    return weights


# Under this a row total's inverse, summed over a million rows, could overflow a float.
_SMALLEST_TOTAL = 1e-250


def _corrected_mean(probabilities: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """prior_corrected(probabilities, 1, weights).mean(axis=0) from two matrix-vector products
    (row totals, then the columns' weighted sums) instead of a corrected copy of the matrix: an
    iteration of `matched` over 280,000 postings × 25 categories went from a pass that wrote
    the whole matrix to two that only read it (issue 29; equal to 1e-12, tested)."""
    totals = probabilities @ weights
    kept = totals > 0
    if kept.any() and totals[kept].min() < _SMALLEST_TOTAL:
        # 1 / total would overflow (weights far apart after many iterations drive a row's total
        # toward 0): the corrected copy, whose ratios stay finite.
        return prior_corrected(probabilities, np.ones_like(weights), weights).mean(axis=0)
    inverse = np.divide(1.0, totals, out=np.zeros_like(totals), where=kept)
    summed = weights * (inverse @ probabilities) + probabilities[~kept].sum(axis=0)
    return summed / len(probabilities)


def prior_corrected(probabilities: np.ndarray, train_prior: np.ndarray,
                    prior: np.ndarray) -> np.ndarray:
    """Posterior probabilities (postings × classes) re-weighted from the class prior they were
    learned under to another one, each row renormalised (Saerens et al. 2002, eq. 2.4). A class
    with no training postings keeps weight 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(train_prior > 0, prior / train_prior, 0.0)
    corrected = probabilities * weights
    totals = corrected.sum(axis=1, keepdims=True)
    return np.divide(corrected, totals, out=probabilities.copy(), where=totals > 0)


def with_rare(probabilities: np.ndarray, rare_shares: np.ndarray, method: str) -> np.ndarray:
    """Probabilities over the learned classes extended by the categories too rare to learn: with
    no shift (PCC) each posting belongs to one of them as often as a labelled posting does (their
    shares `rare_shares`, the learned ones scaled down to make room); an adjusted method cannot
    tell their share under a shift, and gives them none."""
    if method == NO_SHIFT_METHOD and len(rare_shares):
        return np.hstack([probabilities * (1 - rare_shares.sum()),
                          np.tile(rare_shares, (len(probabilities), 1))])
    return np.hstack([probabilities, np.zeros((len(probabilities), len(rare_shares)))])


# Probabilities under this are floating-point residue of the corrections (5.8e-17 was seen): kept,
# they made days with no posting of a category count 1e-16 of one, and the forecast's scaled
# errors divide by that (a reviewer saw RMSSE 9.6e14).
NEGLIGIBLE = 1e-9


def without_noise(probabilities: np.ndarray) -> np.ndarray:
    """Probabilities under NEGLIGIBLE set to 0, rows renormalised to sum to 1."""
    cleaned = np.where(probabilities < NEGLIGIBLE, 0.0, probabilities)
    totals = cleaned.sum(axis=1, keepdims=True)
    return np.divide(cleaned, totals, out=probabilities.copy(), where=totals > 0)


@dataclass(frozen=True)
class ShiftTest:
    """Whether the mix of some postings differs from the labelled postings' beyond chance: the
    L1 distance `statistic` between their mean calibrated probabilities and the labelled
    postings' (out-of-fold), against its `critical` value (95th percentile) over samples of as
    many labelled postings."""

    statistic: float
    critical: float
    postings: int

    @property
    def shifted(self) -> bool:
        return self.statistic > self.critical

    def describe(self) -> str:
        verdict = "a prior shift" if self.shifted else "no prior shift"
        return (f"{verdict}: their mean calibrated probabilities are {self.statistic:.3f} (L1) "
                f"from the labelled postings', {'above' if self.shifted else 'within'} the "
                f"{self.critical:.3f} that {self.postings:,} labelled postings reach 95 % of the "
                "time")


def shift_test(reference: np.ndarray, probabilities: np.ndarray,
               samples: int = SHIFT_TEST_SAMPLES, seed: int = RANDOM_STATE) -> ShiftTest:
    """`reference`: calibrated out-of-fold probabilities of labelled postings (m × classes);
    `probabilities`: those of the postings tested (n × classes). The critical value is the
    95th percentile of the statistic over `samples` draws of n reference rows with
    replacement (the bootstrap); from SHIFT_TEST_NORMAL_FROM postings on, over `samples` draws
    of its normal approximation: the mean of n such rows is about N(reference mean, Σ / n), Σ
    the reference rows' covariance (central limit theorem)."""
    n = len(probabilities)
    center = reference.mean(axis=0)
    statistic = float(np.abs(probabilities.mean(axis=0) - center).sum()) if n else 0.0
    rng = np.random.default_rng(seed)
    if n >= SHIFT_TEST_NORMAL_FROM:
        covariance = np.atleast_2d(np.cov(reference, rowvar=False, ddof=0))  # 1 class: 1 × 1
        deviations = rng.multivariate_normal(np.zeros(len(center)), covariance, size=samples,
                                             method="eigh") / np.sqrt(n)
    else:
        draws = rng.multinomial(max(n, 1), np.full(len(reference), 1 / len(reference)),
                                size=samples)
        deviations = draws @ reference / max(n, 1) - center
    critical = float(np.quantile(np.abs(deviations).sum(axis=1), SHIFT_TEST_LEVEL))
    return ShiftTest(statistic, critical, n)


@dataclass(frozen=True)
class CountModel:
    """What counting needs from a trained model, all derived from its out-of-fold predictions:
    the categories too rare to learn (`rare_classes`) and their `rare_shares` among the labelled
    postings, the isotonic `calibration` of its class scores, the `train_prior` (shares of `classes` among
    the learnable labelled postings), `reference` (their calibrated out-of-fold probabilities,
    nested: each fold calibrated on the others; every repeat) with their `reference_labels`, for
    the shift test and the adjusted methods' fit, and per method its
    out-of-fold `share_error` σ_c per class (`share_errors`) and `expected_l1` (mean L1 error of the category
    shares over samples of `sample_postings` postings, at the labelled mix ("natural") and at
    Dirichlet-drawn mixes ("shifted"))."""

    classes: np.ndarray
    rare_classes: np.ndarray
    rare_shares: np.ndarray
    calibration: object | None
    train_prior: np.ndarray
    reference: np.ndarray
    reference_labels: np.ndarray
    share_error: dict[str, np.ndarray] = field(default_factory=dict)
    expected_l1: dict[str, dict[str, float]] = field(default_factory=dict)
    sample_postings: int = 0

    @property
    def counted_classes(self) -> np.ndarray:
        """The categories counts are given for: the learned ones, then the too rare."""
        return np.concatenate([np.asarray(self.classes), np.asarray(self.rare_classes)])

    def method_for(self, test: ShiftTest) -> str:
        return SHIFT_METHOD if test.shifted else NO_SHIFT_METHOD

    def expected_error(self, method: str) -> float:
        """The L1 error of the category shares expected for `method` where it is used: at the
        labelled mix for PCC, at shifted mixes for PACC (NaN when not estimated)."""
        kind = "shifted" if method == SHIFT_METHOD else "natural"
        return self.expected_l1.get(method, {}).get(kind, float("nan"))


def nested_calibrated(oof: OutOfFold) -> np.ndarray:
    """Repeats × postings × classes: each outer fold's class scores calibrated by a calibration
    fitted on the other folds' learnable postings of the same repeat (so no posting is
    calibrated on its own label); the scores themselves where the other folds hold fewer than 2
    categories."""
    out = np.zeros_like(oof.scores)
    for r in range(oof.scores.shape[0]):
        for f in np.unique(oof.fold[r]):
            inside = oof.fold[r] == f
            others = ~inside & oof.learnable
            try:
                calibration = fit_calibration(oof.scores[r, others], oof.truth[others],
                                              oof.classes)
            except ValueError:
                calibration = None
            out[r, inside] = calibrated(calibration, oof.scores[r, inside])
    return out


def _dirichlet_sample(truth: np.ndarray, classes: np.ndarray, rng: np.random.Generator
                      ) -> np.ndarray:
    """Positions of a sample of len(truth) postings with replacement whose mix over the
    `classes` present in `truth` is drawn from a flat Dirichlet (the artificial prevalence
    protocol; Forman 2008)."""
    present = [c for c in classes if (truth == c).any()]
    counts = rng.multinomial(len(truth), rng.dirichlet(np.ones(len(present))))
    return np.concatenate([rng.choice(np.flatnonzero(truth == c), size=k, replace=True)
                           for c, k in zip(present, counts, strict=True) if k]).astype(int)


def share_error(estimate: np.ndarray, classes: np.ndarray, truth: np.ndarray) -> float:
    """L1 distance between estimated shares of `classes` and the true shares of every category
    in `truth` (one the model does not know counts fully as error): 0 exact, 2 all wrong."""
    names, counts = np.unique(np.asarray(truth).astype(str), return_counts=True)
    true = dict(zip(names, counts / counts.sum(), strict=True))
    error = sum(abs(float(e) - true.pop(str(c), 0.0)) for c, e in zip(classes, estimate,
                                                                       strict=True))
    return float(error + sum(true.values()))


def simulate(oof: OutOfFold, calibrated_oof: np.ndarray, methods=METHODS,
             natural_per_fold: int = NATURAL_SAMPLES_PER_FOLD,
             shifted_per_fold: int = SHIFTED_SAMPLES_PER_FOLD, seed: int = RANDOM_STATE
             ) -> list[dict]:
    """Each outer fold's postings counted as if they had no category, by each method fitted on
    the other folds: at the fold's own mix ("natural": the fold, then bootstrap resamples of it,
    `natural_per_fold` in all) and at `shifted_per_fold` Dirichlet-drawn mixes ("shifted"). One
    row per (sample, method): kind, method, postings, l1, and per class the estimated `count`,
    `true` count and per-posting `variance` Σ q(1 − q)."""
    rng = np.random.default_rng(seed)
    classes = oof.classes
    rare_classes, rare_shares = rare_categories(oof)
    counted = np.concatenate([np.asarray(classes), rare_classes])
    rows = []
    for r in range(oof.scores.shape[0]):
        for f in np.unique(oof.fold[r]):
            inside = np.flatnonzero(oof.fold[r] == f)
            others = (oof.fold[r] != f) & oof.learnable
            train_p, train_y = calibrated_oof[r, others], oof.truth[others]
            if len(np.unique(train_y)) < 2:
                continue
            train_prior = class_shares(train_y, classes)
            samples = [("natural", inside)] + [
                ("natural", rng.choice(inside, size=len(inside), replace=True))
                for _ in range(natural_per_fold - 1)] + [
                ("shifted", inside[_dirichlet_sample(oof.truth[inside], classes, rng)])
                for _ in range(shifted_per_fold)]
            for kind, rows_ in samples:
                probabilities, truth = calibrated_oof[r, rows_], oof.truth[rows_]
                true_counts = np.array([(truth == c).sum() for c in counted], dtype=float)
                for method in methods:
                    shares = prevalence(method, classes, train_p, train_y, probabilities)
                    q = (probabilities if method in ("PCC", "CC")
                         else matched(probabilities, train_prior, shares))
                    q = with_rare(q, rare_shares, method)
                    shares = with_rare(shares[None, :], rare_shares, method)[0]
                    rows.append({"kind": kind, "method": method, "postings": len(rows_),
                                 "l1": share_error(shares, counted, truth),
                                 "count": shares * len(rows_), "true": true_counts,
                                 "variance": (q * (1 - q)).sum(axis=0)})
    return rows


def share_errors(rows: list[dict], method: str, kind: str, n_classes: int,
                 level: float = INTERVAL_LEVEL) -> np.ndarray:
    """σ_c per class: the systematic error of `method`'s count of class c as a share of the
    postings counted, such that ± z·sqrt(per-posting variance + (σ_c·n)²) held the true count
    in `level` of the simulated samples of `kind` (split-conformal: the ⌈(m + 1)·level⌉-th
    smallest of the σ each sample needed; Vovk et al. 2005). 0 without samples."""
    needed = [[] for _ in range(n_classes)]
    for row in rows:
        if row["method"] == method and row["kind"] == kind:
            gap = np.abs(row["count"] - row["true"]) / INTERVAL_Z
            need = np.sqrt(np.maximum(0.0, gap ** 2 - row["variance"])) / row["postings"]
            for c in range(n_classes):
                needed[c].append(need[c])
    out = np.zeros(n_classes)
    for c, values in enumerate(needed):
        if values:
            values = np.sort(values)
            rank = min(len(values), int(np.ceil((len(values) + 1) * level)))
            out[c] = values[rank - 1]
    return out


def rare_categories(oof: OutOfFold) -> tuple[np.ndarray, np.ndarray]:
    """The categories too rare to learn among the scored labelled postings, and each one's share
    of them."""
    names, counts = np.unique(np.asarray(oof.truth[~oof.learnable]).astype(str),
                              return_counts=True)
    return names.astype(object), counts / max(1, len(oof.truth))


def count_model_from(oof: OutOfFold, calibrated_oof: np.ndarray | None = None,
                     errors: dict | None = None) -> CountModel:
    """The calibration and count errors of a model, from its out-of-fold predictions (with their
    class scores; `calibrated_oof`: their `nested_calibrated`, computed here when not given).
    `errors`: the model's `count_errors` as its training kept them: the simulation that estimates
    them (seconds at 400,000 postings, on every run that reuses the model) is not run again.
    ValueError when the learnable postings hold fewer than 2 categories."""
    learnable = np.broadcast_to(oof.learnable, oof.fold.shape)
    truth = np.broadcast_to(oof.truth, oof.fold.shape)[learnable]
    calibration = fit_calibration(oof.scores[learnable], truth, oof.classes)
    if calibrated_oof is None:
        calibrated_oof = nested_calibrated(oof)
    rare_classes, rare_shares = rare_categories(oof)
    n_classes = len(oof.classes) + len(rare_classes)
    if not _fits(errors, n_classes):  # none kept, or kept in another shape: simulated again
        errors = _simulated_errors(oof, calibrated_oof, n_classes)
    return CountModel(
        classes=np.asarray(oof.classes),
        rare_classes=rare_classes,
        rare_shares=rare_shares,
        calibration=calibration,
        train_prior=class_shares(oof.learnable_truth, oof.classes),
        reference=calibrated_oof[learnable],
        reference_labels=truth,
        share_error={method: np.asarray(values, dtype=float)
                     for method, values in errors["share_error"].items()},
        expected_l1=errors["expected_l1"],
        sample_postings=errors["sample_postings"],
    )


def _simulated_errors(oof: OutOfFold, calibrated_oof: np.ndarray, n_classes: int) -> dict:
    rows = simulate(oof, calibrated_oof, methods=(NO_SHIFT_METHOD, SHIFT_METHOD))
    return {
        "share_error": {NO_SHIFT_METHOD: share_errors(rows, NO_SHIFT_METHOD, "natural", n_classes),
                        SHIFT_METHOD: share_errors(rows, SHIFT_METHOD, "shifted", n_classes)},
        "expected_l1": {method: {kind: float(np.mean([row["l1"] for row in rows
                                                      if row["method"] == method
                                                      and row["kind"] == kind]))
                                 for kind in ("natural", "shifted")}
                        for method in (NO_SHIFT_METHOD, SHIFT_METHOD)},
        "sample_postings": int(np.median([row["postings"] for row in rows])),
    }


def _fits(errors, n_classes: int) -> bool:
    """Whether `errors` (count_errors' shape, read back from a file) can serve a model of
    `n_classes` counted categories: both methods' σ per category, both kinds of expected error
    per method, a number of postings."""
    methods = (NO_SHIFT_METHOD, SHIFT_METHOD)
    try:
        return (all(len(errors["share_error"][m]) == n_classes for m in methods)
                and all(isinstance(errors["expected_l1"][m][kind], float)
                        for m in methods for kind in ("natural", "shifted"))
                and isinstance(errors["sample_postings"], int))
    except (KeyError, TypeError, IndexError):
        return False


def count_errors(model: CountModel) -> dict:
    """A CountModel's simulated count errors as plain JSON values (count_model_from's
    `errors`): floats written by json round-trip exactly."""
    return {"share_error": {method: [float(v) for v in values]
                            for method, values in model.share_error.items()},
            "expected_l1": {method: {kind: float(value) for kind, value in kinds.items()}
                            for method, kinds in model.expected_l1.items()},
            "sample_postings": int(model.sample_postings)}


@dataclass(frozen=True)
class CountEstimate:
    """The postings without a category counted by category: `probabilities` (postings ×
    `classes`, rows summing to 1: calibrated, corrected for the estimated prior), the `method`
    used and the `shift` test that chose it (None when the correction was kept from an earlier
    estimate: `corrected_with`), the `weights` of the correction (one per learned class, 1 each
    under PCC), per class the estimated `counts` with a 90 % interval (`low`, `high`), the
    per-posting `variance` Σ q(1 − q) and the `share_error` σ_c behind the interval, and
    `expected_l1` (the L1 error of the category shares the method is expected to make,
    out-of-fold)."""

    classes: np.ndarray
    probabilities: np.ndarray
    method: str
    shift: ShiftTest | None
    weights: np.ndarray
    counts: np.ndarray
    low: np.ndarray
    high: np.ndarray
    variance: np.ndarray
    share_error: np.ndarray
    expected_l1: float

    def describe(self) -> str:
        how = self.shift.describe() if self.shift else "correction kept from the last estimate"
        return (f"{self.method} ({how}); expected error of the category "
                f"shares {self.expected_l1:.3f} (L1, out-of-fold)")


def count_interval(counts: np.ndarray, variance: np.ndarray, share_error: np.ndarray,
                   postings: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """90 % interval of estimated counts among `postings` postings without a category: ± 1.645
    sd with sd² = per-posting `variance` + (`share_error` × postings)², clipped to
    [0, postings]."""
    sd = np.sqrt(variance + (share_error * postings) ** 2)
    return (np.clip(counts - INTERVAL_Z * sd, 0, postings),
            np.clip(counts + INTERVAL_Z * sd, 0, postings))


def estimate_counts(model: CountModel, scores: np.ndarray) -> CountEstimate:
    """Count the postings whose class scores (postings × `model.classes`, from the deployed
    model) are `scores`: calibrate, test for a prior shift, PCC or PACC, intervals."""
    probabilities = calibrated(model.calibration, scores)
    test = shift_test(model.reference, probabilities)
    method = model.method_for(test)
    weights = np.ones(len(model.classes))
    if method == SHIFT_METHOD and len(probabilities):
        shares = prevalence(SHIFT_METHOD, model.classes, model.reference,
                            model.reference_labels, probabilities)
        weights = matching_weights(probabilities, model.train_prior, shares)
    return _counted(model, _corrected(model, probabilities, method, weights), method, test,
                    weights)


def corrected_with(model: CountModel, scores: np.ndarray, method: str, weights: np.ndarray
                   ) -> CountEstimate:
    """`estimate_counts` of `scores` (postings × `model.classes`) with the `method` and the
    correction's `weights` an earlier estimate chose (CountEstimate.weights), neither tested nor
    estimated again: the probabilities are those the earlier estimate would have given these
    postings. For a few postings added to many (decisions.recount_decision)."""
    probabilities = calibrated(model.calibration, scores)
    return _counted(model, _corrected(model, probabilities, method, weights), method, None,
                    np.asarray(weights, dtype=float))


def _corrected(model: CountModel, probabilities: np.ndarray, method: str,
               weights: np.ndarray) -> np.ndarray:
    if method == SHIFT_METHOD and len(probabilities):
        probabilities = prior_corrected(probabilities, np.ones_like(weights), weights)
    return without_noise(with_rare(probabilities, model.rare_shares, method))


def _counted(model: CountModel, probabilities: np.ndarray, method: str,
             test: ShiftTest | None, weights: np.ndarray) -> CountEstimate:
    counts = probabilities.sum(axis=0)
    variance = (probabilities * (1 - probabilities)).sum(axis=0)
    share_error = model.share_error.get(method, np.zeros(probabilities.shape[1]))
    low, high = count_interval(counts, variance, share_error, len(probabilities))
    return CountEstimate(model.counted_classes, probabilities, method, test, weights, counts,
                         low, high, variance, share_error, model.expected_error(method))
