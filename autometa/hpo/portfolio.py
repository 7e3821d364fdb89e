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
    non-finite value are ignored (:func:`autometa.hpo.encoding.normalised_values`).
Candidates
    The ``n_candidates_per_task`` best completed trials of every task of
    positive weight, best first, task by task; duplicate configurations (the
    same parameters with the same values) are kept once.
Regret of candidate ``c`` on task ``t``
    On ``c``'s own task: the normalised value of the trial it came from. On
    another task, where ``c`` was never evaluated: the mean normalised value
    of the trials of ``t`` *nearest* to ``c`` (ties averaged). Distances use
    only the parameters of ``c`` that ``t`` has (its *shared* parameters):
    ``sqrt(sum_p d_p^2)`` with, for a numeric parameter, the difference of
    both values scaled to ``[0, 1]`` by ``c``'s distribution (on a log scale
    for ``log=True``), and for a categorical one 0 for the same value, 1
    otherwise (:mod:`autometa.hpo.encoding` defines both); a trial of ``t``
    without the parameter, or with a value the scale cannot place, is at
    distance 1 in it. With no shared parameter every trial ties, so the
    regret is ``t``'s mean normalised value: what a random trial of ``t``
    would score.
Portfolio regret
    For a set ``S`` of chosen candidates, ``sum_t w_t * min_{c in S} regret(c, t)``
    with weights ``w`` normalised to sum to 1 (the empty set scores 1 on every
    task). Each greedy step adds the candidate that lowers it most (ties: the
    candidate of lower weighted mean regret on its own, then the earlier one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution

from autometa.hpo.encoding import NumericScale, choice_key, config_key, finite_trials, is_numeric, normalised_values

__all__ = ["PortfolioEntry", "RegretTable", "greedy_portfolio", "greedy_portfolio_entries"]


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
    return [entry.params for entry in greedy_portfolio_entries(tasks, k, weights, n_candidates_per_task)]


def greedy_portfolio_entries(
    tasks: Sequence, k: int, weights: Sequence[float] | None = None, n_candidates_per_task: int = 10
) -> list[PortfolioEntry]:
    """:func:`greedy_portfolio`, each configuration with its source task, trial and expected regret.

    The parameters are :func:`greedy_portfolio`'s. Tasks of weight 0 are left
    out before the candidates are chosen, so they contribute none.

    Returns
    -------
    list of PortfolioEntry
        In the order chosen; ``expected_regret`` is the weighted mean regret
        of the portfolio up to and including the entry.
    """
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    tasks = list(tasks)
    weights = np.ones(len(tasks)) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(tasks),) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"weights must be {len(tasks)} finite non-negative numbers, got {weights!r}")
    table = RegretTable([task for task, w in zip(tasks, weights) if w > 0], n_candidates_per_task)
    return table.greedy(k, weights[weights > 0])


