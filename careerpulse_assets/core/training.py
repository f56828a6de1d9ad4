"""One training of the category classifier: what is fitted, and every figure it is judged by.

No MLflow and no Dagster here (`tracking.py` records a training, the asset wires it):

1. the gate's estimate: out-of-fold predictions over the labelled postings (of a stratified
   sample of 20,000 when there are more), settings chosen inside each outer fold
   (`out_of_fold.py`);
2. when a champion is in service, its settings scored on the very same folds, and the paired
   difference the promotion decision reads;
3. a time-ordered split (train on the oldest 80 %, test on the newest 20 %: imputation runs on
   new postings), for information;
4. the deployed model: the grid's best setting by 5-fold CV on (a sample of) every labelled
   posting, fitted on all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sklearn.pipeline import Pipeline

from .evaluation import (
    LabelledSet,
    SplitReport,
    evaluate,
    evaluation_set,
    knn_method,
)
from .out_of_fold import (
    NESTED_SELECTION_MAX_POSTINGS,
    Comparison,
    Estimate,
    OutOfFold,
    Tables,
    compare,
    estimate,
    fixed_knn,
    make_folds,
    nested_knn,
    out_of_fold,
    tables,
)
from .selection import KnnGrid, KnnParams, NotEnoughLabels, fit_knn, select_knn, selection_sample

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Scored:
    """A recipe's out-of-fold figures on today's labelled postings."""

    estimate: Estimate
    tables: Tables
    oof: OutOfFold


def score(labelled: LabelledSet, folds, fit, progress: Progress | None = None) -> Scored:
    oof = out_of_fold(labelled, folds, fit, progress)
    return Scored(estimate(oof), tables(oof), oof)


@dataclass(frozen=True)
class Training:
    model: Pipeline  # the deployed model, fitted on every learnable labelled posting
    params: KnnParams
    chosen: str
    cv_macro_f1: float
    challenger: Scored
    champion: Scored | None
    comparison: Comparison | None
    time_split: SplitReport | None
    evaluated_postings: int


def _time_split(evaluated: LabelledSet, grid: KnnGrid) -> SplitReport | None:
    try:
        return evaluate(evaluated, knn_method(grid, NESTED_SELECTION_MAX_POSTINGS), "time")
    except NotEnoughLabels:
        return None  # the oldest 80 % hold fewer than 2 categories


def train(
    labelled: LabelledSet,
    grid: KnnGrid,
    champion_params: KnnParams | None = None,
    progress: Progress | None = None,
) -> Training:
    say = progress or (lambda _: None)
    evaluated = evaluation_set(labelled)
    folds = make_folds(evaluated)
    say(f"out-of-fold estimate: {folds.repeats} × {len(folds.splits[0])} folds over "
        f"{len(evaluated.postings):,} postings, settings chosen inside each")
    challenger = score(evaluated, folds, nested_knn(grid), progress)
    champion = comparison = None
    if champion_params is not None:
        say(f"the champion's settings on the same folds: {champion_params.describe()}")
        champion = score(evaluated, folds, fixed_knn(champion_params), progress)
        comparison = compare(challenger.oof, champion.oof)
    say("time-ordered split (oldest 80 % → newest 20 %)")
    time_split = _time_split(evaluated, grid)
    say(f"choosing the deployed setting on {min(len(labelled.postings), 10_000):,} postings and "
        f"fitting it on {len(labelled.postings):,}")
    sample = selection_sample(labelled.labels)
    selection = select_knn(labelled.postings.iloc[sample], labelled.labels.iloc[sample], grid)
    chosen = selection.best.describe()
    if len(sample) < len(labelled.postings):
        chosen += f" (chosen on a sample of {len(sample):,} of {len(labelled.postings):,})"
    return Training(
        model=fit_knn(labelled.postings, labelled.labels, selection.best),
        params=selection.best,
        chosen=chosen,
        cv_macro_f1=selection.best_score,
        challenger=challenger,
        champion=champion,
        comparison=comparison,
        time_split=time_split,
        evaluated_postings=len(evaluated.postings) + (
            0 if evaluated.rare is None else len(evaluated.rare)
        ),
    )


def params_from_mlflow(params: dict[str, str]) -> KnnParams | None:
    """A champion's settings from its MLflow run's parameters (None when they cannot be read)."""
    try:
        weight = params.get("title_weight")
        return KnnParams(
            title_weight=None if weight in (None, "None") else float(weight),
            ngrams=int(params["ngrams"]),
            k=int(params["k"]),
            vote=params["vote"],
            prior_alpha=float(params["prior_alpha"]),
        )
    except (KeyError, ValueError):
        return None

