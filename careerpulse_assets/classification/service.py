"""What `knn_classifier` serves, worked out here: the champion reused, a challenger trained (and
promoted or not), or no model at all; and the champion as MLflow's registry keeps it, for a step
of a run that did not work it out (imputed_silver or a check materialised alone).

The decisions themselves are made in `decisions.py` (train or reuse, promote or keep, the
quality gate), each with its reason; this module fetches what they decide on and carries them
out. MLflow through `registry.py`, the one store of fitted models; no Dagster: the asset hands in
its logger and its MLflow run.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import pandas as pd

from .decisions import (
    GateBars,
    GateVerdict,
    PromotionDecision,
    TrainingDecision,
    gate_verdict,
    promotion_decision,
    training_decision,
)
from .evaluation import LabelledSet, labelled_set
from .model_selection import KnnGrid, NotEnoughLabels
from .registry import (
    RegisteredVersion,
    champion,
    latest,
    load_count_errors,
    load_evaluation,
    load_model,
    load_out_of_fold,
    load_policy,
    log_training,
    model_facts,
    record_promotion,
    set_champion,
)
from .serving import (
    DriftReference,
    Evaluation,
    ModelCalibration,
    Outcome,
    ServingClassifier,
    calibrate_model,
)
from .training import Progress, evaluation_of, params_from_mlflow, train

@dataclass(frozen=True)
class Wiring:
    """What the asset hands in: the run's gate bars and the precision bar a written category must
    reach, its MLflow run for a training (`training_run(name)`, a context manager yielding the
    run), and where to say what happens (`say`) and which phase a long training is in."""

    bars: GateBars
    min_precision: float
    training_run: Callable[[str], AbstractContextManager]
    say: Progress
    phase: Progress


def no_model(labelled_categories: pd.Series, unlabelled_share: float | None, why: str,
             bars: GateBars | None = None) -> ServingClassifier:
    """What is served when no classifier can be trained: nothing is imputed or spread, and gold,
    the forecast and the queue are still written (every posting without a category counted as
    Unclassified). `labelled_categories`: the category of each labelled posting (the drift
    check's reference)."""
    counts = labelled_categories.value_counts()
    reason = f"no classifier can be trained ({why}): nothing is imputed"
    return ServingClassifier(
        model=None, version=None, run_id=None,
        evaluation=Evaluation("no model", {}, 0, "not estimated: no model"),
        reference=DriftReference({str(k): int(v) for k, v in counts.items()}, unlabelled_share),
        outcome=Outcome(False, reason),
        calibration=None,
        gate=GateVerdict(False, False, reason, bars),
    )


def calibration_of(registered: RegisteredVersion, min_precision: float) -> ModelCalibration | None:
    """A version's calibration, count model and policy, derived again from its out-of-fold
    predictions in the registry (deterministic; seconds) with the count errors its training
    simulated and the policy it chose (for the same precision bar); None when they cannot be
    read or lack class scores."""
    oof = load_out_of_fold(registered)
    if oof is None:
        return None
    try:
        return calibrate_model(oof, min_precision, load_count_errors(registered),
                               load_policy(registered))
    except ValueError:
        return None


def serving_from_registry(registered: RegisteredVersion, outcome: Outcome, bars: GateBars,
                   min_precision: float) -> ServingClassifier | None:
    """A registered version as it serves: its model, evaluation and calibration from the
    registry, judged against `bars`; None when the registry cannot give them back."""
    loaded = load_evaluation(registered)
    calibration = calibration_of(registered, min_precision)
    if loaded is None or calibration is None:
        return None
    evaluation, reference = loaded
    return ServingClassifier(
        model=load_model(registered.version), version=registered.version,
        run_id=registered.run_id, evaluation=evaluation, reference=reference, outcome=outcome,
        calibration=calibration, gate=gate_verdict(evaluation.estimate, bars),
    )


def serve_champion(bars: GateBars, min_precision: float) -> ServingClassifier:
    """The champion, as the registry keeps it (what a step of a run that did not materialise
    `knn_classifier` imputes and judges with); no model when there is none or it cannot be
    read."""
    in_service = champion()
    if in_service is not None:
        outcome = Outcome(False, f"{in_service.version}, the champion in MLflow's registry "
                                 "(knn_classifier was not materialised in this run)")
        served = serving_from_registry(in_service, outcome, bars, min_precision)
        if served is not None:
            return served
    why = ("no champion in MLflow's registry yet" if in_service is None
           else f"champion {in_service.version} cannot be read back from MLflow")
    return no_model(pd.Series(dtype=object), None, why, bars)


def serve(
    labelled_keys: pd.DataFrame,
    read_labelled: Callable[[], pd.DataFrame],
    grid: KnnGrid,
    min_postings: int,
    force_retrain_unless_unchanged: bool,
    retrain_at: float,
    drift_flagged_version: str | None,
    unlabelled_share: float,
    wiring: Wiring,
) -> tuple[ServingClassifier, LabelledSet | None]:
    """The classifier in service after this run, and today's labelled postings (None when too
    few to learn from). `labelled_keys`: the labelled postings' categories and text keys (no
    texts: enough to decide); `read_labelled()` reads them with their texts, for a training."""
    bars, min_precision = wiring.bars, wiring.min_precision
    try:
        labelled = labelled_set(labelled_keys, min_postings)
    except NotEnoughLabels as exc:
        return no_model(labelled_keys["category"], unlabelled_share, str(exc), bars), None
    settings = f"{grid!r}|min_postings={min_postings}"
    in_service, newest = champion(), latest()
    champion_facts = in_service and model_facts(in_service, labelled, settings,
                                                drift_flagged_version)
    latest_facts = (
        champion_facts if newest is None or (in_service and newest.version == in_service.version)
        else model_facts(newest, labelled, settings, drift_flagged_version)
    )
    decision = training_decision(champion_facts, latest_facts, force_retrain_unless_unchanged,
                                 retrain_at)
    wiring.say(f"{'training' if decision.train else 'no training'}: {decision.reason}")
    if not decision.train:
        reused = (in_service if in_service and decision.reuse.version == in_service.version
                  else newest)
        outcome = Outcome(False, decision.reason, decision.reuse.labelled_changed)
        serving = serving_from_registry(reused, outcome, bars, min_precision)
        if serving is not None:
            if in_service is None or reused.version != in_service.version:
                # A challenger that passed promotion but whose run ended before the handover.
                set_champion(reused.version)
            return serving, labelled
        decision = TrainingDecision(
            True, f"{reused.version} cannot be read back from MLflow: training a new one")
    labelled = labelled_set(read_labelled(), min_postings)
    return train_and_promote(labelled, grid, settings, decision, in_service, unlabelled_share,
                             wiring), labelled


def train_and_promote(
    labelled: LabelledSet,
    grid: KnnGrid,
    settings: str,
    decision: TrainingDecision,
    in_service: RegisteredVersion | None,
    unlabelled_share: float,
    wiring: Wiring,
) -> ServingClassifier:
    """Train a challenger in its own MLflow run, register it, and promote it or keep the
    champion (`decisions.promotion_decision`); what serves afterwards."""
    bars, min_precision, phase = wiring.bars, wiring.min_precision, wiring.phase
    champion_params = params_from_mlflow(in_service.params) if in_service else None
    wiring.say(f"training on {len(labelled.postings):,} labelled postings in "
        f"{labelled.labels.nunique()} categories ({labelled.reposts_removed} reposts removed)")
    with wiring.training_run(f"training: {decision.reason}"[:240]) as run:
        training = train(labelled, grid, champion_params, progress=phase)
        phase("calibrating its probabilities and choosing the per-posting threshold")
        calibration = calibrate_model(training.challenger.oof, min_precision)
        evaluation = evaluation_of(training.challenger, training.chosen, labelled)
        gate = gate_verdict(evaluation.estimate, bars)
        phase("logging the training to MLflow and registering the model")
        version, evaluation, reference = log_training(
            training, labelled, settings, decision.reason, unlabelled_share, calibration, gate
        )
        comparison = training.comparison
        champion_gate = (gate_verdict(evaluation_of(training.champion, "", labelled).estimate,
                                      bars) if training.champion is not None else None)
        if in_service is not None and comparison is None:
            promotion = PromotionDecision(
                True, f"champion {in_service.version}'s settings cannot be read from MLflow: "
                "the challenger replaces it"
            )
        else:
            promotion = promotion_decision(
                in_service.version if in_service else None,
                comparison.challenger if comparison else None,
                comparison.champion if comparison else None,
                comparison.intervals if comparison else None,
                challenger_passes=gate.passed,
                champion_passes=champion_gate is not None and champion_gate.passed,
            )
        record_promotion(run.info.run_id, promotion.promote, promotion.reason)
    wiring.say(f"{version}: {'promoted' if promotion.promote else 'not promoted'}: "
               f"{promotion.reason}")
    outcome = Outcome(
        retrained=True, reason=decision.reason, challenger_version=version,
        promotion=promotion.reason, comparison=comparison.flat() if comparison else {},
    )
    if promotion.promote:
        set_champion(version)
        return ServingClassifier(training.model, version, run.info.run_id, evaluation, reference,
                                 outcome, calibration, gate)
    # The champion stays in service, judged on today's postings on the same folds; it counts and
    # writes with the calibration of its own training (today's out-of-fold predictions of its
    # settings were chosen on about these postings).
    kept = load_evaluation(in_service)
    return ServingClassifier(
        model=load_model(in_service.version),
        version=in_service.version,
        run_id=in_service.run_id,
        evaluation=evaluation_of(training.champion, champion_params.describe(), labelled),
        reference=kept[1] if kept else reference,
        outcome=outcome,
        calibration=(calibration_of(in_service, min_precision)
                     or calibrate_model(training.champion.oof, min_precision)),
        gate=champion_gate,
    )
