"""Configurations and objective values as numbers, one definition for all of :mod:`autometa.hpo`.

The portfolio's distances (:mod:`autometa.hpo.portfolio`), the surrogate's
input vectors and targets (:mod:`autometa.hpo.surrogate`) and the sampler's
candidates (:mod:`autometa.hpo.candidates`) read configurations and values
through the definitions here. The module imports no torch and keeps no
state.

Definitions
-----------
The same categorical value
    Two values are the same choice when they have the same type and the
    same value, as the objective sees them: ``1``, ``1.0``, ``True`` and
    ``"1"`` are four choices; NaN is one choice (as in Optuna's
    ``CategoricalDistribution``). :func:`choice_key` is this identity as a
    hashable key, the value's ``repr``.
Internal value
    A numeric parameter's value, or its natural logarithm when it is drawn
    on a log scale; NaN (missing) where the value is not a number, or not
    positive on a log scale.
Scaled value
    An internal value mapped affinely onto ``[0, 1]`` by a range:
    0 at ``low``, 1 at ``high`` (:class:`NumericScale`); 0 when the range
    is a single point. A distribution's own range scales a value for the
    portfolio; the union of the knowledge base's ranges scales it for the
    surrogate (:class:`SpaceEncoder`).
Normalised value, normalised rank
    Objective values of one task on ``[0, 1]``, 0 for the best and 1 for
    the worst, direction handled: by their range
    (:func:`normalised_values`, the portfolio's regret) or by their rank
    (:func:`normalised_ranks`, the surrogate's target, blind to the
    objective's scale).
Noise of a value
    The standard error of a cross-validated value: the standard deviation
    of its fold scores (stored by the objective in the trial's user attr
    :data:`FOLD_SCORES_KEY`) over the square root of their number
    (:func:`standard_error`); 0 where the objective stored none. In rank
    units (:func:`rank_noise`), half the normalised-rank width of the
    interval ``value +- standard error``: the delta method with the
    empirical distribution of the values as the transform.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

__all__ = [
    "MISSING",
    "NumericScale",
    "SpaceEncoder",
    "choice_index",
    "choice_key",
    "config_key",
    "contains",
    "finite_trials",
    "is_numeric",
    "normalised_ranks",
    "normalised_values",
]

#: The encoded value of a numeric parameter a configuration lacks (scaled values lie in ``[0, 1]``).
MISSING = -1.0


# -- categorical values --------------------------------------------------------------------


def choice_key(value: Any) -> str:
    """A hashable key of a categorical value: equal exactly for the same choice.

    Examples
    --------
    >>> [choice_key(v) for v in (1, 1.0, True, "1", None)]
    ['1', '1.0', 'True', "'1'", 'None']
    >>> choice_key(float("nan")) == choice_key(float("nan"))
    True
    """
    return repr(value)


def choice_index(distribution: CategoricalDistribution, value: Any) -> int:
    """The index of ``value`` among ``distribution``'s choices; -1 when it is none of them.

    Examples
    --------
    >>> from optuna.distributions import CategoricalDistribution
    >>> choices = CategoricalDistribution([1, True, "a"])
    >>> choice_index(choices, True), choice_index(choices, 1.0)
    (1, -1)
    """
    key = choice_key(value)
    for i, choice in enumerate(distribution.choices):
        if choice_key(choice) == key:
            return i
    return -1


def config_key(params: Mapping[str, Any]) -> tuple:
    """A hashable key of a configuration: equal exactly for the same parameters with the same values."""
    return tuple(sorted((name, choice_key(value)) for name, value in params.items()))


def is_numeric(distribution: BaseDistribution) -> bool:
    """Whether ``distribution`` draws numbers (a float or an int distribution)."""
    return isinstance(distribution, (FloatDistribution, IntDistribution))


def contains(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is a valid value of ``distribution`` (a choice of it, or a number in its range and step).

    Examples
    --------
    >>> from optuna.distributions import CategoricalDistribution, IntDistribution
    >>> contains(CategoricalDistribution([0, 1]), True), contains(IntDistribution(0, 4, step=2), 2)
    (False, True)
    """
    if isinstance(distribution, CategoricalDistribution):
        return choice_index(distribution, value) >= 0
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (TypeError, ValueError):
        return False


