"""Source trials for WS-CMA-ES (``CmaEsSampler(source_trials=...)``), shared by the HPO benchmarks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState


def rescaled_source_trials(tasks: Sequence, distributions: Mapping[str, BaseDistribution],
                           direction: str = "maximize") -> list[optuna.trial.FrozenTrial]:
    """Every completed trial of ``tasks`` on the numeric parameters of ``distributions``.

    Objectives of different tasks have different scales, so each task's values
    are rescaled to [0, 1] by its own minimum and maximum, the best value
    becoming 1 for a study that maximises (``direction``) and 0 for one that
    minimises. A numeric parameter a trial lacks (a conditional branch it did
    not take) is set to the centre of its range (on the log scale where
    ``log``); categorical parameters are left out, as WS-CMA-ES needs.
    """
    numeric = {n: d for n, d in distributions.items() if isinstance(d, (FloatDistribution, IntDistribution))}
    trials = []
    for task in tasks:
        completed = [t for t in task.completed_trials() if t.value is not None and math.isfinite(t.value)]
        if not completed:
            continue
        values = np.array([t.value for t in completed])
        spread = values.max() - values.min()
        scaled = (values - values.min()) / spread if spread > 0 else np.full(len(values), 0.5)
        if task.direction == "minimize":
            scaled = 1.0 - scaled  # now 1 is the task's best
        if direction == "minimize":
            scaled = 1.0 - scaled
        for trial, value in zip(completed, scaled):
            params = {name: trial.params.get(name, _centre(d)) for name, d in numeric.items()}
            trials.append(optuna.trial.create_trial(params=params, distributions=dict(numeric), value=float(value),
                                                    state=TrialState.COMPLETE))
    return trials


def _centre(distribution: FloatDistribution | IntDistribution) -> float | int:
    low, high = distribution.low, distribution.high
    centre = math.exp((math.log(low) + math.log(high)) / 2) if distribution.log else (low + high) / 2
    return int(round(centre)) if isinstance(distribution, IntDistribution) else centre
