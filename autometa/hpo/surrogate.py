"""The meta-learned surrogate of :class:`~autometa.hpo.MetaLearnedSampler`.

A model that never sees a study, apart from the sampler protocol (as Optuna
keeps TPE's ``_parzen_estimator.py`` apart from its sampler). Its inputs are
configurations encoded by :class:`autometa.hpo.encoding.SpaceEncoder`.

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
:class:`NumpySurrogate`
    The meta-trained regressor in float64 NumPy, with the same
    ``posterior`` and ``predict``, for the sampler's per-trial work;
    :func:`meta_train_surrogate` returns one.

Targets are *normalised ranks* (:func:`autometa.hpo.encoding.normalised_ranks`):
within a set of ``m`` trials, the best scores 0 and the worst 1
(``rank / (m - 1)``, ties averaged, direction handled), so tasks with
objectives of any scale and direction share one target space.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

from autometa.hpo.encoding import normalised_ranks
from autometa.meta.base import MetaLearner, Predictor
from autometa.meta.training import meta_train
from autometa.tasks.task import TaskBatch

__all__ = ["DeepKernelRegressor", "NumpySurrogate", "expected_improvement", "meta_train_surrogate", "one_blas_thread"]


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

    def posterior(self, phi: torch.Tensor, y: torch.Tensor, prior_mean: torch.Tensor | None = None):
        """The head's posterior given features ``phi`` and targets ``y``: ``(mean, chol)``, batched over leading dims.

        ``chol`` is the Cholesky factor of the posterior precision ``A``;
        ``prior_mean`` replaces the learned prior mean when given.
        """
        noise = self.log_noise.exp()
        precision = self.log_prior_precision.exp()
        m0 = self.prior_mean if prior_mean is None else prior_mean
        a = phi.transpose(-1, -2) @ phi / noise + torch.diag_embed(precision.expand(*phi.shape[:-2], -1))
        b = (phi.transpose(-1, -2) @ y.unsqueeze(-1)).squeeze(-1) / noise + precision * m0
        chol = torch.linalg.cholesky(a)
        mean = torch.cholesky_solve(b.unsqueeze(-1), chol).squeeze(-1)
        return mean, chol

    def _predictive(self, phi, mean, chol):
        """Predictive mean and variance at features ``phi`` under the posterior ``(mean, chol)``."""
        loc = (phi @ mean.unsqueeze(-1)).squeeze(-1)
        v = torch.linalg.solve_triangular(chol, phi.transpose(-1, -2), upper=False)
        var = self.log_noise.exp() + (v**2).sum(-2)
        return loc, var

    def query_loss(self, tasks: TaskBatch):
        phi_support = self.features(tasks.support_x)
        phi_query = self.features(tasks.query_x)
        mean, chol = self.posterior(phi_support, tasks.support_y)
        loc, var = self._predictive(phi_query, mean, chol)
        nll = 0.5 * (torch.log(2 * math.pi * var) + (tasks.query_y - loc) ** 2 / var)
        return nll.mean(), loc.unsqueeze(-1)

    def predict(self, support_x, support_y, query_x, prior_mean=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior predictive mean and standard deviation at ``query_x``, given one task's support set."""
        with torch.no_grad():
            mean, chol = self.posterior(self.features(support_x), support_y, prior_mean)
            loc, var = self._predictive(self.features(query_x), mean, chol)
        return loc, var.sqrt()

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> Predictor:
        """The posterior mean function given one task's support set, as ``(n, 1)`` outputs."""
        with torch.no_grad():
            mean, chol = self.posterior(self.features(support_x), support_y)
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

    ``features``, ``posterior`` and ``predict`` are the regressor's, in float64
    without torch's per-call dispatch.

    Parameters
    ----------
    layers : list of (weight, bias)
        The feature MLP's linear layers (``x @ weight + bias``), ReLU between them.
    prior_mean, prior_precision : numpy.ndarray of shape (h,)
    noise : float
        The noise variance.

    Attributes
    ----------
    task_heads : numpy.ndarray of shape (n_tasks, h)
        The posterior mean head of each knowledge-base task (:meth:`fit_task_heads`).
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

    def posterior(self, phi: np.ndarray, y: np.ndarray, prior_mean: np.ndarray | None = None,
                  noise: np.ndarray | None = None):
        """The head's posterior given features ``phi`` and targets ``y``: ``(mean, chol)``.

        ``chol`` is the Cholesky factor of the posterior precision;
        ``prior_mean`` replaces the learned prior mean when given; ``noise``
        (shape ``(n,)``) is each target's own noise variance, added to the
        learned one (heteroscedastic regression: a noisy target counts less).
        """
        m0 = self.prior_mean if prior_mean is None else prior_mean
        weight = 1.0 / (self.noise if noise is None else self.noise + np.asarray(noise))
        weighted = phi * np.broadcast_to(weight, len(phi))[:, None]
        a = phi.T @ weighted + np.diag(self.prior_precision)
        b = weighted.T @ y + self.prior_precision * m0
        chol = np.linalg.cholesky(a)
        mean = _cho_solve(chol, b)
        return mean, chol

    def predict(self, support_x: np.ndarray, support_y: np.ndarray, query_x: np.ndarray,
                prior_mean: np.ndarray | None = None,
                noise: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Posterior predictive mean and standard deviation at ``query_x``, given one task's support set.

        ``noise``: the support targets' own noise variances (:meth:`posterior`).
        """
        mean, chol = self.posterior(self.features(support_x), support_y, prior_mean, noise)
        return self._predictive(self.features(query_x), mean, chol)

    def difference_bound(self, support_x: np.ndarray, support_y: np.ndarray, a: np.ndarray, b: np.ndarray,
                         prior_mean: np.ndarray | None = None, noise: np.ndarray | None = None,
                         z: float = 2.0) -> np.ndarray:
        """An upper bound on ``|f(a_i) - f(b_j)|`` for every pair: ``|mean difference| + z * its posterior sd``.

        ``f`` is the noise-free response under the posterior given the
        support set (as in :meth:`predict`); the posterior covariance of
        ``f(a_i)`` and ``f(b_j)`` enters the sd, so two nearby points whose
        values the model ties together have a small bound.

        Returns
        -------
        numpy.ndarray of shape (len(a), len(b))
        """
        mean, chol = self.posterior(self.features(support_x), support_y, prior_mean, noise)
        phi_a, phi_b = self.features(a), self.features(b)
        v_a, v_b = _solve_lower(chol, phi_a.T), _solve_lower(chol, phi_b.T)
        var = (v_a**2).sum(0)[:, None] + (v_b**2).sum(0)[None, :] - 2.0 * v_a.T @ v_b
        return np.abs((phi_a @ mean)[:, None] - (phi_b @ mean)[None, :]) + z * np.sqrt(np.maximum(var, 0.0))

    def task_predictions(self, x: np.ndarray) -> np.ndarray:
        """Each knowledge-base task's predicted normalised rank at ``x`` (its head), shape ``(n, n_tasks)``."""
        return self.features(x) @ self.task_heads.T

    def _predictive(self, phi: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and standard deviation at features ``phi`` under the posterior ``(mean, chol)``."""
        v = _solve_lower(chol, phi.T)
        return phi @ mean, np.sqrt(self.noise + (v**2).sum(axis=0))

    def save(self, path: str | os.PathLike, key: str) -> None:
        """Write the surrogate to an ``.npz`` file (atomically), tagged with ``key``: what it was trained on."""
        arrays = {"key": np.array(key), "noise": np.array(self.noise), "prior_mean": self.prior_mean,
                  "prior_precision": self.prior_precision, "task_heads": self.task_heads}
        for i, (weight, bias) in enumerate(self.layers):
            arrays[f"weight{i}"], arrays[f"bias{i}"] = weight, bias
        path = Path(path)
        partial = path.with_name(path.name + ".partial")
        with open(partial, "wb") as file:
            np.savez_compressed(file, **arrays)
        os.replace(partial, path)

    @classmethod
    def load(cls, path) -> tuple[str, NumpySurrogate]:
        """A surrogate written by :meth:`save` (a path or a binary file): ``(key, surrogate)``."""
        with np.load(path, allow_pickle=False) as data:
            n_layers = sum(name.startswith("weight") for name in data.files)
            layers = [(data[f"weight{i}"], data[f"bias{i}"]) for i in range(n_layers)]
            surrogate = cls(layers, data["prior_mean"], data["prior_precision"], float(data["noise"]))
            surrogate.task_heads = data["task_heads"]
            return str(data["key"]), surrogate

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