# -- numeric values ------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericScale:
    """A numeric parameter's internal axis and a range on it that maps onto ``[0, 1]``.

    Parameters
    ----------
    low, high : float
        The range, in internal units (logarithms when ``log``).
    log : bool
        Whether internal values are the logarithms of the parameter's values.

    Examples
    --------
    >>> from optuna.distributions import FloatDistribution
    >>> scale = NumericScale.of(FloatDistribution(1e-3, 1e-1, log=True))
    >>> scale.unit([1e-2, 1e-1, -1.0, "a"]).round(6).tolist()
    [0.5, 1.0, nan, nan]
    """

    low: float
    high: float
    log: bool

    @classmethod
    def of(cls, distribution: BaseDistribution) -> NumericScale:
        """The scale of a float or int ``distribution``'s own range."""
        low, high = float(distribution.low), float(distribution.high)
        if distribution.log:
            return cls(math.log(low), math.log(high), True)
        return cls(low, high, False)

    def internal(self, values: Iterable[Any]) -> np.ndarray:
        """Internal values, float64; NaN where a value is not a number (or not positive on a log scale)."""
        out = []
        for value in values:
            try:
                value = float(value)
            except (TypeError, ValueError):
                value = math.nan
            if self.log:
                value = math.log(value) if value > 0 else math.nan
            out.append(value)
        return np.array(out, dtype=np.float64)

    def unit(self, values: Iterable[Any]) -> np.ndarray:
        """Values scaled onto ``[0, 1]`` by the range (outside it where they lie outside); NaN where missing."""
        internal = self.internal(values)
        if self.high == self.low:
            return np.where(np.isnan(internal), np.nan, 0.0)
        return (internal - self.low) / (self.high - self.low)


# -- objective values ----------------------------------------------------------------------


def finite_trials(trials: Iterable) -> list:
    """The single-objective trials (``FrozenTrial`` or ``TrialRecord``) whose value is finite, in order."""
    return [t for t in trials if t.values is not None and math.isfinite(t.values[0])]


def normalised_values(values: np.ndarray, direction: str = "minimize") -> np.ndarray:
    """Values scaled to ``[0, 1]`` by their range: 0 for the best, 1 for the worst (each row alone).

    All zeros where the values tie.

    Examples
    --------
    >>> normalised_values([3.0, 1.0, 2.0, 2.0]).tolist()
    [1.0, 0.0, 0.5, 0.5]
    >>> normalised_values([[1.0, 5.0], [2.0, 2.0]], direction="maximize").tolist()
    [[1.0, 0.0], [0.0, 0.0]]
    """
    values = np.asarray(values, dtype=np.float64)
    if direction == "maximize":
        values = -values
    if values.shape[-1] == 0:
        return values.copy()
    low = values.min(axis=-1, keepdims=True)
    spread = values.max(axis=-1, keepdims=True) - low
    return np.where(spread > 0, (values - low) / np.where(spread > 0, spread, 1.0), 0.0)


def normalised_ranks(values: np.ndarray, direction: str = "minimize") -> np.ndarray:
    """Ranks scaled to ``[0, 1]``: 0 for the best value, 1 for the worst, ties averaged.

    Parameters
    ----------
    values : array-like of shape (n,) or (b, n)
        Objective values; with two dimensions, each row is ranked alone.
    direction : {"minimize", "maximize"}, default="minimize"

    Returns
    -------
    numpy.ndarray
        Same shape as ``values``; all zeros for a single value.

    Examples
    --------
    >>> normalised_ranks([3.0, 1.0, 2.0, 2.0]).tolist()
    [1.0, 0.0, 0.5, 0.5]
    >>> normalised_ranks([3.0, 1.0, 2.0], direction="maximize").tolist()
    [0.0, 1.0, 0.5]
    """
    values = np.asarray(values, dtype=np.float64)
    if direction == "maximize":
        values = -values
    n = values.shape[-1]
    if n < 2:
        return np.zeros_like(values)
    if values.ndim == 1:
        ordered = np.sort(values)
        # the mean position of each value's run of ties
        ranks = (np.searchsorted(ordered, values, "left") + np.searchsorted(ordered, values, "right") - 1) / 2
    else:
        from scipy.stats import rankdata

        ranks = rankdata(values, axis=-1) - 1
    return ranks / (n - 1)


def suggest(trial, name: str, distribution: BaseDistribution) -> Any:
    """Draw parameter ``name`` of ``distribution`` through the trial's public ``suggest_*`` API."""
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(name, distribution.low, distribution.high, step=distribution.step,
                                   log=distribution.log)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step,
                                 log=distribution.log)
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    raise TypeError(f"unsupported distribution for {name!r}: {distribution!r}")


#: The trial user attr where an objective stores its per-fold scores (a list of float).
FOLD_SCORES_KEY = "autometa:fold_scores"


def standard_error(trial) -> float:
    """The standard error of a trial's value from its fold scores (:data:`FOLD_SCORES_KEY`); 0 without them.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> round(standard_error(SimpleNamespace(user_attrs={FOLD_SCORES_KEY: [0.8, 0.9, 1.0]})), 4)
    0.0577
    >>> standard_error(SimpleNamespace(user_attrs={}))
    0.0
    """
    scores = np.asarray(trial.user_attrs.get(FOLD_SCORES_KEY, ()), dtype=np.float64)
    scores = scores[np.isfinite(scores)] if scores.ndim == 1 else np.zeros(0)
    if len(scores) < 2:
        return 0.0
    return float(scores.std(ddof=1) / math.sqrt(len(scores)))


