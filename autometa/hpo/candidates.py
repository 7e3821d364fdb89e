"""The configurations :class:`~autometa.hpo.MetaLearnedSampler` scores in a model-based trial.

A model-based trial scores ``n_candidates`` configurations of the relative
search space with the surrogate and suggests the best. This module builds
them; it knows nothing of the surrogate or of a study beyond its completed
trials.

Signature
    The relative parameters a configuration has: on a conditional
    (define-by-run) space, the branch it took. :class:`Signatures` learns
    them from the study's completed trials. A categorical value is
    *allowed* with a signature when a completed trial of that signature
    took it, or when no completed trial took it (nothing says it leads to
    another branch). On a flat space every trial has the one signature and
    every value is allowed with it.
Candidates
    :class:`Candidates` holds them column by column, each with exactly the
    parameters of its signature, from three sources:

    - *local*: Gaussian perturbations of given configurations, in the
      internal units of :class:`autometa.hpo.encoding.NumericScale`, at
      20%, 5% and 1% of the range in turn; a categorical value changes
      with probability 0.2, to one allowed with the configuration's
      signature;
    - *fixed*: given configurations (an earlier task's best ones) as they
      are, clipped into range, with their own parameters;
    - *random*: the signature of a random completed trial, its values
      uniform (categorical ones among the allowed).

Numeric values are drawn on the internal axis over the distribution's
range, widened by half a step for an int or stepped float so that the end
points are as likely as the others after rounding
(:func:`sampling_range`), then rounded to the step and clipped
(:func:`to_distribution`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from autometa.hpo.encoding import NumericScale, SpaceEncoder, choice_index, choice_key

__all__ = ["Candidates", "Signatures", "sampling_range", "signature", "to_distribution"]


def signature(config: Mapping[str, Any], search_space: Mapping[str, BaseDistribution]) -> frozenset:
    """The relative parameters ``config`` has."""
    return frozenset(name for name in config if name in search_space)


def sampling_range(distribution: BaseDistribution) -> tuple[float, float]:
    """The internal range numeric candidates of ``distribution`` are drawn from.

    Examples
    --------
    >>> from optuna.distributions import FloatDistribution, IntDistribution
    >>> sampling_range(IntDistribution(1, 4)), sampling_range(FloatDistribution(0.0, 1.0))
    ((0.5, 4.5), (0.0, 1.0))
    """
    scale = NumericScale.of(distribution)
    if not scale.log and (isinstance(distribution, IntDistribution) or distribution.step is not None):
        step = float(distribution.step)
        return scale.low - 0.5 * step, scale.high + 0.5 * step
    return scale.low, scale.high


def to_distribution(internal: np.ndarray, distribution: BaseDistribution) -> np.ndarray:
    """Internal values as values of ``distribution``: on its scale, rounded to its step, clipped to its range.

    Examples
    --------
    >>> from optuna.distributions import IntDistribution
    >>> to_distribution(np.array([0.5, 2.4, 4.5]), IntDistribution(1, 4)).tolist()
    [1.0, 2.0, 4.0]
    """
    low, high = float(distribution.low), float(distribution.high)
    value = np.exp(internal) if distribution.log else internal
    step = distribution.step  # None for a continuous float; an int's is 1 on a log scale
    if step is not None:
        value = low + np.round((value - low) / step) * step
    return np.clip(value, low, high)


class Signatures:
    """Which relative parameters a configuration has, learned from the study's completed trials.

    Parameters
    ----------
    completed : sequence of FrozenTrial
        The study's completed trials.
    search_space : dict of str to BaseDistribution
        The relative search space.

    Attributes
    ----------
    of_trials : list of frozenset
        The completed trials' signatures, in trial order.
    distinct : list of frozenset
        The distinct signatures, in order of first occurrence.
    """

    def __init__(self, completed: Sequence, search_space: dict[str, BaseDistribution]):
        self.space = search_space
        self.of_trials: list[frozenset] = []
        self.distinct: list[frozenset] = []
        self._taken: dict[tuple[frozenset, str], set[int]] = {}
        self.add(completed)

    def add(self, completed: Sequence) -> None:
        """Learn from more completed trials, as if they had come after the earlier ones."""
        for t in completed:
            trial_signature = signature(t.params, self.space)
            self.of_trials.append(trial_signature)
            if trial_signature not in self.distinct:
                self.distinct.append(trial_signature)
            for name in trial_signature:
                if isinstance(self.space[name], CategoricalDistribution):
                    index = choice_index(self.space[name], t.params[name])
                    if index >= 0:
                        self._taken.setdefault((trial_signature, name), set()).add(index)

    def allowed(self, signature: frozenset, name: str) -> np.ndarray:
        """The indices of the categorical ``name``'s choices allowed with ``signature`` (all, if none is)."""
        here = self._taken.get((signature, name), set())
        anywhere = set().union(*(taken for (_, other), taken in self._taken.items() if other == name))
        n_choices = len(self.space[name].choices)
        allowed = [i for i in range(n_choices) if i in here or i not in anywhere]
        return np.array(allowed) if allowed else np.arange(n_choices)

    def draw(self, n: int, rng: np.random.RandomState) -> list[frozenset]:
        """``n`` signatures of completed trials drawn at random (so in proportion to their frequency)."""
        if len(self.distinct) == 1:  # one signature: no draw, so a flat space consumes no random state here
            return self.distinct * n
        return [self.of_trials[i] for i in rng.randint(len(self.of_trials), size=n)]


