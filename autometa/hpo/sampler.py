"""``MetaLearnedSampler``: start a study from what worked on earlier, similar tasks."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from autometa.hpo.knowledge_base import KnowledgeBase
from autometa.hpo.metafeatures import metafeature_vector
from autometa.hpo.portfolio import PortfolioEntry, _greedy_entries

__all__ = ["MetaLearnedSampler", "task_weights"]

#: Trial user attrs written by the sampler, for dashboards.
WARM_START_KEY = "autometa:warm_start"
SOURCE_TASK_KEY = "autometa:source_task"
SOURCE_TRIAL_KEY = "autometa:source_trial"


class MetaLearnedSampler(BaseSampler):
    """Warm-start a study with a portfolio of configurations from earlier tasks, then hand over.

    The first ``n_warm_start`` trials of the study (by trial number) try, in
    order, the configurations of a greedy portfolio
    (:func:`autometa.hpo.portfolio.greedy_portfolio`) built from the
    knowledge base's single-objective tasks, weighted by their similarity to
    the new task (:func:`task_weights`). Everything else is sampled by
    ``fallback``: every trial after the warm start, and, during it, any
    parameter the portfolio configuration lacks (a parameter the knowledge
    base never saw, a conditional branch the configuration did not take) or
    whose value lies outside the distribution the objective asks for.

    The portfolio is a deterministic function of the knowledge base and the
    descriptor, computed once in ``__init__``, and the warm-start trial is
    chosen by ``trial.number``, so workers sharing a storage and
    ``study.optimize(..., n_jobs=...)`` try each configuration once, like
    Optuna's own samplers. A parameter fixed by ``study.enqueue_trial`` keeps
    its enqueued value. Multi-objective studies use ``fallback`` only, with a
    warning.

    This is version 1: without a descriptor all tasks weigh the same (the
    issue's response-surface similarity, from the trials seen so far, and a
    meta-learned surrogate after the warm start are for a later version).

    Each trial gets the user attr ``"autometa:warm_start"`` (True or False);
    warm-start trials also ``"autometa:source_task"`` and
    ``"autometa:source_trial"``: the task and trial number their
    configuration came from.

    Parameters
    ----------
    knowledge_base : KnowledgeBase
        The earlier tasks; multi-objective ones and those without a completed
        trial are ignored.
    descriptor : mapping of str to float or None, default=None
        The new task's meta-features (:func:`autometa.hpo.compute_metafeatures`).
        Given, the portfolio serves the ``n_similar`` tasks most similar by
        descriptor; None serves all tasks equally.
    n_warm_start : int, default=5
        The portfolio size: how many trials start from earlier tasks.
    n_similar : int, default=5
        How many most similar tasks the portfolio serves when ``descriptor`` is given.
    fallback : optuna.samplers.BaseSampler or None, default=None
        The sampler for everything else; None means ``TPESampler(seed=seed)``.
    seed : int or None, default=None
        Seed of the default fallback (the portfolio itself is deterministic).

    Attributes
    ----------
    portfolio : list of dict
        The warm-start configurations, in the order tried.

    Examples
    --------
    >>> import optuna
    >>> from autometa.hpo import KnowledgeBase, MetaLearnedSampler
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> def objective(trial, optimum):
    ...     return (trial.suggest_float("x", -10, 10) - optimum) ** 2
    >>> earlier = []
    >>> for optimum in (1.0, 1.5, 2.0):
    ...     study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    ...     study.optimize(lambda trial: objective(trial, optimum), n_trials=30)
    ...     earlier.append(study)
    >>> sampler = MetaLearnedSampler(KnowledgeBase.from_studies(earlier), n_warm_start=3, seed=0)
    >>> study = optuna.create_study(sampler=sampler)
    >>> study.optimize(lambda trial: objective(trial, 1.2), n_trials=10)
    >>> [trial.user_attrs["autometa:warm_start"] for trial in study.trials[2:4]]
    [True, False]
    >>> study.trials[0].params == sampler.portfolio[0]
    True
    """

    def __init__(
        self,
        knowledge_base: KnowledgeBase,
        descriptor: Mapping[str, float] | None = None,
        n_warm_start: int = 5,
        n_similar: int = 5,
        fallback: BaseSampler | None = None,
        seed: int | None = None,
    ) -> None:
        if n_warm_start < 0:
            raise ValueError(f"n_warm_start must be non-negative, got {n_warm_start}")
        if n_similar < 1:
            raise ValueError(f"n_similar must be positive, got {n_similar}")
        self._fallback = fallback if fallback is not None else optuna.samplers.TPESampler(seed=seed)
        tasks = [task for task in knowledge_base if len(task.directions) == 1 and task.completed_trials()]
        weights = None if descriptor is None else task_weights(tasks, descriptor, n_similar)
        self._entries: list[PortfolioEntry] = _greedy_entries(tasks, n_warm_start, weights)
        self._warned_multi_objective = False

    @property
    def portfolio(self) -> list[dict[str, Any]]:
        return [dict(entry.params) for entry in self._entries]

    def reseed_rng(self) -> None:
        self._fallback.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self._entry(study, trial) is not None:
            return {}
        return self._fallback.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if self._entry(study, trial) is not None:
            return {}
        return self._fallback.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        entry = self._entry(study, trial)
        if entry is not None and param_name in entry.params:
            value = entry.params[param_name]
            if _contains(param_distribution, value):
                return value
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        entry = self._entry(study, trial)
        # FrozenTrial has no setter; samplers write trial attrs through the storage, as Optuna's do.
        study._storage.set_trial_user_attr(trial._trial_id, WARM_START_KEY, entry is not None)
        if entry is not None:
            study._storage.set_trial_user_attr(trial._trial_id, SOURCE_TASK_KEY, entry.task_name)
            study._storage.set_trial_user_attr(trial._trial_id, SOURCE_TRIAL_KEY, entry.trial_number)
        self._fallback.before_trial(study, trial)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._fallback.after_trial(study, trial, state, values)

    def _entry(self, study: Study, trial: FrozenTrial) -> PortfolioEntry | None:
        """The portfolio entry of this trial, None after the warm start."""
        if len(study.directions) > 1:
            if not self._warned_multi_objective:
                warnings.warn(
                    "MetaLearnedSampler warm-starts single-objective studies only; "
                    "this multi-objective study uses the fallback sampler throughout",
                    stacklevel=2,
                )
                self._warned_multi_objective = True
            return None
        return self._entries[trial.number] if trial.number < len(self._entries) else None


def task_weights(tasks: Sequence, descriptor: Mapping[str, float], n_similar: int) -> np.ndarray:
    """Uniform weights over the ``n_similar`` tasks whose descriptors are nearest to ``descriptor``.

    Each meta-feature column is standardised by its mean and standard
    deviation over the described tasks; columns that are NaN for the new
    task or for any described task, or constant across them, are left out;
    the distance is Euclidean on the rest. Tasks without a descriptor get
    weight 0. Ties go to the earlier task. Without a usable column (or a
    described task) every task gets the same weight, with a warning.

    Returns
    -------
    numpy.ndarray of shape (len(tasks),)
        Weights summing to 1.
    """
    tasks = list(tasks)
    uniform = np.full(len(tasks), 1.0 / max(len(tasks), 1))
    described = [i for i, task in enumerate(tasks) if task.descriptor is not None]
    query = metafeature_vector(descriptor)
    if described:
        matrix = np.array([metafeature_vector(tasks[i].descriptor) for i in described])
        usable = np.isfinite(query) & np.all(np.isfinite(matrix), axis=0)
        scale = matrix[:, usable].std(axis=0) if usable.any() else np.empty(0)
        usable[usable] = scale > 0
    if not described or not usable.any():
        warnings.warn(
            "no meta-feature is known for both the new task and the knowledge base's tasks; "
            "weighing all tasks equally",
            stacklevel=2,
        )
        return uniform
    mean, std = matrix[:, usable].mean(axis=0), matrix[:, usable].std(axis=0)
    distance = np.linalg.norm((matrix[:, usable] - mean) / std - (query[usable] - mean) / std, axis=1)
    nearest = np.argsort(distance, kind="stable")[:n_similar]
    weights = np.zeros(len(tasks))
    weights[[described[i] for i in nearest]] = 1.0 / len(nearest)
    return weights


def _contains(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is a valid value of ``distribution``."""
    if isinstance(distribution, CategoricalDistribution):
        # by identity-aware equality: 1 and True are different choices to the objective
        return any(type(value) is type(choice) and value == choice for choice in distribution.choices)
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (TypeError, ValueError):
        return False