class RegretTable:
    """The candidates of a set of tasks and each candidate's regret on each task.

    Built once (the expensive part), it serves greedy portfolios for any task
    weights and any set of configurations already tried, e.g. as the
    similarity of the tasks to a new study changes.

    Parameters
    ----------
    tasks : sequence of Task
        Single-objective tasks; those without a completed finite trial are ignored.
    n_candidates_per_task : int, default=10
        How many of each task's best trials are candidates.

    Attributes
    ----------
    task_names : list of str
        The tasks kept, in order: the columns of :attr:`regret`.
    regret : numpy.ndarray of shape (n_candidates, n_tasks)
        ``regret[c, t]``: candidate ``c``'s (estimated) normalised regret on task ``t``.
    """

    def __init__(self, tasks: Sequence, n_candidates_per_task: int = 10):
        if n_candidates_per_task < 1:
            raise ValueError(f"n_candidates_per_task must be positive, got {n_candidates_per_task}")
        scored = [_Scored(task) for task in tasks]
        self._kept = [i for i, task in enumerate(scored) if task.trials]
        self._tasks = [scored[i] for i in self._kept]
        self.task_names = [task.name for task in self._tasks]
        self.candidates: list[tuple[int, int]] = []  # (task index, trial index)
        seen = set()
        for source, task in enumerate(self._tasks):
            for index in np.argsort(task.normalised, kind="stable")[:n_candidates_per_task]:
                key = config_key(task.trials[index].params)
                if key not in seen:
                    seen.add(key)
                    self.candidates.append((source, int(index)))
        configs = [self._tasks[source].trials[index] for source, index in self.candidates]
        grouped = _group_values(configs)
        self.regret = np.empty((len(configs), len(self._tasks)))
        for t, task in enumerate(self._tasks):
            self.regret[:, t] = task.nearest_regrets(len(configs), *grouped)
        for c, (source, index) in enumerate(self.candidates):
            self.regret[c, source] = self._tasks[source].normalised[index]

    def task_weights(self, weights: Sequence[float]) -> np.ndarray:
        """Weights given for every task passed to the constructor, restricted to the tasks kept."""
        return np.asarray(weights, dtype=np.float64)[self._kept]

    def entry(self, c: int, expected_regret: float = float("nan")) -> PortfolioEntry:
        """Candidate ``c`` as a portfolio entry."""
        source, index = self.candidates[c]
        trial = self._tasks[source].trials[index]
        return PortfolioEntry(
            params=dict(trial.params),
            distributions=dict(trial.distributions),
            task_name=self._tasks[source].name,
            trial_number=trial.number,
            expected_regret=float(expected_regret),
        )

    def index(self, task_name: str, trial_number: int) -> int | None:
        """The candidate that is trial ``trial_number`` of task ``task_name``, None if none is."""
        for c, (source, index) in enumerate(self.candidates):
            if self._tasks[source].name == task_name and self._tasks[source].trials[index].number == trial_number:
                return c
        return None

    def greedy(self, k: int, weights: Sequence[float] | None = None, tried: Sequence[int] = ()) -> list[PortfolioEntry]:
        """The next ``k`` candidates a greedy portfolio adds to the candidates ``tried``.

        ``weights`` has one entry per kept task (None: equal); tasks of weight
        0 do not count. The candidates ``tried`` count as chosen already.
        """
        if not self._tasks or k == 0:
            return []
        w = np.ones(len(self._tasks)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.sum() <= 0:
            w = np.ones(len(self._tasks))
        w = w / w.sum()
        chosen: list[PortfolioEntry] = []
        available = np.ones(len(self.candidates), dtype=bool)
        best_so_far = np.ones(len(self._tasks))
        for c in tried:
            available[c] = False
            best_so_far = np.minimum(best_so_far, self.regret[c])
        alone = (self.regret * w).sum(axis=1)
        while len(chosen) < k and available.any():
            scores = (np.minimum(self.regret, best_so_far) * w).sum(axis=1)
            scores[~available] = np.inf
            # ties (e.g. once every weighted task is served): the lower regret alone, then the earlier
            c = int(np.lexsort((np.arange(len(scores)), alone, scores))[0])
            available[c] = False
            best_so_far = np.minimum(best_so_far, self.regret[c])
            chosen.append(self.entry(c, scores[c]))
        return chosen


class _Scored:
    """A task's completed finite trials with their normalised values."""

    def __init__(self, task):
        if len(task.directions) != 1:
            raise ValueError(
                f"task {task.name!r} has {len(task.directions)} objectives; portfolios are single-objective"
            )
        self.name = task.name
        self.trials = finite_trials(task.completed_trials())
        self.normalised = normalised_values([t.value for t in self.trials], task.direction)
        self._param_names = {name for t in self.trials for name in t.params}
        self._columns: dict = {}

    def nearest_regrets(self, n_configs: int, numeric: dict, categorical: dict) -> np.ndarray:
        """The mean normalised value of the trials nearest to each of ``n_configs`` configurations.

        ``numeric`` and ``categorical`` hold the configurations' values, as :func:`_group_values` groups them.
        """
        squared = np.zeros((n_configs, len(self.trials)))
        for (name, distribution), (rows, values) in numeric.items():
            if name not in self._param_names:
                continue
            column = self._numeric_column(name, distribution)
            gap = np.abs(column[None, :] - values[:, None])
            squared[rows] += np.where(np.isnan(gap), 1.0, gap) ** 2
        for name, (rows, keys) in categorical.items():
            if name not in self._param_names:
                continue
            codes, column = self._categorical_column(name)
            wanted = np.array([codes.get(key, -2) for key in keys])  # a missing parameter is coded -1
            squared[rows] += column[None, :] != wanted[:, None]
        nearest = squared <= squared.min(axis=1, keepdims=True) + 1e-12
        return (nearest * self.normalised).sum(axis=1) / nearest.sum(axis=1)

    def _numeric_column(self, name: str, distribution: BaseDistribution) -> np.ndarray:
        """The trials' values of ``name`` scaled by ``distribution`` (NaN where a trial lacks it)."""
        key = (name, distribution)
        if key not in self._columns:
            self._columns[key] = NumericScale.of(distribution).unit([t.params.get(name) for t in self.trials])
        return self._columns[key]

    def _categorical_column(self, name: str) -> tuple[dict[str, int], np.ndarray]:
        """``(codes, column)``: a code per distinct value of ``name`` (:func:`choice_key`), -1 where it is absent."""
        if name not in self._columns:
            keys = [choice_key(t.params[name]) if name in t.params else None for t in self.trials]
            codes = {key: i for i, key in enumerate(dict.fromkeys(k for k in keys if k is not None))}
            self._columns[name] = (codes, np.array([-1 if k is None else codes[k] for k in keys]))
        return self._columns[name]


def _group_values(configs: Sequence) -> tuple[dict, dict]:
    """The configurations' values grouped for :meth:`_Scored.nearest_regrets`.

    Numeric: ``(name, distribution) -> (rows, values scaled by it)``;
    categorical: ``name -> (rows, choice keys of the values)``.
    """
    numeric: dict = {}
    categorical: dict = {}
    for row, config in enumerate(configs):
        for name, value in config.params.items():
            distribution = config.distributions[name]
            if is_numeric(distribution):
                rows, values = numeric.setdefault((name, distribution), ([], []))
            else:
                rows, values = categorical.setdefault(name, ([], []))
                value = choice_key(value)
            values.append(value)
            rows.append(row)
    numeric = {
        (name, distribution): (np.array(rows), NumericScale.of(distribution).unit(values))
        for (name, distribution), (rows, values) in numeric.items()
    }
    categorical = {key: (np.array(rows), values) for key, (rows, values) in categorical.items()}
    return numeric, categorical
