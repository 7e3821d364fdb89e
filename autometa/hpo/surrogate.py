"""The meta-learned surrogate of :class:`~autometa.hpo.MetaLearnedSampler`.

Two pieces, apart from the sampler protocol (as Optuna keeps TPE's
``_parzen_estimator.py`` apart from its sampler):

:class:`SpaceEncoder`
    Configurations as vectors: each numeric parameter the knowledge base saw
    is one column scaled to ``[0, 1]`` by the union of its ranges there (on a
    log scale when every task drew it on one), each categorical parameter one
    column per value the knowledge base tried (one-hot). A numeric parameter
    missing from a configuration (a conditional branch not taken) is ``-1``,
    a categorical one all zeros.
:class:`DeepKernelRegressor`
    A few-shot regressor: Bayesian linear regression on features
    ``phi(x)`` of a small MLP (:func:`autometa.nn.MLP`), i.e. a Gaussian
    process with the kernel ``phi(x) . phi(x')`` plus a learned mean. The
    features, the prior over the linear head (mean and diagonal precision)
    and the noise are meta-trained so that, conditioned on a task's
    *support* trials, the posterior predicts its *query* trials well: the
    episodic marginal-likelihood objective of ALPaCA (Harrison, Sharma &
    Pavone, "Meta-learning priors for efficient online Bayesian regression",
    WAFR 2018) and ABLR (Perrone et al., "Scalable Hyperparameter Transfer
    Learning", NeurIPS 2018). Adapting to a new task is exact and
    closed-form (one ``h x h`` linear solve, ``h`` the feature width), so it
    costs far less than gradient steps, and the posterior variance gives the
    acquisition function its uncertainty.

Targets are *normalised ranks*: within a set of ``m`` trials, the best scores
0 and the worst 1 (``rank / (m - 1)``, ties averaged, direction handled), so
tasks with objectives of any scale and direction share one target space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from threadpoolctl import ThreadpoolController

from autometa.meta.base import MetaLearner, Predictor
from autometa.meta.training import meta_train
from autometa.tasks.task import TaskBatch

__all__ = ["DeepKernelRegressor", "NumpySurrogate", "SpaceEncoder", "meta_train_surrogate", "normalised_ranks"]

MISSING = -1.0  # the code of a numeric parameter a configuration lacks


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


def normalised_values(values: np.ndarray, direction: str = "minimize") -> np.ndarray:
    """Values scaled to ``[0, 1]`` by their range: 0 for the best, 1 for the worst (each row alone).

    The scale of :mod:`autometa.hpo.portfolio`; all zeros where the values tie.

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
    low = values.min(axis=-1, keepdims=True)
    spread = values.max(axis=-1, keepdims=True) - low
    return np.where(spread > 0, (values - low) / np.where(spread > 0, spread, 1.0), 0.0)


class SpaceEncoder:
    """Configurations as vectors, with the parameters and values a knowledge base saw.

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
        ``name -> (column, low, high, log)``: the reference scale.
    categorical : dict of str to tuple
        ``name -> (first column, {repr(value): offset})``.

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
                if isinstance(distribution, (FloatDistribution, IntDistribution)):
                    low, high, log = float(distribution.low), float(distribution.high), bool(distribution.log)
                    if name in numeric:
                        numeric[name] = [min(numeric[name][0], low), max(numeric[name][1], high), numeric[name][2] and log]
                    else:
                        numeric[name] = [low, high, log]
                else:
                    categorical.setdefault(name, {}).setdefault(repr(trial.params[name]), trial.params[name])
        clash = set(numeric) & set(categorical)
        self.numeric: dict[str, tuple[int, float, float, bool]] = {}
        self.categorical: dict[str, tuple[int, dict[str, int]]] = {}
        column = 0
        for name in sorted(numeric):
            if name in clash:
                continue
            low, high, log = numeric[name]
            log = log and low > 0
            if log:
                low, high = math.log(low), math.log(high)
            self.numeric[name] = (column, low, high, log)
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
        if isinstance(distribution, (FloatDistribution, IntDistribution)):
            return name in self.numeric
        if isinstance(distribution, CategoricalDistribution) and name in self.categorical:
            codes = self.categorical[name][1]
            return all(repr(choice) in codes for choice in distribution.choices)
        return False

    def encode(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encode parameter dicts; unknown parameters are ignored. Shape ``(n, n_columns)``."""
        out = np.zeros((len(configs), self.n_columns))
        for name, (column, *_) in self.numeric.items():
            out[:, column] = self.encode_numeric(name, [config.get(name, np.nan) for config in configs])
        for name, (column, codes) in self.categorical.items():
            for row, config in enumerate(configs):
                if name in config:
                    offset = codes.get(repr(config[name]))
                    if offset is not None:
                        out[row, column + offset] = 1.0
        return out

    def encode_numeric(self, name: str, values) -> np.ndarray:
        """A numeric parameter's values on its reference scale; NaN (missing) becomes ``-1``."""
        _, low, high, log = self.numeric[name]
        values = np.asarray(values, dtype=np.float64)
        if log:
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.log(values)
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        return np.where(np.isfinite(scaled), scaled, MISSING)


