"""Greedy portfolios: a few configurations that did well across earlier tasks.

A *portfolio* is an ordered list of configurations to try first on a new
task. :func:`greedy_portfolio` builds it from the completed trials of earlier
single-objective tasks (:class:`autometa.hpo.knowledge_base.Task`), greedily
minimising the expected normalised regret over those tasks (Wistuba et al.,
"Sequential Model-Free Hyperparameter Tuning", ICDM 2015; Feurer et al.,
"Auto-sklearn 2.0", JMLR 2022). This module is pure: no sampler, no random
state.

Definitions
-----------
Normalised value
    On task ``t``, a completed trial's value ``v`` becomes
    ``(v - best_t) / (worst_t - best_t)`` in ``[0, 1]``: 0 for the task's best
    trial, 1 for its worst (for ``"maximize"`` tasks best is the largest
    value). A task whose trials all tie scores 0 everywhere. Trials with a
    non-finite value are ignored.
Candidates
    The ``n_candidates_per_task`` best completed trials of every task of
    positive weight, best first, task by task; duplicate configurations are
    kept once.
Regret of candidate ``c`` on task ``t``
    On ``c``'s own task: the normalised value of the trial it came from. On
    another task, where ``c`` was never evaluated: the mean normalised value
    of the trials of ``t`` *nearest* to ``c`` (ties averaged). Distances use
    only the parameters of ``c`` that ``t`` has (its *shared* parameters):
    ``sqrt(sum_p d_p^2)`` with, for a numeric parameter, the difference of
    both values scaled to ``[0, 1]`` by ``c``'s distribution (on a log scale
    for ``log=True``), and for a categorical one 0 when equal, 1 otherwise;
    a trial of ``t`` without the parameter is at distance 1 in it. With no
    shared parameter every trial ties, so the regret is ``t``'s mean
    normalised value: what a random trial of ``t`` would score.
Portfolio regret
    For a set ``S`` of chosen candidates, ``sum_t w_t * min_{c in S} regret(c, t)``
    with weights ``w`` normalised to sum to 1 (the empty set scores 1 on every
    task). Each greedy step adds the candidate that lowers it most (ties: the
    earlier candidate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution

__all__ = ["greedy_portfolio"]


@dataclass(frozen=True)
class PortfolioEntry:
    """One chosen configuration and where it came from."""

    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    task_name: str
    trial_number: int
    #: The weighted mean regret of the portfolio up to and including this entry.
    expected_regret: float


def greedy_portfolio(tasks: Sequence, k: int, weights: Sequence[float] | None = None, n_candidates_per_task: int = 10):
    """Choose ``k`` configurations greedily to minimise the expected normalised regret.

    See the module docstring for the exact definitions.

    Parameters
    ----------
    tasks : sequence of Task
        Earlier single-objective tasks; those without a completed finite trial
        are ignored.
    k : int
        The portfolio size; fewer are returned when there are fewer distinct candidates.
    weights : sequence of float or None, default=None
        One non-negative weight per task (e.g. its similarity to the new task);
        None weighs all tasks equally. Tasks of weight 0 neither count nor
        contribute candidates.
    n_candidates_per_task : int, default=10
        How many of each task's best trials are candidates.

    Returns
    -------
    list of dict
        The chosen configurations' parameters, in the order chosen.

    Examples
    --------
    >>> import optuna
    >>> from autometa.hpo.knowledge_base import Task
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> def task(name, optimum):
    ...     study = optuna.create_study(study_name=name, sampler=optuna.samplers.RandomSampler(seed=0))
    ...     study.optimize(lambda t: (t.suggest_float("x", 0, 1) - optimum) ** 2, n_trials=20)
    ...     return Task.from_study(study)

    A single configuration is best as a compromise between both tasks; the
    second then serves one of them exactly:

    >>> portfolio = greedy_portfolio([task("a", 0.1), task("b", 0.9)], k=2)
    >>> [round(config["x"], 1) for config in portfolio]
    [0.5, 0.1]
    """
    return [entry.params for entry in _greedy_entries(tasks, k, weights, n_candidates_per_task)]


def _greedy_entries(tasks, k, weights=None, n_candidates_per_task=10) -> list[PortfolioEntry]:
    """:func:`greedy_portfolio` with each entry's source task, trial and expected regret."""
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    if n_candidates_per_task < 1:
        raise ValueError(f"n_candidates_per_task must be positive, got {n_candidates_per_task}")
    tasks = list(tasks)
    weights = np.ones(len(tasks)) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(tasks),) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"weights must be {len(tasks)} finite non-negative numbers, got {weights!r}")
    scored = [(_Scored(task), w) for task, w in zip(tasks, weights) if w > 0]
    scored = [(task, w) for task, w in scored if task.trials]
    if k == 0 or not scored:
        return []
    tasks_ = [task for task, _ in scored]
    w = np.array([w for _, w in scored]) / sum(w for _, w in scored)

    candidates, seen = [], []
    for source, task in enumerate(tasks_):
        for index in np.argsort(task.normalised, kind="stable")[:n_candidates_per_task]:
            params = task.trials[index].params
            if params not in seen:
                seen.append(params)
                candidates.append((source, int(index)))
    # regret[c, t]: candidate c's (estimated) normalised regret on task t.
    regret = np.empty((len(candidates), len(tasks_)))
    for c, (source, index) in enumerate(candidates):
        trial = tasks_[source].trials[index]
        for t, task in enumerate(tasks_):
            regret[c, t] = task.normalised[index] if t == source else task.nearest_regret(trial)

    chosen: list[PortfolioEntry] = []
    best_so_far = np.ones(len(tasks_))
    available = np.ones(len(candidates), dtype=bool)
    while len(chosen) < k and available.any():
        scores = (np.minimum(regret, best_so_far) * w).sum(axis=1)
        scores[~available] = np.inf
        c = int(np.argmin(scores))  # argmin returns the first of ties
        available[c] = False
        best_so_far = np.minimum(best_so_far, regret[c])
        source, index = candidates[c]
        trial = tasks_[source].trials[index]
        chosen.append(
            PortfolioEntry(
                params=dict(trial.params),
                distributions=dict(trial.distributions),
                task_name=tasks_[source].name,
                trial_number=trial.number,
                expected_regret=float(scores[c]),
            )
        )
    return chosen