class Candidates:
    """Candidate values of the relative parameters, column by column.

    A numeric column holds values in the distribution's own units (NaN
    where a candidate lacks the parameter); a categorical one the indices
    of its choices (-1 where it lacks it).

    Parameters
    ----------
    search_space : dict of str to BaseDistribution
        The relative search space.
    signatures : Signatures
        The study's signatures.
    rng : numpy.random.RandomState
        The sampler's random state; consumed in the order of the calls.
    """

    def __init__(self, search_space: dict[str, BaseDistribution], signatures: Signatures,
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
            active = np.array([name in s for s in signatures])
            if isinstance(distribution, CategoricalDistribution):
                self.columns[name].append(self._choose(name, signatures, active))
            else:
                low, high = sampling_range(distribution)
                value = to_distribution(self.rng.uniform(low, high, size=n), distribution)
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
        signatures = [signature(c, self.space) for c in base]
        scale = np.array([0.2, 0.05, 0.01])[np.arange(n) % 3]
        for name, distribution in self.space.items():
            active = np.array([name in s for s in signatures])
            if isinstance(distribution, CategoricalDistribution):
                index = np.array([choice_index(distribution, c.get(name)) for c in base])
                # a value outside the choices: the trial's distribution changed since the space was inferred
                flip = active & ((index < 0) | (self.rng.uniform(size=n) < 0.2))
                self.columns[name].append(np.where(flip, self._choose(name, signatures, flip), index))
            else:
                low, high = sampling_range(distribution)
                centre = NumericScale.of(distribution).internal(c.get(name) for c in base)
                centre = np.where(np.isnan(centre), self.rng.uniform(low, high, size=n), centre)
                moved = np.clip(centre + self.rng.normal(size=n) * scale * (high - low), low, high)
                self.columns[name].append(np.where(active, to_distribution(moved, distribution), np.nan))
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
                index = np.array([choice_index(distribution, c.get(name)) for c in configs])
                invalid = active & (index < 0)
                index[invalid] = self.rng.randint(len(distribution.choices), size=int(invalid.sum()))
                self.columns[name].append(index)
            else:
                low, high = sampling_range(distribution)
                value = NumericScale.of(distribution).internal(c.get(name) for c in configs)
                value = np.where(np.isnan(value), self.rng.uniform(low, high, size=n), value)
                value = to_distribution(np.clip(value, low, high), distribution)
                self.columns[name].append(np.where(active, value, np.nan))
        self.n += n

    def _choose(self, name: str, signatures: Sequence[frozenset], rows: np.ndarray) -> np.ndarray:
        """Random choice indices of ``name`` at ``rows``, each allowed with its row's signature; -1 elsewhere."""
        index = np.full(len(signatures), -1)
        for row_signature in dict.fromkeys(s for s, row in zip(signatures, rows) if row):
            at = rows & np.array([s == row_signature for s in signatures])
            allowed = self.signatures.allowed(row_signature, name)
            index[at] = allowed[self.rng.randint(len(allowed), size=int(at.sum()))]
        return index

    def encode_into(self, x: np.ndarray, encoder: SpaceEncoder) -> None:
        """Overwrite the relative parameters' columns of ``x`` (one row per candidate); absent ones as missing."""
        for name, distribution in self.space.items():
            values = np.concatenate(self.columns[name])
            if isinstance(distribution, CategoricalDistribution):
                column, codes = encoder.categorical[name]
                offsets = np.array([codes[choice_key(choice)] for choice in distribution.choices])
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
