"""Transfer-HPO baselines of the real-fit benchmark that are not part of the library.

Learned search box
------------------

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

Task-similarity TPE
-------------------
``TaskSimilarityTPESampler`` reimplements the idea of OptunaHub's
``meta_learn_tpe`` (Watanabe, Awad, Onishi & Hutter, "Speeding up
multi-objective hyperparameter optimization by task similarity-based
meta-learning for the tree-structured Parzen estimator", IJCAI 2023), which
does not run on Optuna 5 (it calls TPE internals that changed); its own
code was read, none copied. Every task, the new one and each source task,
has TPE's two densities over the search space: ``l`` of its best
``gamma(n) = min(ceil(0.1 n), 25)`` trials and ``g`` of the rest. The
similarity of a source task to the new one is ``(1 - TV) / (1 + TV)``, the
intersection over union of their promising regions when those are uniform,
with ``TV`` the total-variation distance between their ``l`` densities,
``E_p |1 - q / p| / 2`` estimated on ``n_similarity_samples`` draws from the
new task's ``l`` (``p``; OptunaHub's code normalises both densities over
those draws instead). The
weights are ``1 - sum(similarities) / T`` for the new task and
``similarity / T`` for each source, ``T`` the number of tasks. The next
configuration maximises ``L(x) / G(x)``, the weighted mixtures of the
tasks' ``l`` and ``g``, over ``n_ei_candidates`` draws from ``L``. The first
``n_startup_trials`` (10, as OptunaHub's default) are random.

The densities are Parzen estimators on the unit cube of the search space
(numbers on their internal scale, logarithmic where the distribution is,
mapped onto ``[0, 1]``; source values outside the range clipped): a product
of a Gaussian kernel per number (bandwidth ``0.2 n^(-1/(d+4))``, at least
0.02) and an Aitchison-Aitken kernel per categorical parameter (the
observed choice with probability ``1 - 1/(n+1)``), plus a uniform prior
component of weight ``1 / (n + 1)``, ``n`` the observations and ``d`` the
parameters. Kernels are not renormalised for the truncation at the cube's
faces. Only flat spaces (every trial has every parameter) are handled;
this benchmark's spaces are flat.
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

__all__ = ["SearchBoxSampler", "TaskSimilarityTPESampler", "learned_search_box"]


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


class _Parzen:
    """TPE's density of a set of configurations on the unit cube (module docstring)."""

    def __init__(self, numbers: np.ndarray, choices: np.ndarray, n_choices: Sequence[int]):
        self.numbers, self.choices, self.n_choices = numbers, choices, list(n_choices)
        n, d = len(numbers), numbers.shape[1] + choices.shape[1]
        self.bandwidth = max(0.2 * max(n, 1) ** (-1.0 / (d + 4)), 0.02)
        self.prior = 1.0 / (n + 1)
        self.keep = 1.0 - 1.0 / (n + 1)

    def log_pdf(self, numbers: np.ndarray, choices: np.ndarray) -> np.ndarray:
        """Log density at each row of ``numbers`` / ``choices``."""
        if not len(self.numbers):
            return np.zeros(len(numbers))
        h = self.bandwidth
        diff = (numbers[:, None, :] - self.numbers[None, :, :]) / h
        log_k = (-0.5 * diff**2 - math.log(h * math.sqrt(2 * math.pi))).sum(-1)
        for j, k in enumerate(self.n_choices):
            same = choices[:, None, j] == self.choices[None, :, j]
            other = (1.0 - self.keep) / (k - 1) if k > 1 else 1.0
            log_k = log_k + np.where(same, math.log(self.keep), math.log(other))
        log_mix = _logsumexp(log_k, axis=1) + math.log((1.0 - self.prior) / len(self.numbers))
        return np.logaddexp(log_mix, math.log(self.prior))  # the prior is uniform: density 1 on the cube

    def sample(self, rng: np.random.RandomState, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` draws: a kernel (or the prior) at random, then each parameter from it."""
        d_num, d_cat = self.numbers.shape[1], self.choices.shape[1]
        numbers = rng.uniform(size=(n, d_num))
        choices = np.stack([rng.randint(k, size=n) for k in self.n_choices], axis=1) if d_cat else \
            np.zeros((n, 0), dtype=int)
        if not len(self.numbers):
            return numbers, choices
        from_kernel = rng.uniform(size=n) >= self.prior
        which = rng.randint(len(self.numbers), size=n)
        jitter = rng.normal(scale=self.bandwidth, size=(n, d_num))
        numbers = np.where(from_kernel[:, None], np.clip(self.numbers[which] + jitter, 0.0, 1.0), numbers)
        for j, k in enumerate(self.n_choices):
            kept = rng.uniform(size=n) < self.keep
            choices[:, j] = np.where(from_kernel & kept, self.choices[which, j], choices[:, j])
        return numbers, choices


def _logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    top = values.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(values - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def _gamma(n: int) -> int:
    return min(math.ceil(0.1 * n), 25)


class TaskSimilarityTPESampler(optuna.samplers.BaseSampler):
    """TPE whose densities mix the new task's with those of similar source tasks (module docstring).

    Parameters
    ----------
    tasks : sequence of Task
        The source tasks (knowledge-base tasks, maximised or minimised).
    search_space : mapping of str to BaseDistribution
        The flat search space of the new study.
    seed : int or None, default=None
    n_startup_trials : int, default=10
        Random trials before the model is used.
    n_ei_candidates : int, default=24
        Draws from the mixture ``L`` per source task with weight, and 24 at least.
    n_similarity_samples : int, default=500
    """

    def __init__(self, tasks: Sequence, search_space: Mapping[str, BaseDistribution], seed: int | None = None,
                 n_startup_trials: int = 10, n_ei_candidates: int = 24, n_similarity_samples: int = 500):
        self.space = dict(search_space)
        self._numeric = [n for n, d in self.space.items() if isinstance(d, (FloatDistribution, IntDistribution))]
        self._categorical = [n for n, d in self.space.items() if isinstance(d, CategoricalDistribution)]
        self._rng = np.random.RandomState(seed)
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self.n_startup_trials = n_startup_trials
        self.n_ei_candidates = n_ei_candidates
        self.n_similarity_samples = n_similarity_samples
        self._sources = []
        for task in tasks:
            completed = [t for t in task.completed_trials() if t.value is not None and math.isfinite(t.value)
                         and all(name in t.params for name in self.space)]
            if len(completed) >= 2:
                values = [t.value if task.direction == "minimize" else -t.value for t in completed]
                self._sources.append(self._densities([t.params for t in completed], values))

    # -- encoding ------------------------------------------------------------------
    def _encode(self, configs: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        numbers = np.zeros((len(configs), len(self._numeric)))
        for j, name in enumerate(self._numeric):
            d = self.space[name]
            low, high = (math.log(d.low), math.log(d.high)) if d.log else (d.low, d.high)
            raw = np.array([float(c[name]) for c in configs])
            internal = np.log(np.maximum(raw, d.low)) if d.log else raw
            numbers[:, j] = np.clip((internal - low) / (high - low), 0.0, 1.0) if high > low else 0.5
        choices = np.zeros((len(configs), len(self._categorical)), dtype=int)
        for j, name in enumerate(self._categorical):
            keys = [choice_key(c) for c in self.space[name].choices]
            choices[:, j] = [keys.index(choice_key(c[name])) if choice_key(c[name]) in keys else -1 for c in configs]
        return numbers, choices

    def _decode(self, numbers: np.ndarray, choices: np.ndarray) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for j, name in enumerate(self._numeric):
            d = self.space[name]
            low, high = (math.log(d.low), math.log(d.high)) if d.log else (d.low, d.high)
            value = low + float(numbers[j]) * (high - low)
            value = math.exp(value) if d.log else value
            if isinstance(d, IntDistribution):
                value = int(min(max(d.low + d.step * round((value - d.low) / d.step), d.low), d.high))
            elif d.step is not None:
                value = min(max(d.low + d.step * round((value - d.low) / d.step), d.low), d.high)
            else:
                value = min(max(value, d.low), d.high)
            params[name] = value
        for j, name in enumerate(self._categorical):
            params[name] = self.space[name].choices[int(choices[j])]
        return params

    def _densities(self, configs, losses) -> tuple[_Parzen, _Parzen]:
        """``(l, g)`` of configurations with ``losses`` (lower is better)."""
        numbers, choices = self._encode(configs)
        order = np.argsort(losses, kind="stable")
        below, above = order[: _gamma(len(order))], order[_gamma(len(order)):]
        n_choices = [len(self.space[name].choices) for name in self._categorical]
        return (_Parzen(numbers[below], choices[below], n_choices),
                _Parzen(numbers[above], choices[above], n_choices))

    # -- the sampler protocol --------------------------------------------------------
    def reseed_rng(self) -> None:
        self._rng.seed()
        self._random.reseed_rng()

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return dict(self.space)

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        completed = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                     if t.value is not None and math.isfinite(t.value) and all(n in t.params for n in self.space)]
        if len(completed) < self.n_startup_trials or set(search_space) != set(self.space):
            return {}
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0
        target = self._densities([t.params for t in completed], [sign * t.value for t in completed])
        weights = self.task_weights(target)
        tasks = [target, *self._sources]
        used = [i for i, w in enumerate(weights) if w > 1e-6]
        n_candidates = self.n_ei_candidates * max(1, min(len(used), 10))
        counts = self._rng.multinomial(n_candidates, weights[used] / weights[used].sum())
        drawn = [tasks[i][0].sample(self._rng, c) for i, c in zip(used, counts) if c]
        numbers = np.concatenate([n for n, _ in drawn])
        choices = np.concatenate([c for _, c in drawn])
        log_w = np.log(weights[used])[:, None]
        log_l = _logsumexp(np.stack([tasks[i][0].log_pdf(numbers, choices) for i in used]) + log_w, axis=0)
        log_g = _logsumexp(np.stack([tasks[i][1].log_pdf(numbers, choices) for i in used]) + log_w, axis=0)
        best = int(np.argmax(log_l - log_g))
        return self._decode(numbers[best], choices[best])

    def task_weights(self, target: tuple[_Parzen, _Parzen]) -> np.ndarray:
        """The new task's weight, then each source task's (module docstring)."""
        if not self._sources:
            return np.ones(1)
        numbers, choices = target[0].sample(self._rng, self.n_similarity_samples)
        mine = target[0].log_pdf(numbers, choices)
        # TV(p, q) = E_p |1 - q / p| / 2, on draws from p, the new task's l
        tv = np.array([0.5 * np.abs(1.0 - np.exp(below.log_pdf(numbers, choices) - mine)).mean()
                       for below, _ in self._sources])
        tv = np.minimum(tv, 1.0)
        similarity = np.clip((1.0 - tv) / (1.0 + tv), 0.0, 1.0)
        n_tasks = len(similarity) + 1
        weights = np.concatenate([[1.0 - similarity.sum() / n_tasks], similarity / n_tasks])
        weights = np.maximum(weights, 0.0)
        return weights / weights.sum()

    def sample_independent(self, study, trial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)