class DeepKernelRegressor(MetaLearner):
    """Bayesian linear regression on meta-learned MLP features (ALPaCA / ABLR).

    The features ``phi(x)`` are an MLP's outputs beside ``x`` and ``x ** 2``:
    the fixed quadratic part lets a few trials fit a bowl around an optimum
    at a finer scale than the learned part resolves. With features ``Phi`` of the ``n`` support examples, targets ``y``, a
    prior ``w ~ N(m0, diag(p0)^-1)`` over the head and noise variance
    ``s2``, the posterior is ``N(m, A^-1)`` with ``A = Phi'Phi / s2 +
    diag(p0)`` and ``m = A^-1 (Phi'y / s2 + diag(p0) m0)``; a query ``x``
    is predicted as ``N(phi(x) . m, s2 + phi(x)' A^-1 phi(x))``.
    Meta-training minimises the query negative log-likelihood of that
    prediction, so the prior learns what tasks share and ``phi`` the
    features in which they differ linearly.

    Parameters
    ----------
    in_features : int
        Width of the input.
    n_features : int, default=32
        Width of the MLP's output; ``phi`` has ``n_features + 2 * in_features``.
    hidden : sequence of int, default=(64,)
        Hidden widths of the feature MLP.

    Examples
    --------
    >>> import torch
    >>> from autometa.tasks import SinusoidTasks
    >>> from autometa.meta import meta_train
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = DeepKernelRegressor(1, n_features=16, hidden=(32,))
    >>> tasks = SinusoidTasks(k_shot=10, random_state=0)
    >>> _ = meta_train(model, tasks, steps=5, meta_batch=4)
    >>> batch = tasks.sample(1)
    >>> mean, std = model.predict(batch.support_x[0], batch.support_y[0], batch.query_x[0])
    >>> mean.shape, bool((std > 0).all())
    (torch.Size([10]), True)
    """

    task_type = "regression"

    def __init__(self, in_features: int, n_features: int = 32, hidden: Sequence[int] = (64,)):
        super().__init__(
            {"name": "mlp", "in_features": in_features, "out_features": n_features, "hidden": list(hidden)},
            in_features=in_features,
            n_features=n_features,
            hidden=list(hidden),
        )
        width = n_features + 2 * in_features
        self.prior_mean = torch.nn.Parameter(torch.zeros(width))
        self.log_prior_precision = torch.nn.Parameter(torch.zeros(width))
        self.log_noise = torch.nn.Parameter(torch.tensor(math.log(0.05)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``phi(x)``: the MLP's features beside ``x`` and ``x ** 2``, shape ``(..., n_features + 2 * in_features)``."""
        return torch.cat([self.backbone(x), x, x**2], dim=-1)

    def _posterior(self, phi: torch.Tensor, y: torch.Tensor, prior_mean: torch.Tensor | None = None):
        """Cholesky factor of ``A`` and the posterior mean, batched over leading dims."""
        noise = self.log_noise.exp()
        precision = self.log_prior_precision.exp()
        m0 = self.prior_mean if prior_mean is None else prior_mean
        a = phi.transpose(-1, -2) @ phi / noise + torch.diag_embed(precision.expand(*phi.shape[:-2], -1))
        b = (phi.transpose(-1, -2) @ y.unsqueeze(-1)).squeeze(-1) / noise + precision * m0
        chol = torch.linalg.cholesky(a)
        mean = torch.cholesky_solve(b.unsqueeze(-1), chol).squeeze(-1)
        return chol, mean

    def _predict(self, chol, mean, phi):
        loc = (phi @ mean.unsqueeze(-1)).squeeze(-1)
        v = torch.linalg.solve_triangular(chol, phi.transpose(-1, -2), upper=False)
        var = self.log_noise.exp() + (v**2).sum(-2)
        return loc, var

    def query_loss(self, tasks: TaskBatch):
        phi_support = self.features(tasks.support_x)
        phi_query = self.features(tasks.query_x)
        chol, mean = self._posterior(phi_support, tasks.support_y)
        loc, var = self._predict(chol, mean, phi_query)
        nll = 0.5 * (torch.log(2 * math.pi * var) + (tasks.query_y - loc) ** 2 / var)
        return nll.mean(), loc.unsqueeze(-1)

    def predict(self, support_x, support_y, query_x) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior predictive mean and standard deviation at ``query_x``, given one task's support set."""
        with torch.no_grad():
            chol, mean = self._posterior(self.features(support_x), support_y)
            loc, var = self._predict(chol, mean, self.features(query_x))
        return loc, var.sqrt()

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> Predictor:
        """The posterior mean function given one task's support set, as ``(n, 1)`` outputs."""
        with torch.no_grad():
            chol, mean = self._posterior(self.features(support_x), support_y)
        return lambda query_x: (self.features(query_x) @ mean).unsqueeze(-1)

    def to_numpy(self) -> NumpySurrogate:
        """A float64 NumPy copy for fast inference (no torch dispatch per call)."""
        layers = [(m.weight.detach().double().numpy().T.copy(), m.bias.detach().double().numpy().copy())
                  for m in self.backbone if isinstance(m, torch.nn.Linear)]
        return NumpySurrogate(
            layers,
            self.prior_mean.detach().double().numpy().copy(),
            self.log_prior_precision.detach().double().exp().numpy().copy(),
            float(self.log_noise.detach().exp()),
        )


class NumpySurrogate:
    """A meta-trained :class:`DeepKernelRegressor` in NumPy, for the sampler's per-trial work.

    Parameters
    ----------
    layers : list of (weight, bias)
        The feature MLP's linear layers (``x @ weight + bias``), ReLU between them.
    prior_mean, prior_precision : numpy.ndarray of shape (h,)
    noise : float
        The noise variance.
    """

    def __init__(self, layers, prior_mean, prior_precision, noise):
        self.layers = layers
        self.prior_mean = prior_mean
        self.prior_precision = prior_precision
        self.noise = noise
        self.task_heads: np.ndarray = np.zeros((0, len(prior_mean)))

    def features(self, x: np.ndarray) -> np.ndarray:
        """``phi(x)``: the MLP's features beside ``x`` and ``x ** 2``, shape ``(n, h)``."""
        h = x
        for i, (weight, bias) in enumerate(self.layers):
            h = h @ weight + bias
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return np.concatenate([h, x, x**2], axis=1)

    def posterior(self, phi: np.ndarray, y: np.ndarray, prior_mean: np.ndarray | None = None):
        """The head's posterior: its mean and the Cholesky factor of its precision."""
        m0 = self.prior_mean if prior_mean is None else prior_mean
        a = phi.T @ phi / self.noise + np.diag(self.prior_precision)
        b = phi.T @ y / self.noise + self.prior_precision * m0
        chol = np.linalg.cholesky(a)
        mean = _cho_solve(chol, b)
        return mean, chol

    def predict(self, phi: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and standard deviation at features ``phi``."""
        v = _solve_lower(chol, phi.T)
        return phi @ mean, np.sqrt(self.noise + (v**2).sum(axis=0))

    def fit_task_heads(self, tasks_x: Sequence[np.ndarray], tasks_y: Sequence[np.ndarray]) -> None:
        """The posterior mean head of each knowledge-base task, given all its trials."""
        self.task_heads = np.array([self.posterior(self.features(x), y)[0] for x, y in zip(tasks_x, tasks_y)])


_THREADPOOLS: list[ThreadpoolController] = []


def one_blas_thread():
    """A context in which BLAS runs on one thread.

    The surrogate's matrices are tiny (hundreds of rows, tens of columns):
    a multi-threaded BLAS spends more time waking its threads than
    multiplying, ten times more on a busy machine or beside torch's own
    thread pool.
    """
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=1, user_api="blas")


def _solve_lower(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    # np.linalg.solve on a triangular matrix: fine at h = 32, and no SciPy import per call
    return np.linalg.solve(chol, b)


def _cho_solve(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.solve(chol.T, np.linalg.solve(chol, b))


class _Episodes:
    """Few-shot regression tasks drawn from the knowledge base's tasks, as :func:`meta_train` wants them.

    Each task of a meta-batch is a knowledge-base task drawn uniformly; its
    ``support + query`` trials are drawn without replacement (with, when it
    has fewer), and their targets are their normalised ranks among
    themselves, as the sampler ranks a study's trials among themselves. The
    support size is drawn per meta-batch from ``1 .. max_support``, since a
    study is adapted to from its first trial on.
    """

    def __init__(self, tasks_x, tasks_y, max_support: int = 24, n_query: int = 16, seed: int = 0):
        self.tasks_x = tasks_x
        self.tasks_y = tasks_y
        self.max_support = max_support
        self.n_query = n_query
        self.rng = np.random.default_rng(seed)

    def sample(self, meta_batch: int) -> TaskBatch:
        n_support = int(self.rng.integers(1, self.max_support + 1))
        m = n_support + self.n_query
        xs, ys = [], []
        for t in self.rng.integers(len(self.tasks_x), size=meta_batch):
            x, y = self.tasks_x[t], self.tasks_y[t]
            rows = self.rng.choice(len(x), size=m, replace=len(x) < m)
            xs.append(x[rows])
            ys.append(y[rows])
        x = torch.as_tensor(np.array(xs), dtype=torch.float32)
        y = torch.as_tensor(normalised_ranks(np.array(ys)), dtype=torch.float32)
        return TaskBatch(x[:, :n_support], y[:, :n_support], x[:, n_support:], y[:, n_support:])


def meta_train_surrogate(
    tasks_x: Sequence[np.ndarray],
    tasks_y: Sequence[np.ndarray],
    steps: int = 300,
    seed: int = 0,
    n_features: int = 32,
    hidden: Sequence[int] = (64,),
    meta_batch: int = 16,
    lr: float = 3e-3,
) -> NumpySurrogate:
    """Meta-train a :class:`DeepKernelRegressor` on encoded tasks; return it in NumPy with its task heads.

    Parameters
    ----------
    tasks_x : sequence of numpy.ndarray of shape (n_t, d)
        Each task's encoded configurations.
    tasks_y : sequence of numpy.ndarray of shape (n_t,)
        Each task's objective values as normalised ranks (0 best).
    steps : int, default=300
        Meta-training steps (Adam, cosine schedule).
    seed : int, default=0
        Seeds the initialisation and the episodes: the result is a
        deterministic function of the data and the seed (on one thread).

    Returns
    -------
    NumpySurrogate
        With :attr:`NumpySurrogate.task_heads` fitted on every task.
    """
    if not len(tasks_x):
        raise ValueError("meta-training needs at least one task")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DeepKernelRegressor(tasks_x[0].shape[1], n_features=n_features, hidden=hidden)
        meta_train(model, _Episodes(tasks_x, tasks_y, seed=seed), steps=steps, meta_batch=meta_batch, lr=lr)
    surrogate = model.eval().to_numpy()
    surrogate.fit_task_heads(tasks_x, tasks_y)
    return surrogate


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """Expected improvement below ``best`` of Gaussian predictions (minimisation)."""
    z = (best - mean) / std
    cdf = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)
    return (best - mean) * cdf + std * pdf


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): NumPy has no erf, and SciPy's import costs more than a trial
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))
