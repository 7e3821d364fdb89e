"""Transfer-HPO baselines of the real-fit benchmark that are not part of the library.

``SearchBoxSampler`` is "learned search box + random search" (Perrone, Shen,
Seeger, Archambeau & Jenatton, "Learning search spaces for Bayesian
optimization", NeurIPS 2019): the smallest box that holds the best
configuration of every source task, then uniform random search inside it.
The paper reports it as the baseline that transfer methods must beat.

Each numeric parameter's box is ``[min, max]`` of the source tasks' best
values, sampled uniformly on the log scale where the distribution is
logarithmic (integers rounded, then kept in the box); a categorical
parameter's box is the set of choices the best configurations use (the
paper's box is numeric only; this is its natural extension). A parameter no
best configuration has is sampled from its whole distribution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from autometa.hpo.encoding import choice_key

__all__ = ["SearchBoxSampler", "learned_search_box"]


def learned_search_box(tasks: Sequence) -> dict[str, tuple | list]:
    """The box of the best configuration of each task: ``{name: (low, high)}`` for numbers, ``{name: [choices]}``
    for anything else (in first-seen order). Tasks without a completed finite trial are ignored."""
    box: dict[str, Any] = {}
    for task in tasks:
        completed = [t for t in task.completed_trials() if t.value is not None and math.isfinite(t.value)]
        if not completed:
            continue
        pick = max if task.direction == "maximize" else min
        best = pick(completed, key=lambda t: t.value)
        for name, value in best.params.items():
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if numeric:
                low, high = box.get(name, (value, value))
                box[name] = (min(low, value), max(high, value))
            else:
                choices = box.setdefault(name, [])
                if choice_key(value) not in {choice_key(c) for c in choices}:
                    choices.append(value)
    return box


class SearchBoxSampler(optuna.samplers.BaseSampler):
    """Uniform random search inside a learned box (module docstring).

    Parameters
    ----------
    box : mapping
        As returned by :func:`learned_search_box`.
    seed : int or None, default=None
        Seed of the random draws.
    """

    def __init__(self, box: Mapping[str, tuple | list], seed: int | None = None):
        self.box = dict(box)
        self._rng = np.random.RandomState(seed)
        self._fallback = optuna.samplers.RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._fallback.reseed_rng()

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def sample_independent(self, study, trial, param_name: str, param_distribution: BaseDistribution) -> Any:
        bounds = self.box.get(param_name)
        if bounds is None:
            return self._fallback.sample_independent(study, trial, param_name, param_distribution)
        if isinstance(param_distribution, CategoricalDistribution):
            allowed = [c for c in param_distribution.choices if choice_key(c) in {choice_key(b) for b in bounds}]
            if not allowed:
                return self._fallback.sample_independent(study, trial, param_name, param_distribution)
            return allowed[self._rng.randint(len(allowed))]
        if not isinstance(param_distribution, (FloatDistribution, IntDistribution)):
            return self._fallback.sample_independent(study, trial, param_name, param_distribution)
        low = max(float(bounds[0]), param_distribution.low)
        high = min(float(bounds[1]), param_distribution.high)
        if low > high:  # the box lies outside this distribution: search all of it
            low, high = param_distribution.low, param_distribution.high
        if param_distribution.log:
            value = math.exp(self._rng.uniform(math.log(low), math.log(high)))
        else:
            value = self._rng.uniform(low, high)
        if isinstance(param_distribution, IntDistribution):
            step = param_distribution.step
            lowest = param_distribution.low + step * math.ceil((low - param_distribution.low) / step)
            highest = param_distribution.low + step * math.floor((high - param_distribution.low) / step)
            snapped = param_distribution.low + step * round((value - param_distribution.low) / step)
            return int(min(max(snapped, lowest), max(lowest, highest)))
        return float(min(max(value, low), high))
