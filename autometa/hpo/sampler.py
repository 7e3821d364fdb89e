"""``MetaLearnedSampler``: start a study from what worked on earlier, similar tasks, then search with a meta-learned model."""

from __future__ import annotations

import hashlib
import math
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from autometa.hpo.knowledge_base import KnowledgeBase
from autometa.hpo.metafeatures import metafeature_vector
from autometa.hpo.portfolio import PortfolioEntry, RegretTable, _greedy_entries
from autometa.hpo.similarity import NearestNeighbourSurfaces, response_similarity, top_similar_weights
from autometa.hpo.surrogate import SpaceEncoder, expected_improvement, normalised_ranks, one_blas_thread

__all__ = ["MetaLearnedSampler", "task_weights"]

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
# meta-trained surrogates by (knowledge-base content, seed, settings): a pure function of them
_SURROGATE_CACHE: dict[str, Any] = {}
_SURROGATE_CACHE_SIZE = 4
_CACHE_LOCK = threading.Lock()


class MetaLearnedSampler(BaseSampler):
    """Warm-start a study from earlier tasks, then search with a meta-learned surrogate.

    The algorithm, per trial (single-objective studies):

    1. **Warm start** (trials numbered below ``n_warm_start``). Each tries a
       configuration of a greedy portfolio
       (:func:`autometa.hpo.portfolio.greedy_portfolio`) of the knowledge
       base's single-objective tasks. The first trials take the portfolio
       built in ``__init__`` (tasks weighted by ``descriptor``, or equally),
       in order. Once ``MIN_SIMILARITY_TRIALS`` (3) trials have completed,
       the portfolio is re-weighted by *response similarity*
       (:mod:`autometa.hpo.similarity`): the Spearman correlation between the
       study's values and each earlier task's predicted values at the same
       configurations (its nearest trial's, in the encoded space); the
       ``n_similar`` most similar tasks count, and the
       greedy portfolio continues from the configurations already tried.
       Configurations already tried by any trial of the study are never
       repeated.
    2. **Model-based search** (later trials; ``surrogate="meta"``; the
       fallback's while the best trial is more than ``patience`` trials old). A
       few-shot regressor (:class:`autometa.hpo.surrogate.DeepKernelRegressor`:
       Bayesian linear regression on MLP features, ALPaCA / ABLR),
       meta-trained on the knowledge base's tasks (configuration ->
       normalised rank of the objective), is conditioned in closed form on
       the study's completed trials (at most ``MAX_SUPPORT`` = 64: the best
       half and the most recent). The prior mean of its linear head is the
       average head of the ``n_similar`` tasks most similar to the study
       (the same correlation, with each task's response surface predicted
       by its own posterior head: one matrix product for all tasks). It scores
       ``n_candidates`` configurations by expected improvement (its
       posterior mean and standard deviation, targets the normalised ranks of
       the study's values): half are Gaussian perturbations of the best trial
       and of the next four (at 20%, 5% and 1% of each range; categorical
       values changed with probability 0.2, to one allowed with the trial's
       signature), three are the best trials of each of the three most
       similar earlier tasks, the rest random (the signature of a random
       completed trial, its values uniform); the best candidate becomes the
       trial's relative sample. Parameters outside the relative search space
       keep the best trial's values when candidates are scored.

    The surrogate models the parameters the knowledge base saw (numeric ones
    scaled to ``[0, 1]``, log-scale where the knowledge base drew them on one,
    categorical ones one-hot) that some completed trial of the study has,
    drawn from one distribution in every trial that has them (the union
    search space; a parameter whose distribution changed is left out, as
    from Optuna's intersection search space). On a conditional
    (define-by-run) space a candidate has only the parameters of its
    *signature*, the relative parameters a configuration has (the branch it
    took), learned from the study's completed trials: a perturbation keeps
    its trial's signature and changes a categorical value only to one that a
    trial of that signature took, or that no trial took yet; a configuration
    of an earlier task keeps its own parameters. The parameters a candidate
    lacks are encoded as missing, as in the knowledge base's trials that lack
    them, so the surrogate scores the configuration the objective will run.
    Everything else goes to ``fallback`` through ``sample_independent``:
    parameters the knowledge base never saw, parameters of a branch no
    completed trial took yet (or that the chosen candidate lacks),
    categorical parameters with a choice the knowledge base never tried, and
    (during the warm start) any parameter the portfolio configuration lacks
    or whose value lies outside the distribution the objective asks for. On
    a flat space (every completed trial has the same parameters, and so do
    the earlier tasks' configurations) the union is the intersection and the
    suggestions are version 2's, bit for bit. With ``surrogate=None``, or
    before a trial has completed, trials after the warm start are the
    fallback's (version 1's behaviour).

    State lives in the study: every decision is a function of the study's
    trials (``study.get_trials``), the knowledge base and the sampler's
    random state, so many workers on one storage, ``n_jobs`` and
    ``enqueue_trial`` (enqueued values win) work as with Optuna's samplers.
    A warm-start trial records its source in its user attrs, and waits (up to
    ``WARM_START_WAIT_S``) for a lower-numbered trial still choosing, so
    concurrent workers never try a configuration twice. The meta-trained
    surrogate is trained on first use and cached, keyed by the knowledge
    base's content and ``seed``: it is not study state. Multi-objective
    studies use ``fallback`` only, with one warning.

    Each trial gets the user attr ``"autometa:warm_start"`` (True or False);
    warm-start trials also ``"autometa:source_task"`` and
    ``"autometa:source_trial"``: the task and trial number their
    configuration came from.

    Parameters
    ----------
    knowledge_base : KnowledgeBase
        The earlier tasks; multi-objective ones and those without a completed
        trial are ignored. The sampler keeps a snapshot taken in ``__init__``.
    descriptor : mapping of str to float or None, default=None
        The new task's meta-features (:func:`autometa.hpo.compute_metafeatures`).
        Given, the initial portfolio serves the ``n_similar`` tasks most
        similar by descriptor; None serves all tasks equally.
    n_warm_start : int, default=5
        The portfolio size: how many trials start from earlier tasks.
    n_similar : int, default=5
        How many most similar tasks the portfolio and the surrogate's prior serve.
    fallback : optuna.samplers.BaseSampler or None, default=None
        The sampler for everything else; None means ``TPESampler(seed=seed)``.
    seed : int or None, default=None
        Seeds the candidates of the model-based search, the default fallback
        and meta-training (None meta-trains with seed 0, so the surrogate is
        the same in every worker).
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
        meta_train_steps: int = 300,
        patience: int | None = 20,
    ) -> None:
        if not isinstance(n_warm_start, int) or n_warm_start < 0:
            raise ValueError(f"n_warm_start must be a non-negative int, got {n_warm_start!r}")
        if not isinstance(n_similar, int) or n_similar < 1:
            raise ValueError(f"n_similar must be a positive int, got {n_similar!r}")
        if surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")
        if not isinstance(n_candidates, int) or n_candidates < 1:
            raise ValueError(f"n_candidates must be a positive int, got {n_candidates!r}")
        if not isinstance(meta_train_steps, int) or meta_train_steps < 1:
            raise ValueError(f"meta_train_steps must be a positive int, got {meta_train_steps!r}")
        if patience is not None and (not isinstance(patience, int) or patience < 1):
            raise ValueError(f"patience must be a positive int or None, got {patience!r}")
        self._fallback = fallback if fallback is not None else optuna.samplers.TPESampler(seed=seed)
        self._seed = seed
        self._rng = np.random.RandomState(seed)
        self._surrogate_kind = surrogate
        self._n_similar = n_similar
        self._n_candidates = n_candidates
        self._meta_train_steps = meta_train_steps
        self._patience = patience
        self._tasks = [
            task
            for task in knowledge_base
            if len(task.directions) == 1 and any(_finite(t.values) for t in task.completed_trials())
        ]
        if descriptor is None:
            self._table: RegretTable | None = RegretTable(self._tasks)
            self._entries: list[PortfolioEntry] = self._table.greedy(n_warm_start)
        else:
            self._table = None
            self._entries = _greedy_entries(self._tasks, n_warm_start, task_weights(self._tasks, descriptor, n_similar))
        self._records = {(task.name, t.number): t for task in self._tasks for t in task.trials}
        self._data: _TaskData | None = None
        self._model = None
        self._lock = threading.Lock()
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
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

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
        completed = _completed(study)
        space = self._surrogate_space(completed) if self._uses_surrogate(completed, study.direction) else {}
        return space or self._fallback.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if self._multi_objective(study):
            return self._fallback.sample_relative(study, trial, search_space)
        if trial.number < len(self._entries) or not search_space:
            return {}
        completed = _completed(study)
        data = self._task_data() if self._uses_surrogate(completed, study.direction) else None
        if data is None or not completed or not all(data.encoder.knows(n, d) for n, d in search_space.items()):
            return self._fallback.sample_relative(study, trial, search_space)
        with one_blas_thread():
            return self._suggest(completed, search_space, study.direction)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        if trial.number < len(self._entries) and not self._multi_objective(study):
            # the trial's warm-start choice, as before_trial recorded it in the storage
            attrs = study._storage.get_trial(trial._trial_id).user_attrs
            record = self._records.get((attrs.get(SOURCE_TASK_KEY), attrs.get(SOURCE_TRIAL_KEY)))
            if record is not None and param_name in record.params:
                value = record.params[param_name]
                if _contains(param_distribution, value):
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
        completed = [t for t in trials if t.state == TrialState.COMPLETE and _finite(t.values)]
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

    def _task_data(self) -> _TaskData:
        with self._lock:
            if self._data is None:
                self._data = _TaskData(self._tasks)
            return self._data

    def _surrogate(self):
        data = self._task_data()
        with self._lock:
            if self._model is None:
                self._model = _meta_trained(data, self._meta_train_steps, 0 if self._seed is None else self._seed)
            return self._model

    def _uses_surrogate(self, completed: list[FrozenTrial], direction: StudyDirection) -> bool:
        """Whether the surrogate proposes the next model-based trial: it is on and has not stalled."""
        if self._surrogate_kind is None:
            return False
        if self._patience is None:
            return True
        if len(completed) <= len(self._entries) + self._patience:
            return True
        values = np.array([t.values[0] for t in completed])
        best = int(np.argmin(values if direction == StudyDirection.MINIMIZE else -values))
        return len(completed) - 1 - best < self._patience

    def _surrogate_space(self, completed: list[FrozenTrial]) -> dict[str, BaseDistribution]:
        """The union search space of the ``completed`` trials, restricted to what the surrogate models.

        A parameter counts when every completed trial that has it drew it from
        one distribution; one whose distribution changed is left out (as from
        Optuna's intersection search space) and goes to the fallback.
        """
        if not completed:
            return {}
        encoder = self._task_data().encoder
        distributions: dict[str, BaseDistribution | None] = {}
        for t in completed:
            for name, distribution in t.distributions.items():
                if distributions.setdefault(name, distribution) != distribution:
                    distributions[name] = None
        return {
            name: distribution
            for name, distribution in sorted(distributions.items())
            if distribution is not None and not distribution.single() and encoder.knows(name, distribution)
        }

    def _suggest(
        self, completed: list[FrozenTrial], search_space: dict[str, BaseDistribution], direction: StudyDirection
    ) -> dict[str, Any]:
        """The candidate of highest expected improvement under the adapted surrogate."""
        data, model = self._task_data(), self._surrogate()
        support = _support(completed, direction)
        y = normalised_ranks([t.values[0] for t in support], _direction(direction))
        x = data.encoder.encode([t.params for t in support])
        phi = model.features(x)
        prior_mean = None
        similar: np.ndarray = np.zeros(0, dtype=int)
        if len(support) >= MIN_SIMILARITY_TRIALS and len(model.task_heads):
            rho = response_similarity(y, phi @ model.task_heads.T)
            weights = top_similar_weights(rho, self._n_similar)
            prior_mean = weights @ model.task_heads
            similar = np.argsort(-rho, kind="stable")[:3]
        mean, chol = model.posterior(phi, y, prior_mean)
        best = int(np.argmin(y))
        candidates = _Candidates(search_space, _Signatures(completed, search_space), self._rng)
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
        mu, sd = model.predict(model.features(x_candidates), mean, chol)
        score = expected_improvement(mu, sd, float(y.min()))
        return candidates.params(int(np.argmax(score)))

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


class _TaskData:
    """The knowledge base's tasks encoded for the surrogate and the similarity (a pure function of them)."""

    def __init__(self, tasks):
        self.encoder = SpaceEncoder(t for task in tasks for t in task.completed_trials())
        self.tasks_x, self.tasks_y, self.best_configs = [], [], []
        for task in tasks:
            trials = [t for t in task.completed_trials() if _finite(t.values)]
            y = normalised_ranks([t.value for t in trials], task.direction)
            self.tasks_x.append(self.encoder.encode([t.params for t in trials]))
            self.tasks_y.append(y)
            self.best_configs.append([trials[i].params for i in np.argsort(y, kind="stable")[:3]])
        self.surfaces = NearestNeighbourSurfaces(self.tasks_x, self.tasks_y)
        digest = hashlib.sha256(repr(sorted(self.encoder.numeric.items())).encode())
        digest.update(repr(sorted((k, sorted(v[1])) for k, v in self.encoder.categorical.items())).encode())
        for x, y in zip(self.tasks_x, self.tasks_y):
            digest.update(np.ascontiguousarray(x).tobytes() + b"|" + np.ascontiguousarray(y).tobytes())
        #: A digest of the encoded knowledge base: the key of the meta-trained surrogate.
        self.key = digest.hexdigest()


def _meta_trained(data: _TaskData, steps: int, seed: int):
    """The surrogate meta-trained on ``data``, from the cache when this content and seed were seen."""
    from autometa.hpo.surrogate import meta_train_surrogate

    key = f"{data.key}:{steps}:{seed}"
    with _CACHE_LOCK:
        model = _SURROGATE_CACHE.get(key)
        if model is None:
            model = meta_train_surrogate(data.tasks_x, data.tasks_y, steps=steps, seed=seed)
            if len(_SURROGATE_CACHE) >= _SURROGATE_CACHE_SIZE:
                _SURROGATE_CACHE.pop(next(iter(_SURROGATE_CACHE)))
            _SURROGATE_CACHE[key] = model
        return model


class _Signatures:
    """Which relative parameters a configuration has, learned from the study's completed trials.

    A configuration's *signature* is the set of relative parameters it has:
    on a conditional (define-by-run) space, the branch it took. A categorical
    value is *allowed* with a signature when a completed trial of that
    signature took it, or when no completed trial took it (nothing says it
    leads to another branch). On a flat space every trial has the one
    signature and every value is allowed with it.
    """

    def __init__(self, completed: Sequence[FrozenTrial], search_space: dict[str, BaseDistribution]):
        self.space = search_space
        #: The completed trials' signatures, in trial order.
        self.of_trials = [_signature(t.params, search_space) for t in completed]
        #: The distinct signatures, in order of first occurrence.
        self.distinct = list(dict.fromkeys(self.of_trials))
        self._taken: dict[tuple[frozenset, str], set[int]] = {}
        for signature, t in zip(self.of_trials, completed):
            for name in signature:
                if isinstance(search_space[name], CategoricalDistribution):
                    index = _choice_index(search_space[name], t.params[name])
                    if index >= 0:
                        self._taken.setdefault((signature, name), set()).add(index)

    def allowed(self, signature: frozenset, name: str) -> np.ndarray:
        """The indices of the categorical ``name``'s choices allowed with ``signature`` (all, if none is)."""
        here = self._taken.get((signature, name), set())
        anywhere = set().union(*(taken for (_, other), taken in self._taken.items() if other == name))
        n_choices = len(self.space[name].choices)
        allowed = [i for i in range(n_choices) if i in here or i not in anywhere]
        return np.array(allowed) if allowed else np.arange(n_choices)

    def draw(self, n: int, rng: np.random.RandomState) -> list[frozenset]:
        """``n`` signatures of completed trials drawn at random (so in proportion to their frequency)."""
        if len(self.distinct) == 1:  # no draw: a flat space consumes the random state as before
            return self.distinct * n
        return [self.of_trials[i] for i in rng.randint(len(self.of_trials), size=n)]


class _Candidates:
    """Candidate values of the relative parameters, column by column.

    A numeric column holds values in the distribution's own units (NaN
    where a candidate lacks the parameter); a categorical one the indices
    of its choices (-1 where it lacks it). Every candidate has the
    parameters of its signature (:class:`_Signatures`) and no others: the
    signature of the configuration it perturbs or copies, or, for a random
    one, of a random completed trial.
    """

    def __init__(self, search_space: dict[str, BaseDistribution], signatures: _Signatures,
                 rng: np.random.RandomState):
        self.space = search_space
        self.signatures = signatures
        self.rng = rng
        self.columns: dict[str, list[np.ndarray]] = {name: [] for name in search_space}
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def random(self, n: int) -> None:
        """``n`` configurations of random signatures, their values uniform (categorical ones among the allowed)."""
        if n <= 0:
            return
        signatures = self.signatures.draw(n, self.rng)
        for name, distribution in self.space.items():
            active = np.array([name in signature for signature in signatures])
            if isinstance(distribution, CategoricalDistribution):
                self.columns[name].append(self._choose(name, signatures, active))
            else:
                low, high = _internal_range(distribution)
                value = _to_external(self.rng.uniform(low, high, size=n), distribution)
                self.columns[name].append(np.where(active, value, np.nan))
        self.n += n

    def local(self, configs: Sequence[Mapping[str, Any]], n: int) -> None:
        """``n`` Gaussian perturbations of ``configs`` (cycled), at three scales of the range.

        A perturbation keeps its configuration's signature; a categorical value
        changes (with probability 0.2) to one allowed with that signature.
        """
        if n <= 0 or not configs:
            return
        base = [configs[i % len(configs)] for i in range(n)]
        signatures = [_signature(c, self.space) for c in base]
        scale = np.array([0.2, 0.05, 0.01])[np.arange(n) % 3]
        for name, distribution in self.space.items():
            active = np.array([name in signature for signature in signatures])
            if isinstance(distribution, CategoricalDistribution):
                index = np.array([_choice_index(distribution, c.get(name)) for c in base])
                # a value outside the choices: the trial's distribution changed since the space was inferred
                flip = active & ((index < 0) | (self.rng.uniform(size=n) < 0.2))
                self.columns[name].append(np.where(flip, self._choose(name, signatures, flip), index))
            else:
                low, high = _internal_range(distribution)
                centre = np.array([_to_internal(c.get(name), distribution) for c in base])
                centre = np.where(np.isnan(centre), self.rng.uniform(low, high, size=n), centre)
                moved = np.clip(centre + self.rng.normal(size=n) * scale * (high - low), low, high)
                self.columns[name].append(np.where(active, _to_external(moved, distribution), np.nan))
        self.n += n

    def fixed(self, configs: Sequence[Mapping[str, Any]]) -> None:
        """``configs`` as they are, clipped into range; invalid values drawn at random.

        Each keeps its own parameters, even with a signature no completed trial
        has: it is a configuration the objective produced on an earlier task,
        so it can produce it here, and it may be the branch to try next.
        """
        if not configs:
            return
        n = len(configs)
        for name, distribution in self.space.items():
            active = np.array([name in c for c in configs])
            if isinstance(distribution, CategoricalDistribution):
                index = np.array([_choice_index(distribution, c.get(name)) for c in configs])
                invalid = active & (index < 0)
                index[invalid] = self.rng.randint(len(distribution.choices), size=int(invalid.sum()))
                self.columns[name].append(index)
            else:
                low, high = _internal_range(distribution)
                value = np.array([_to_internal(c.get(name), distribution) for c in configs])
                value = np.where(np.isnan(value), self.rng.uniform(low, high, size=n), value)
                value = _to_external(np.clip(value, low, high), distribution)
                self.columns[name].append(np.where(active, value, np.nan))
        self.n += n

    def _choose(self, name: str, signatures: Sequence[frozenset], rows: np.ndarray) -> np.ndarray:
        """Random choice indices of ``name`` at ``rows``, each allowed with its row's signature; -1 elsewhere."""
        index = np.full(len(signatures), -1)
        for signature in dict.fromkeys(s for s, row in zip(signatures, rows) if row):
            at = rows & np.array([s == signature for s in signatures])
            allowed = self.signatures.allowed(signature, name)
            index[at] = allowed[self.rng.randint(len(allowed), size=int(at.sum()))]
        return index

    def encode_into(self, x: np.ndarray, encoder: SpaceEncoder) -> None:
        """Overwrite the relative parameters' columns of ``x`` (one row per candidate); absent ones as missing."""
        for name, distribution in self.space.items():
            values = np.concatenate(self.columns[name])
            if isinstance(distribution, CategoricalDistribution):
                column, codes = encoder.categorical[name]
                offsets = np.array([codes[repr(choice)] for choice in distribution.choices])
                x[:, column : column + len(codes)] = 0.0
                rows = np.flatnonzero(values >= 0)
                x[rows, column + offsets[values[rows]]] = 1.0
            else:
                x[:, encoder.numeric[name][0]] = encoder.encode_numeric(name, values)

    def params(self, row: int) -> dict[str, Any]:
        """Candidate ``row``'s parameters, as values of the objective's types."""
        out = {}
        for name, distribution in self.space.items():
            value = np.concatenate(self.columns[name])[row]
            if isinstance(distribution, CategoricalDistribution):
                if value >= 0:
                    out[name] = distribution.choices[int(value)]
            elif not np.isnan(value):
                out[name] = int(value) if isinstance(distribution, IntDistribution) else float(value)
        return out


def _signature(config: Mapping[str, Any], search_space: Mapping[str, BaseDistribution]) -> frozenset:
    """The relative parameters ``config`` has."""
    return frozenset(name for name in config if name in search_space)


def _internal_range(distribution) -> tuple[float, float]:
    low, high = float(distribution.low), float(distribution.high)
    if distribution.log:
        return math.log(low), math.log(high)
    if isinstance(distribution, IntDistribution) or distribution.step is not None:
        # widen by half a step so the end points are as likely as the others after rounding
        step = float(distribution.step)
        return low - 0.5 * step, high + 0.5 * step
    return low, high


def _to_internal(value, distribution) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    if distribution.log:
        return math.log(value) if value > 0 else math.nan
    return value


def _to_external(internal: np.ndarray, distribution) -> np.ndarray:
    low, high = float(distribution.low), float(distribution.high)
    value = np.exp(internal) if distribution.log else internal
    step = distribution.step  # None for a continuous float; an int's is 1 on a log scale
    if step is not None:
        value = low + np.round((value - low) / step) * step
    return np.clip(value, low, high)


def _choice_index(distribution: CategoricalDistribution, value) -> int:
    for i, choice in enumerate(distribution.choices):
        if type(choice) is type(value) and choice == value:
            return i
    return -1


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
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if _finite(t.values)]


def _finite(values) -> bool:
    """Whether a single-objective trial's ``values`` hold a finite value."""
    return values is not None and math.isfinite(values[0])


def _direction(direction: StudyDirection) -> str:
    return "maximize" if direction == StudyDirection.MAXIMIZE else "minimize"

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
