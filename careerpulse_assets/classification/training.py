"""One training of the category classifier: what is fitted, and every figure it is judged by.

No MLflow and no Dagster here (`classification/registry.py` records a training, the asset wires it):

1. the gate's estimate: out-of-fold predictions over the labelled postings (of a stratified
   sample of 20,000 when there are more), settings chosen inside each outer fold
   (`classification/out_of_fold.py`);
2. the deployed model: the grid's best setting by 5-fold CV on (a sample of) the evaluated
   postings, fitted on every labelled posting;
3. when a champion is in service, its settings and the deployed settings scored on the very
   same folds (each as fixed settings, so neither is favoured by having been chosen on these
   postings), and the paired difference the promotion decision reads;
4. a time-ordered split (train on the oldest 80 %, test on the newest 20 %: imputation runs on
   new postings), for information.

The evaluated postings are tokenised once (`TextCounts`) for all of 1–4's selections and
predictions: at 100,000 postings the estimate's five outer folds used to tokenise their texts
again for every selection, fit and prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sklearn.pipeline import Pipeline

from .serving import DriftReference, Evaluation
from .evaluation import LabelledSet, SplitReport, evaluation_set, split_report, time_split
from .knn import TextCounts, model_input
from .out_of_fold import (
    Comparison,
    Estimate,
    OutOfFold,
    Recipe,
    Tables,
    compare,
    estimate,
    fixed_knn,
    make_folds,
    nested_knn,
    out_of_fold,
    predict_rows,
    scored_postings,
    tables,
)
from ..series.plots import confusion_png
from .model_selection import KnnGrid, KnnParams, fit_knn, select_knn, selection_sample

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Scored:
    """A recipe's out-of-fold figures on today's labelled postings."""

    estimate: Estimate
    tables: Tables
    oof: OutOfFold


def score(
    labelled: LabelledSet, folds, recipe, counts: TextCounts, progress: Progress | None = None
) -> Scored:
    oof = out_of_fold(labelled, folds, recipe, counts, progress)
    return Scored(estimate(oof), tables(oof), oof)


def evaluation_of(scored: Scored, chosen: str, labelled: LabelledSet) -> Evaluation:
    """A recipe's out-of-fold figures as the gate and the UI read them."""
    estimate_with_intervals: dict[str, float] = {}
    for name, value in scored.estimate.metrics.items():
        low, high = scored.estimate.intervals[name]
        estimate_with_intervals |= {name: value, f"{name}_ci_low": low, f"{name}_ci_high": high}
    return Evaluation(
        chosen=chosen,
        estimate=estimate_with_intervals,
        postings=scored.estimate.postings,
        method=scored.estimate.describe(),
        excluded_categories=labelled.excluded_categories,
        reliability=scored.tables.reliability.to_dict(orient="records"),
        most_confused=scored.tables.most_confused,
        confusion=scored.tables.confusion,
        confusion_png=confusion_png(scored.tables.confusion),
        judged=scored.estimate.judged,
    )


def reviewer_labels(labelled: LabelledSet) -> int:
    sources = labelled.postings.get("category_source")
    return int((sources == "label").sum()) if sources is not None else 0


def drift_reference(labelled: LabelledSet, unlabelled_share: float) -> DriftReference:
    """The category mix a model learned from, for the drift check to compare against."""
    return DriftReference({str(k): int(v) for k, v in labelled.labels.value_counts().items()},
                          unlabelled_share, reviewer_labels(labelled))


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


def time_split_report(
    evaluated: LabelledSet, counts: TextCounts, recipe: Recipe
) -> SplitReport | None:
    """Train on the oldest 80 %, test on the newest 20 % (None when the oldest hold fewer than
    2 categories)."""
    train, test = time_split(evaluated)
    labels = evaluated.labels.to_numpy(dtype=object)
    if len(set(labels[train])) < 2:
        return None
    params = recipe(counts, train, labels[train])
    y_pred, confidence = predict_rows(counts, params, train, labels[train], test)
    return split_report("time", params.describe(), len(train), evaluated.postings.iloc[test],
                        y_pred, confidence)


def train(
    labelled: LabelledSet,
    grid: KnnGrid,
    champion_params: KnnParams | None = None,
    progress: Progress | None = None,
) -> Training:
    say = progress or (lambda _: None)
    evaluated = evaluation_set(labelled)
    folds = make_folds(evaluated)
    say(f"tokenising {len(evaluated.postings):,} postings once for every estimate")
    # One tokenisation of the evaluated postings serves every fold, recipe and split below.
    counts = TextCounts(model_input(scored_postings(evaluated)))
    say(f"out-of-fold estimate: {folds.repeats} × {len(folds.splits[0])} folds over "
        f"{len(counts):,} postings, settings chosen inside each")
    challenger = score(evaluated, folds, nested_knn(grid), counts, progress)
    # The deployed setting is chosen on a stratified sample of the evaluated postings (all of
    # them up to 10,000), from the same tokenised texts.
    sample = selection_sample(evaluated.labels)
    say(f"choosing the deployed setting on {len(sample):,} postings")
    selection = select_knn(evaluated.postings.iloc[sample], evaluated.labels.iloc[sample], grid,
                           counts=counts, rows=sample)
    chosen = selection.best.describe()
    if len(sample) < len(labelled.postings):
        chosen += f" (chosen on a sample of {len(sample):,} of {len(labelled.postings):,})"
    champion = comparison = None
    if champion_params is not None:
        say(f"the champion's settings on the same folds: {champion_params.describe()}")
        champion = score(evaluated, folds, fixed_knn(champion_params), counts, progress)
        deployed = champion if selection.best == champion_params else score(
            evaluated, folds, fixed_knn(selection.best), counts, progress)
        comparison = compare(deployed.oof, champion.oof)
    say("time-ordered split (oldest 80 % → newest 20 %)")
    time_split = time_split_report(evaluated, counts, nested_knn(grid))
    say(f"fitting {chosen} on {len(labelled.postings):,} postings")
    return Training(
        model=fit_knn(labelled.postings, labelled.labels, selection.best),
        params=selection.best,
        chosen=chosen,
        cv_macro_f1=selection.best_score,
        challenger=challenger,
        champion=champion,
        comparison=comparison,
        time_split=time_split,
        evaluated_postings=len(counts),
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
