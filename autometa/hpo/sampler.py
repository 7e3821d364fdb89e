"""``MetaLearnedSampler``: the Optuna sampler protocol around autometa's meta-learned search.

The sampler decides, trial by trial, who proposes a configuration: the
portfolio (:mod:`autometa.hpo.portfolio`), the surrogate
(:mod:`autometa.hpo.surrogate`, scoring the configurations of
:mod:`autometa.hpo.candidates`) or the fallback sampler. Every decision is a
function of the study's trials, the knowledge base and the sampler's random
state; the models it uses never see a study.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from autometa._common import check_int
from autometa.hpo.candidates import Candidates, Signatures
from autometa.hpo.encoded_tasks import EncodedTasks
from autometa.hpo.encoding import contains, finite_trials, normalised_ranks, rank_noise, standard_error
from autometa.hpo.knowledge_base import KnowledgeBase
from autometa.hpo.portfolio import PortfolioEntry, RegretTable, greedy_portfolio_entries
from autometa.hpo.similarity import (
    descriptor_weights,
    response_similarity,
    top_similar_weights,
)
from autometa.hpo.surrogate import expected_improvement, one_blas_thread

__all__ = ["MetaLearnedSampler"]

#: Trial user attrs written by the sampler, for dashboards.
WARM_START_KEY = "autometa:warm_start"
SOURCE_TASK_KEY = "autometa:source_task"
SOURCE_TRIAL_KEY = "autometa:source_trial"

SURROGATES = ("meta", None)
#: Completed trials needed before similarity re-weights the portfolio and the surrogate's prior.
MIN_SIMILARITY_TRIALS = 3
#: The most completed trials the surrogate is conditioned on: the best half and the most recent half.
MAX_SUPPORT = 64
#: How long a warm-start trial waits for a lower-numbered one still choosing its configuration.
WARM_START_WAIT_S = 10.0
#: The seed of the surrogate's meta-training: the surrogate is a function of the knowledge base (and the
#: steps) alone, shared by every sampler of it and shipped with the pretrained ones.
META_TRAIN_SEED = 0
#: The default ``meta_train_steps``, with which the pretrained knowledge bases' surrogates are shipped.
META_TRAIN_STEPS = 300


def usable_tasks(knowledge_base: KnowledgeBase) -> list:
    """The tasks of ``knowledge_base`` the sampler draws on: single-objective, with a completed finite trial."""
    return [task for task in knowledge_base if len(task.directions) == 1 and finite_trials(task.completed_trials())]


class MetaLearnedSampler(BaseSampler):
    """Warm-start a study from earlier, similar tasks, then search with a meta-learned surrogate.

    An Optuna sampler for single-objective studies that draws on a
    :class:`~autometa.hpo.KnowledgeBase` of earlier tasks. Trial by trial:

    1. **Warm start** (trials numbered below ``n_warm_start``): a
       configuration of a greedy portfolio of the earlier tasks
       (:func:`~autometa.hpo.portfolio.greedy_portfolio`), its tasks
       weighted by ``descriptor`` or equally. Once
       ``MIN_SIMILARITY_TRIALS`` (3) trials have completed, the rest of the
       portfolio serves the ``n_similar`` tasks whose response surfaces
       best explain the study's values
       (:func:`~autometa.hpo.similarity.response_similarity`). No
       configuration is tried twice.
    2. **Model-based search** (later trials): the configuration of highest
       expected improvement among ``n_candidates``
       (:mod:`autometa.hpo.candidates`: perturbations of the study's best
       trials, the best configurations of the three most similar earlier
       tasks, random ones), under a few-shot regressor meta-trained on the
       earlier tasks (:class:`~autometa.hpo.surrogate.DeepKernelRegressor`)
       and conditioned in closed form on the study's completed trials (at
       most ``MAX_SUPPORT`` = 64: the best half and the most recent), its
       prior the heads of the ``n_similar`` most similar tasks. Objective
       values are treated as noisy: a trial whose objective stored its
       per-fold scores (user attr ``"autometa:fold_scores"``, as
       :func:`~autometa.hpo.make_objective` and
       :class:`~autometa.hpo.MetaSearchCV` do) counts with its own noise,
       their standard error; the improvement is measured from the best
       value made worse by its own standard error (:func:`incumbent`), not
       from the luckiest value; and a candidate that would re-measure a
       completed trial within that trial's noise (or repeat a completed or
       running one) is not proposed.
    3. **Fallback**: ``fallback`` samples what the surrogate cannot model
       (a parameter the knowledge base never saw or a choice it never
       tried, a branch of a conditional space no completed trial took yet,
       a warm-start value the objective's distribution does not contain),
       every trial while the search has stalled (``patience``), with
       ``surrogate=None``, before any trial has completed, and in
       multi-objective studies (with a warning).

    The surrogate models the union search space of the completed trials; a
    parameter whose distribution changed is left to the fallback. On a
    conditional (define-by-run) space each candidate has exactly the
    parameters of the branch it takes, so the surrogate scores the
    configuration the objective will run.

    State lives in the study: every decision is a function of the study's
    trials, the knowledge base and the sampler's random state, so many
    workers on one storage, ``n_jobs`` and ``enqueue_trial`` (enqueued
    values win) work as with Optuna's samplers. A warm-start trial waits (up
    to ``WARM_START_WAIT_S``) for lower-numbered trials still choosing, so
    concurrent workers never try one configuration twice. The meta-trained
    surrogate is not study state: it is trained on first use and cached in
    the process (:meth:`autometa.hpo.encoded_tasks.EncodedTasks.meta_trained`),
    or read from the file shipped with a pretrained knowledge base.

    Parameters
    ----------
    knowledge_base : KnowledgeBase
        The earlier tasks; multi-objective ones and those without a completed
        trial are ignored. The sampler keeps a snapshot taken in ``__init__``.
    descriptor : mapping of str to float or None, default=None
        The new task's meta-features (:func:`autometa.hpo.compute_metafeatures`).
        Given, the initial portfolio serves the ``n_similar`` tasks most
        similar by descriptor (:func:`~autometa.hpo.similarity.descriptor_weights`);
        None serves all tasks equally.
    n_warm_start : int, default=5
        The portfolio size: how many trials start from earlier tasks.
    n_similar : int, default=5
        How many most similar tasks the portfolio and the surrogate's prior serve.
    fallback : optuna.samplers.BaseSampler or None, default=None
        The sampler for everything else; None means ``TPESampler(seed=seed)``.
    seed : int or None, default=None
        Seeds the candidates of the model-based search and the default
        fallback. The surrogate's meta-training always uses seed 0
        (``META_TRAIN_SEED``): it is a function of the knowledge base, the
        same in every worker and every sampler, and the pretrained knowledge
        bases ship it (:mod:`autometa.hpo.pretrained`).
    surrogate : {"meta"} or None, default="meta"
        ``"meta"``: model-based search after the warm start; None: the fallback.
    n_candidates : int, default=256
        Configurations scored per model-based trial.
    meta_train_steps : int, default=300
        Meta-training steps of the surrogate (16 tasks each).
    patience : int or None, default=20
        After the warm start, a trial goes to ``fallback`` while the study's
        best value is older than its last ``patience`` completed trials: the
        surrogate has stopped finding improvements (it models the coarse
        shape that earlier tasks share better than fine local detail), and
        the fallback refines. The surrogate resumes as soon as a trial
        improves on the best. None: the surrogate throughout.

    Attributes
    ----------
    portfolio : list of dict
        The initial warm-start configurations, in order (later warm-start
        trials may differ once similarity re-weights the portfolio).

    See Also
    --------
    autometa.hpo.KnowledgeBase : The earlier tasks, with their descriptors.
    autometa.hpo.portfolio.greedy_portfolio : The warm start's configurations.
    autometa.hpo.surrogate.DeepKernelRegressor : The meta-learned surrogate.
    optuna.samplers.TPESampler : The default fallback.

    Notes
    -----
    Each trial gets the user attr ``"autometa:warm_start"`` (True or False);
    a warm-start trial also ``"autometa:source_task"`` and
    ``"autometa:source_trial"``: the task and trial number its
    configuration came from.

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
    >>> sampler = MetaLearnedSampler(KnowledgeBase.from_studies(earlier), n_warm_start=2,
    ...                              meta_train_steps=50, seed=0)
    >>> study = optuna.create_study(sampler=sampler)
    >>> study.optimize(lambda trial: objective(trial, 1.2), n_trials=8)
    >>> [trial.user_attrs["autometa:warm_start"] for trial in study.trials[1:3]]
    [True, False]
    >>> study.trials[0].params == sampler.portfolio[0]
    True
    >>> study.best_value < 0.5
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
        surrogate: str | None = "meta",
        n_candidates: int = 256,
        meta_train_steps: int = META_TRAIN_STEPS,
        patience: int | None = 20,
    ) -> None:
        check_int(n_warm_start, "n_warm_start", 0)
        check_int(n_similar, "n_similar")
        if surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")
        check_int(n_candidates, "n_candidates")
        check_int(meta_train_steps, "meta_train_steps")
        check_int(patience, "patience", allow_none=True)
        self._fallback = fallback if fallback is not None else optuna.samplers.TPESampler(seed=seed)
        self._seed = seed
        self._rng = np.random.RandomState(seed)
        self._surrogate_kind = surrogate
        self._n_similar = n_similar
        self._n_candidates = n_candidates
        self._meta_train_steps = meta_train_steps
        self._patience = patience
        self._tasks = usable_tasks(knowledge_base)
        if descriptor is None:
            self._table: RegretTable | None = RegretTable(self._tasks)
            self._entries: list[PortfolioEntry] = self._table.greedy(n_warm_start)
        else:
            self._table = None
            weights = descriptor_weights(self._tasks, descriptor, n_similar)
            self._entries = greedy_portfolio_entries(self._tasks, n_warm_start, weights)
        self._records = {(task.name, t.number): t for task in self._tasks for t in task.trials}
        self._data: EncodedTasks | None = None
        self._model = None
        self._lock = threading.Lock()
        self._space_lock = threading.Lock()
        # the union search space of one study's completed trials, kept up to date trial by trial
        self._space_cache: tuple[tuple, set[int], dict[str, BaseDistribution | None]] | None = None
        self._trial_memo: tuple | None = None
        self._completed_memo: tuple | None = None
        self._signature_cache: tuple | None = None
        self._warned_multi_objective = False

    @classmethod
    def from_pretrained(cls, name: str, X, y, **kwargs) -> MetaLearnedSampler:
        """A sampler warm-started from the knowledge base of search space ``name`` that ships with autometa.

        The knowledge base (:func:`autometa.hpo.pretrained.load_pretrained`) holds TPE studies of
        the space ``name`` of :data:`autometa.hpo.spaces.SEARCH_SPACES` on PMLB data sets; the new
        task's descriptor is computed from ``(X, y)``, subsampled as the build did
        (:func:`autometa.hpo.pretrained.pretrained_descriptor`). Tune that same space, e.g. with
        ``autometa.hpo.spaces.make_objective(name, X, y)``. ``kwargs`` go to the constructor.

        Examples
        --------
        >>> import optuna
        >>> from sklearn.datasets import load_breast_cancer
        >>> from autometa.hpo import MetaLearnedSampler, make_objective
        >>> X, y = load_breast_cancer(return_X_y=True)
        >>> sampler = MetaLearnedSampler.from_pretrained("logistic_regression", X, y, seed=0)
        >>> study = optuna.create_study(direction="maximize", sampler=sampler)
        >>> study.optimize(make_objective("logistic_regression", X, y), n_trials=3)  # doctest: +SKIP
        """
        from autometa.hpo.pretrained import load_pretrained, pretrained_descriptor

        return cls(load_pretrained(name), descriptor=pretrained_descriptor(name, X, y), **kwargs)

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"], state["_space_lock"]
        state["_space_cache"] = state["_trial_memo"] = state["_completed_memo"] = state["_signature_cache"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._space_lock = threading.Lock()

    @property
    def portfolio(self) -> list[dict[str, Any]]:
        return [dict(entry.params) for entry in self._entries]

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._fallback.reseed_rng()

    # -- the sampler protocol ------------------------------------------------------
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self._multi_objective(study):
            return self._fallback.infer_relative_search_space(study, trial)
        if trial.number < len(self._entries):
            return {}
        completed, uses_surrogate = self._trial_state(study, trial, refresh=True)
        space = self._surrogate_space(study, completed) if uses_surrogate else {}
        return space or self._fallback.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if self._multi_objective(study):
            return self._fallback.sample_relative(study, trial, search_space)
        if trial.number < len(self._entries) or not search_space:
            return {}
        completed, uses_surrogate = self._trial_state(study, trial)
        data = self._task_data() if uses_surrogate else None
        if data is None or not completed or not all(data.encoder.knows(n, d) for n, d in search_space.items()):
            return self._fallback.sample_relative(study, trial, search_space)
        with one_blas_thread():
            return self._suggest(study, completed, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        if trial.number < len(self._entries) and not self._multi_objective(study):
            # the trial's warm-start choice, as before_trial recorded it in the storage
            attrs = study._storage.get_trial(trial._trial_id).user_attrs
            record = self._records.get((attrs.get(SOURCE_TASK_KEY), attrs.get(SOURCE_TRIAL_KEY)))
            if record is not None and param_name in record.params:
                value = record.params[param_name]
                if contains(param_distribution, value):
                    return value
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        entry = None if self._multi_objective(study) else self._choose_warm_start(study, trial)
        # FrozenTrial has no setter; samplers write trial attrs through the storage, as Optuna's do.
        # The storage writes one attr at a time and other workers wait for WARM_START_KEY
        # (_trials_after_earlier_choices): it goes last, so that it means "the choice is complete".
        if entry is not None:
            study._storage.set_trial_user_attr(trial._trial_id, SOURCE_TRIAL_KEY, entry.trial_number)
            study._storage.set_trial_user_attr(trial._trial_id, SOURCE_TASK_KEY, entry.task_name)
        study._storage.set_trial_user_attr(trial._trial_id, WARM_START_KEY, entry is not None)
        self._fallback.before_trial(study, trial)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._fallback.after_trial(study, trial, state, values)

    # -- the incumbent -----------------------------------------------------------------
    def best_trial(self, study: Study) -> FrozenTrial:
        """The completed trial the sampler believes best: the incumbent to hand to a user.

        A study's best value is the maximum (or minimum) of noisy estimates, so
        the trial that reached it is often lucky rather than good
        ("overtuning"). The incumbent is the trial of best value **after
        discounting its own noise**: its value made worse by one standard
        error of its fold scores (user attr ``"autometa:fold_scores"``, as
        :func:`~autometa.hpo.make_objective` and
        :class:`~autometa.hpo.MetaSearchCV` store them), i.e. the best lower
        confidence bound when maximising. A steady configuration beats one
        that scored higher on luck in one fold. Without fold scores it is the
        trial of best value, as ``study.best_trial``. The model-based search
        measures improvement from the same trial (:func:`incumbent`). Ties go
        to the lower trial number.

        Parameters
        ----------
        study : optuna.Study
            A single-objective study.

        Returns
        -------
        optuna.trial.FrozenTrial

        Raises
        ------
        ValueError
            If the study has no completed trial with a finite value, or is multi-objective.

        See Also
        --------
        best_params : Its parameters.
        """
        if len(study.directions) != 1:
            raise ValueError("best_trial is for single-objective studies; use study.best_trials")
        completed = _completed(study)
        if not completed:
            raise ValueError("the study has no completed trial with a finite value yet")
        return completed[incumbent(completed, study.direction)]

    def best_params(self, study: Study) -> dict[str, Any]:
        """The parameters of :meth:`best_trial`: the configuration the sampler believes best.

        Use them instead of ``study.best_params`` to refit the final model.

        Examples
        --------
        >>> import optuna
        >>> from autometa.hpo import KnowledgeBase, MetaLearnedSampler
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> earlier = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        >>> earlier.optimize(lambda trial: (trial.suggest_float("x", -10, 10) - 1) ** 2, n_trials=30)
        >>> sampler = MetaLearnedSampler(KnowledgeBase.from_studies([earlier]), n_warm_start=2,
        ...                              meta_train_steps=20, seed=0)
        >>> study = optuna.create_study(sampler=sampler)
        >>> study.optimize(lambda trial: (trial.suggest_float("x", -10, 10) - 1.2) ** 2, n_trials=6)
        >>> sorted(sampler.best_params(study))
        ['x']
        """
        return dict(self.best_trial(study).params)

    # -- warm start ----------------------------------------------------------------
    def _choose_warm_start(self, study: Study, trial: FrozenTrial) -> PortfolioEntry | None:
        """This trial's portfolio configuration: None after the warm start."""
        if trial.number >= len(self._entries):
            return None
        trials = self._trials_after_earlier_choices(study, trial)
        tried = {
            (t.user_attrs[SOURCE_TASK_KEY], t.user_attrs[SOURCE_TRIAL_KEY])
            for t in trials
            if t.number != trial.number and SOURCE_TASK_KEY in t.user_attrs and SOURCE_TRIAL_KEY in t.user_attrs
        }
        completed = finite_trials(t for t in trials if t.state == TrialState.COMPLETE)
        if len(completed) >= MIN_SIMILARITY_TRIALS and len(self._tasks) > 1:
            with one_blas_thread():
                similarity = self._similarity(completed, study.direction)
            weights = top_similar_weights(similarity, self._n_similar)
            table = self._regret_table()
            indices = [table.index(name, number) for name, number in tried]
            entries = table.greedy(1, table.task_weights(weights), [c for c in indices if c is not None])
            if entries:
                return entries[0]
        for entry in self._entries:
            if (entry.task_name, entry.trial_number) not in tried:
                return entry
        return None

    def _trials_after_earlier_choices(self, study: Study, trial: FrozenTrial) -> list[FrozenTrial]:
        """The study's trials, once every lower-numbered running trial has recorded its choice."""
        deadline = time.monotonic() + WARM_START_WAIT_S
        while True:
            trials = study.get_trials(deepcopy=False)
            choosing = [
                t
                for t in trials
                if t.number < trial.number and t.state == TrialState.RUNNING and WARM_START_KEY not in t.user_attrs
            ]
            if not choosing or time.monotonic() > deadline:
                return trials
            time.sleep(0.01)

    def _regret_table(self) -> RegretTable:
        with self._lock:
            if self._table is None:
                self._table = RegretTable(self._tasks)
            return self._table

    # -- similarity and the surrogate ------------------------------------------------
    def _similarity(self, completed: Sequence[FrozenTrial], direction: StudyDirection) -> np.ndarray:
        """Each task's response similarity to the study, by nearest-neighbour surfaces.

        Cheap and needs no meta-training, so a warm-start trial decides
        quickly (workers wait for it); the model-based search uses the
        surrogate's per-task heads instead, one matrix product per trial.
        """
        data = self._task_data()
        x = data.encoder.encode([t.params for t in completed])
        values = np.array([t.values[0] for t in completed])
        return response_similarity(values, data.surfaces.predict(x), _direction(direction))

    def _task_data(self) -> EncodedTasks:
        with self._lock:
            if self._data is None:
                self._data = EncodedTasks(self._tasks)
            return self._data

    def _surrogate(self):
        data = self._task_data()
        with self._lock:
            if self._model is None:
                self._model = data.meta_trained(self._meta_train_steps, META_TRAIN_SEED)
            return self._model

    def _trial_state(self, study: Study, trial: FrozenTrial, refresh: bool = False) -> tuple[list[FrozenTrial], bool]:
        """``(completed trials, whether the surrogate proposes)`` for ``trial``: computed when its relative search
        space is inferred (``refresh``), then reused when its relative parameters are sampled, as Optuna reuses
        the search space between the two calls."""
        key = (id(study._storage), study._study_id, trial.number)
        memo = self._trial_memo
        if refresh or memo is None or memo[0] != key:
            completed, best = self._completed_trials(study)
            memo = (key, completed, self._uses_surrogate(completed, best))
            self._trial_memo = memo
        return memo[1], memo[2]

    def _completed_trials(self, study: Study) -> tuple[list[FrozenTrial], int]:
        """The study's completed trials with a finite value, in order, and the index of the first of the best
        of them (-1 when there is none).

        Kept from call to call: when the completed trials seen last time are still the first ones, as the same
        objects (an in-memory storage), only those completed since are looked at; otherwise (another storage,
        or a trial completed out of order) all are.
        """
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        key = (id(study._storage), study._study_id)
        memo = self._completed_memo
        if memo is not None and memo[0] == key and 0 < memo[1] <= len(complete) and complete[memo[1] - 1] is memo[2]:
            _, seen, _, finite, best = memo
        else:
            seen, finite, best = 0, [], -1
        added = finite_trials(complete[seen:])
        if added:
            sign = 1.0 if study.direction == StudyDirection.MINIMIZE else -1.0
            best_value = sign * finite[best].values[0] if best >= 0 else np.inf
            finite = finite + added  # a new list: a caller may still hold the previous one
            for index in range(len(finite) - len(added), len(finite)):
                value = sign * finite[index].values[0]
                if value < best_value:
                    best, best_value = index, value
        self._completed_memo = (key, len(complete), complete[-1] if complete else None, finite, best)
        return finite, best

    def _uses_surrogate(self, completed: list[FrozenTrial], best: int) -> bool:
        """Whether the surrogate proposes the next model-based trial: it is on and has not stalled (the best of
        the ``completed`` trials, at index ``best``, is among the last ``patience``)."""
        if self._surrogate_kind is None:
            return False
        if self._patience is None:
            return True
        if len(completed) <= len(self._entries) + self._patience:
            return True
        return len(completed) - 1 - best < self._patience

    def _surrogate_space(self, study: Study, completed: list[FrozenTrial]) -> dict[str, BaseDistribution]:
        """The union search space of the ``completed`` trials, restricted to what the surrogate models.

        A parameter counts when every completed trial that has it drew it from
        one distribution; one whose distribution changed is left out (as from
        Optuna's intersection search space) and goes to the fallback. The union
        is updated with the trials not seen before, so a trial costs the same
        however long the study.
        """
        if not completed:
            return {}
        encoder = self._task_data().encoder
        key = (id(study._storage), study._study_id)
        with self._space_lock:
            if self._space_cache is None or self._space_cache[0] != key:
                self._space_cache = (key, set(), {})
            _, seen, distributions = self._space_cache
            for t in completed:
                if t.number in seen:
                    continue
                seen.add(t.number)
                for name, distribution in t.distributions.items():
                    known = distributions.setdefault(name, distribution)
                    if known is not None and known is not distribution and known != distribution:
                        distributions[name] = None
            union = dict(distributions)
        return {
            name: distribution
            for name, distribution in sorted(union.items())
            if distribution is not None and not distribution.single() and encoder.knows(name, distribution)
        }

    def _conditioned(self, completed: list[FrozenTrial], direction: StudyDirection):
        """The surrogate and what it is conditioned on: ``(model, support, x, y, noise, prior_mean, rho)``.

        ``support`` are the trials (:func:`_support`), ``x`` their encoding, ``y`` their
        normalised ranks (0 best), ``noise`` their own noise variances in rank units (from the
        objective's fold scores; 0 without them), ``prior_mean`` the head of the ``n_similar``
        most similar tasks and ``rho`` every task's response similarity (both None below
        ``MIN_SIMILARITY_TRIALS``).
        """
        data, model = self._task_data(), self._surrogate()
        support = _support(completed, direction)
        values = [t.values[0] for t in support]
        y = normalised_ranks(values, _direction(direction))
        noise = rank_noise(values, [standard_error(t) for t in support]) ** 2
        x = data.encoder.encode([t.params for t in support])
        prior_mean, rho = None, None
        if len(support) >= MIN_SIMILARITY_TRIALS and len(model.task_heads):
            rho = response_similarity(y, model.task_predictions(x))
            prior_mean = top_similar_weights(rho, self._n_similar) @ model.task_heads
        return model, support, x, y, noise, prior_mean, rho

    def _suggest(
        self, study: Study, completed: list[FrozenTrial], search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """The candidate of highest noisy expected improvement that is not a re-evaluation, under the surrogate.

        The improvement is measured from the :func:`incumbent` among the support
        trials, at its normalised rank made worse by its own noise in rank units:
        from the best value that is not luck, rather than from the luckiest. A
        candidate is left out when it would re-measure a trial: when the
        surrogate bounds ``|f(candidate) - f(trial)|`` (:meth:`NumpySurrogate.difference_bound`)
        below the trial's own noise, or the candidate equals a completed or
        running trial. If every candidate is left out, all are scored.
        """
        data = self._task_data()
        model, support, x, y, noise, prior_mean, rho = self._conditioned(completed, study.direction)
        similar = np.argsort(-rho, kind="stable")[:3] if rho is not None else np.zeros(0, dtype=int)
        best = int(np.argmin(y))
        candidates = Candidates(search_space, self._signatures(study, completed, search_space), self._rng)
        # half the candidates search locally: around the best trial, and the next four best
        n_local = self._n_candidates // 2
        top = np.argsort(y, kind="stable")[:5]
        candidates.local([support[top[0]].params], n_local // 2)
        candidates.local([support[i].params for i in top[1:]], n_local - n_local // 2)
        sources = [config for t in similar for config in data.best_configs[t]]
        candidates.fixed(sources[: max(self._n_candidates - n_local - 1, 0)])
        candidates.random(self._n_candidates - len(candidates))
        x_candidates = np.repeat(x[best : best + 1], len(candidates), axis=0)
        candidates.encode_into(x_candidates, data.encoder)
        mu, sd = model.predict(x, y, x_candidates, prior_mean, noise)
        chosen = incumbent(support, study.direction)
        score = expected_improvement(mu, sd, float(y[chosen] + np.sqrt(noise[chosen])))
        repeats = self._repeats(study, model, x, y, noise, prior_mean, x_candidates)
        if not repeats.all():
            score[repeats] = -np.inf
        return candidates.params(int(np.argmax(score)))

    def _signatures(self, study: Study, completed: list[FrozenTrial],
                    search_space: dict[str, BaseDistribution]) -> Signatures:
        """The :class:`Signatures` of ``completed``, extended by the trials completed since the last call when
        they all come after the ones it has seen (one study, one search space), else built anew."""
        key = (id(study._storage), study._study_id, tuple(search_space.items()))
        cached = self._signature_cache
        if cached is not None and cached[0] == key:
            _, seen, signatures = cached
            new = [t for t in completed if t.number not in seen]
            last = max(seen, default=-1)
            if len(seen) + len(new) == len(completed) and all(t.number > last for t in new):
                signatures.add(new)
                seen.update(t.number for t in new)
                return signatures
        signatures = Signatures(completed, search_space)
        self._signature_cache = (key, {t.number for t in completed}, signatures)
        return signatures

    def _repeats(self, study, model, x, y, noise, prior_mean, x_candidates) -> np.ndarray:
        """Which candidates would re-measure a support trial within its noise, or equal a completed or running trial."""
        running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.params]
        x_running = self._task_data().encoder.encode([t.params for t in running]) if running else x[:0]
        taken = np.concatenate([x, x_running])
        repeats = (np.abs(x_candidates[:, None, :] - taken[None, :, :]).max(-1) < 1e-12).any(1)
        if noise.any():
            bound = model.difference_bound(x, y, x_candidates, x, prior_mean, noise)
            repeats |= (bound < np.sqrt(noise)[None, :]).any(1)
        return repeats

    def _multi_objective(self, study: Study) -> bool:
        if len(study.directions) == 1:
            return False
        if not self._warned_multi_objective:
            warnings.warn(
                "MetaLearnedSampler warm-starts single-objective studies only; "
                "this multi-objective study uses the fallback sampler throughout",
                stacklevel=3,
            )
            self._warned_multi_objective = True
        return True


def incumbent(trials: Sequence[FrozenTrial], direction: StudyDirection) -> int:
    """The index of the trial of best value made worse by one standard error of its fold scores.

    :func:`autometa.hpo.encoding.standard_error` (0 without fold scores, so
    then simply the best value); ties go to the earlier trial.
    """
    values = np.array([t.values[0] for t in trials])
    errors = np.array([standard_error(t) for t in trials])
    bound = values + errors if direction == StudyDirection.MINIMIZE else -(values - errors)
    return int(np.argmin(bound))


def _support(completed: list[FrozenTrial], direction: StudyDirection) -> list[FrozenTrial]:
    """At most ``MAX_SUPPORT`` trials: the best half and the most recent others (a function of the trials)."""
    if len(completed) <= MAX_SUPPORT:
        return completed
    values = np.array([t.values[0] for t in completed])
    order = np.argsort(values if direction == StudyDirection.MINIMIZE else -values, kind="stable")
    best = set(order[: MAX_SUPPORT // 2].tolist())
    recent = [i for i in range(len(completed) - 1, -1, -1) if i not in best][: MAX_SUPPORT - len(best)]
    return [completed[i] for i in sorted(best | set(recent))]


def _completed(study: Study) -> list[FrozenTrial]:
    """The completed trials with a finite value (single-objective studies)."""
    return finite_trials(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _direction(direction: StudyDirection) -> str:
    return "maximize" if direction == StudyDirection.MAXIMIZE else "minimize"