def rank_noise(values: np.ndarray, standard_errors: np.ndarray) -> np.ndarray:
    """Each value's standard error in normalised-rank units (:func:`normalised_ranks` of ``values``).

    Half the fraction of the other values that lie within ``value +-
    standard error``: how far the value's rank moves when the value moves
    by its noise. 0 for an exact value, and for a single value.

    Examples
    --------
    >>> rank_noise([0.70, 0.80, 0.81, 0.82, 0.95], [0.0, 0.015, 0.02, 0.0, 0.01]).tolist()
    [0.0, 0.125, 0.25, 0.0, 0.0]
    """
    values = np.asarray(values, dtype=np.float64)
    errors = np.nan_to_num(np.asarray(standard_errors, dtype=np.float64), nan=0.0)
    n = len(values)
    if n < 2:
        return np.zeros(n)
    ordered = np.sort(values)
    within = np.searchsorted(ordered, values + errors, "right") - np.searchsorted(ordered, values - errors, "left")
    return (within - 1) / (2 * (n - 1))


# -- configurations as vectors -------------------------------------------------------------


class SpaceEncoder:
    """Configurations as vectors, with the parameters and values a knowledge base saw.

    Each numeric parameter is one column, scaled by the union of its ranges
    in the knowledge base (on a log scale when every trial drew it on one),
    :data:`MISSING` where a configuration lacks it (a conditional branch not
    taken). Each categorical parameter is one column per value the
    knowledge base tried (one-hot), all zeros where a configuration lacks
    it or has a value never tried.

    Parameters
    ----------
    trials : iterable of TrialRecord or FrozenTrial
        Anything with ``params`` and ``distributions``. A parameter that is
        numeric in some trials and categorical in others is left out.

    Attributes
    ----------
    n_columns : int
        The width of an encoded configuration.
    numeric : dict of str to tuple
        ``name -> (column, NumericScale)``: the reference scale.
    categorical : dict of str to tuple
        ``name -> (first column, {choice_key(value): offset})``.

    Examples
    --------
    >>> from optuna.distributions import FloatDistribution, CategoricalDistribution
    >>> from autometa.hpo.knowledge_base import TrialRecord
    >>> space = {"lr": FloatDistribution(1e-3, 1e-1, log=True), "kind": CategoricalDistribution(["a", "b"])}
    >>> records = [TrialRecord(0, "COMPLETE", {"lr": 1e-2, "kind": "b"}, space, (0.0,))]
    >>> SpaceEncoder(records).encode([{"lr": 1e-2, "kind": "b"}, {"kind": "c"}]).round(2).tolist()
    [[0.5, 1.0], [-1.0, 0.0]]
    """

    def __init__(self, trials):
        numeric: dict[str, list] = {}
        categorical: dict[str, dict[str, Any]] = {}
        for trial in trials:
            for name, distribution in trial.distributions.items():
                if is_numeric(distribution):
                    low, high, log = float(distribution.low), float(distribution.high), bool(distribution.log)
                    if name in numeric:
                        seen_low, seen_high, seen_log = numeric[name]
                        numeric[name] = [min(seen_low, low), max(seen_high, high), seen_log and log]
                    else:
                        numeric[name] = [low, high, log]
                else:
                    categorical.setdefault(name, {}).setdefault(choice_key(trial.params[name]), trial.params[name])
        clash = set(numeric) & set(categorical)
        self.numeric: dict[str, tuple[int, NumericScale]] = {}
        self.categorical: dict[str, tuple[int, dict[str, int]]] = {}
        column = 0
        for name in sorted(numeric):
            if name in clash:
                continue
            low, high, log = numeric[name]
            if log and low > 0:
                scale = NumericScale(math.log(low), math.log(high), True)
            else:
                scale = NumericScale(low, high, False)
            self.numeric[name] = (column, scale)
            column += 1
        for name in sorted(categorical):
            if name in clash:
                continue
            self.categorical[name] = (column, {key: i for i, key in enumerate(categorical[name])})
            column += len(categorical[name])
        self.n_columns = column

    def knows(self, name: str, distribution: BaseDistribution) -> bool:
        """Whether the surrogate can model ``name`` drawn from ``distribution``.

        A numeric parameter must have been numeric in the knowledge base; a
        categorical one must have been categorical there with every one of
        ``distribution``'s choices tried.
        """
        if is_numeric(distribution):
            return name in self.numeric
        if isinstance(distribution, CategoricalDistribution) and name in self.categorical:
            codes = self.categorical[name][1]
            return all(choice_key(choice) in codes for choice in distribution.choices)
        return False

    def encode(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encode parameter dicts; unknown parameters are ignored. Shape ``(n, n_columns)``."""
        out = np.zeros((len(configs), self.n_columns))
        for name, (column, _) in self.numeric.items():
            out[:, column] = self.encode_numeric(name, [config.get(name) for config in configs])
        for name, (column, codes) in self.categorical.items():
            for row, config in enumerate(configs):
                if name in config:
                    offset = codes.get(choice_key(config[name]))
                    if offset is not None:
                        out[row, column + offset] = 1.0
        return out

    def encode_numeric(self, name: str, values: Iterable[Any]) -> np.ndarray:
        """A numeric parameter's values on its reference scale; missing ones (None, NaN, no number) :data:`MISSING`."""
        scaled = self.numeric[name][1].unit(values)
        return np.where(np.isfinite(scaled), scaled, MISSING)