class _Scored:
    """A task's completed finite trials with their normalised values."""

    def __init__(self, task):
        if len(task.directions) != 1:
            raise ValueError(
                f"task {task.name!r} has {len(task.directions)} objectives; portfolios are single-objective"
            )
        self.name = task.name
        self.trials = [t for t in task.completed_trials() if t.value is not None and math.isfinite(t.value)]
        values = np.array([t.value for t in self.trials], dtype=np.float64)
        if task.direction == "maximize":
            values = -values
        spread = values.max() - values.min() if len(values) else 0.0
        self.normalised = (values - values.min()) / spread if spread > 0 else np.zeros_like(values)
        self._param_names = {name for t in self.trials for name in t.params}
        self._columns: dict = {}

    def nearest_regret(self, config) -> float:
        """The mean normalised value of the trials nearest to ``config`` (a TrialRecord)."""
        squared = np.zeros(len(self.trials))
        for name, value in config.params.items():
            if name not in self._param_names:
                continue
            distribution = config.distributions[name]
            if _is_numeric(distribution):
                column = self._numeric_column(name, distribution)
                gap = np.abs(column - _scale(value, distribution))
                squared += np.where(np.isnan(gap), 1.0, gap) ** 2
            else:
                codes, column = self._categorical_column(name)
                squared += column != codes.get(repr(value), -2)  # a missing parameter is coded -1
        nearest = squared <= squared.min() + 1e-12
        return float(self.normalised[nearest].mean())

    def _numeric_column(self, name: str, distribution: BaseDistribution) -> np.ndarray:
        key = (name, distribution)
        if key not in self._columns:
            values = [_scale(t.params[name], distribution) if name in t.params else np.nan for t in self.trials]
            self._columns[key] = np.array(values, dtype=np.float64)
        return self._columns[key]

    def _categorical_column(self, name: str) -> tuple[dict[str, int], np.ndarray]:
        # repr makes any choice (None, bool, float, str) a hashable code key, and keeps 1 != True
        if name not in self._columns:
            keys = [repr(t.params[name]) if name in t.params else None for t in self.trials]
            codes = {key: i for i, key in enumerate(dict.fromkeys(k for k in keys if k is not None))}
            self._columns[name] = (codes, np.array([-1 if k is None else codes[k] for k in keys]))
        return self._columns[name]


def _is_numeric(distribution: BaseDistribution) -> bool:
    return isinstance(distribution, (FloatDistribution, IntDistribution))


def _scale(value: Any, distribution: BaseDistribution) -> float:
    """A numeric value scaled to [0, 1] by ``distribution``'s range (NaN when not a number)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return np.nan  # a non-numeric value of a parameter numeric here: as good as missing
    low, high = float(distribution.low), float(distribution.high)
    if distribution.log and value > 0:
        value, low, high = math.log(value), math.log(low), math.log(high)
    return 0.0 if high == low else (value - low) / (high - low)
