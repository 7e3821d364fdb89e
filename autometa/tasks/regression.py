"""Few-shot regression task families: the MAML sinusoids and one task per group of a table."""

from __future__ import annotations

import math

import numpy as np
import torch

from autometa._common import check_int
from autometa.tasks._sampling import (
    Members,
    RandomState,
    as_float_tensor,
    encode,
    gather,
    renumber,
    show,
)
from autometa.tasks.task import TaskBatch


class SinusoidTasks:
    """Regress ``y = amplitude * sin(x - phase)`` from a few points.

    The task family of MAML (Finn, Abbeel & Levine, ICML 2017, section 5.1):
    each task draws an amplitude, a phase and ``k_shot + n_query`` inputs
    uniformly from their ranges.

    Parameters
    ----------
    k_shot, n_query : int, default=10
        Support and query points per task.
    amplitude, phase, x_range : (float, float)
        Uniform ranges of the amplitude, the phase and the inputs.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the tasks: the same seed gives the same sequence.

    Examples
    --------
    >>> tasks = SinusoidTasks(k_shot=5, random_state=0)
    >>> batch, amplitude, phase = tasks.sample(meta_batch=8, return_params=True)
    >>> tuple(batch.support_x.shape), tuple(batch.support_y.shape)
    ((8, 5, 1), (8, 5))
    >>> grid = torch.linspace(-5, 5, 100)
    >>> tuple(SinusoidTasks.true_function(grid, amplitude, phase).shape)
    (8, 100)
    """

    def __init__(
        self,
        k_shot: int = 10,
        n_query: int = 10,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
        random_state: RandomState = None,
    ):
        check_int(k_shot, "k_shot")
        check_int(n_query, "n_query")
        for name, (low, high) in (("amplitude", amplitude), ("phase", phase), ("x_range", x_range)):
            if not low <= high:
                raise ValueError(f"{name} must be a range (low, high) with low <= high, got {(low, high)}")
        self.k_shot, self.n_query = k_shot, n_query
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range
        self.random_state = random_state
        self._rng = np.random.default_rng(random_state)

    def sample(self, meta_batch: int = 1, return_params: bool = False):
        """Draw ``meta_batch`` independent tasks.

        Returns
        -------
        batch : TaskBatch
            ``support_x`` ``(meta_batch, k_shot, 1)``, ``support_y``
            ``(meta_batch, k_shot)``, the query likewise, all float32.
        amplitude, phase : torch.Tensor of shape (meta_batch,)
            Each task's parameters, only when ``return_params`` is true; pass
            them to :meth:`true_function` to plot or score a task.
        """
        check_int(meta_batch, "meta_batch")
        rng = self._rng

        def uniform(bounds: tuple[float, float], *size: int) -> torch.Tensor:
            return torch.from_numpy(rng.uniform(*bounds, size=size).astype(np.float32))

        amplitude, phase = uniform(self.amplitude, meta_batch), uniform(self.phase, meta_batch)
        support_x = uniform(self.x_range, meta_batch, self.k_shot, 1)
        query_x = uniform(self.x_range, meta_batch, self.n_query, 1)
        batch = TaskBatch(
            support_x,
            self.true_function(support_x[..., 0], amplitude, phase),
            query_x,
            self.true_function(query_x[..., 0], amplitude, phase),
        )
        return (batch, amplitude, phase) if return_params else batch

    @staticmethod
    def true_function(x: torch.Tensor, amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """``amplitude * sin(x - phase)`` of each task.

        Parameters
        ----------
        x : torch.Tensor of shape (n_points,) or (n_tasks, n_points)
            Inputs shared by all tasks, or per task.
        amplitude, phase : torch.Tensor of shape (n_tasks,)

        Returns
        -------
        torch.Tensor of shape (n_tasks, n_points)
        """
        return amplitude.unsqueeze(-1) * torch.sin(x - phase.unsqueeze(-1))


class GroupedRegressionTasks:
    """Few-shot regression tasks, one per group of rows of a table.

    Each task is a group (a customer, a sensor, a data set) from which
    ``k_shot`` support and ``n_query`` query rows are drawn without
    replacement. Groups with fewer than ``k_shot + n_query`` rows are never
    drawn (see ``groups_``); the others are drawn uniformly, independently
    for each task of a meta-batch.

    Parameters
    ----------
    X : array-like of shape (n_rows, n_features)
        Numeric features (numpy array or pandas DataFrame).
    y : array-like of shape (n_rows,)
        Numeric targets.
    groups : array-like of shape (n_rows,)
        The task of each row, any sortable hashable values.
    k_shot, n_query : int
        Support and query rows per task.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the tasks: the same seed gives the same sequence.

    Attributes
    ----------
    groups_ : numpy.ndarray
        The sorted labels of the groups tasks are drawn from.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = np.random.rand(300, 4), np.random.rand(300)
    >>> tasks = GroupedRegressionTasks(X, y, np.arange(300) % 10, k_shot=5, n_query=10)
    >>> tuple(tasks.sample(meta_batch=16).query_x.shape)
    (16, 10, 4)
    """

    def __init__(self, X, y, groups, k_shot: int, n_query: int, random_state: RandomState = None):
        check_int(k_shot, "k_shot")
        check_int(n_query, "n_query")
        self.k_shot, self.n_query = k_shot, n_query
        self.random_state = random_state
        self._X = as_float_tensor(X)
        self._y = as_float_tensor(y).reshape(-1)
        if len(self._y) != len(self._X):
            raise ValueError(
                f"y has {len(self._y)} values but X has {len(self._X)} rows; pass one value per row"
            )
        group_labels, codes = encode(groups, "groups", len(self._X))
        sizes = np.bincount(codes)
        usable = sizes >= k_shot + n_query
        if not usable.any():
            largest = int(np.argmax(sizes))
            raise ValueError(
                f"0 of {len(sizes)} groups have k_shot + n_query = {k_shot + n_query} rows (largest: "
                f"{show(group_labels[largest])} with {sizes[largest]}); lower k_shot or n_query"
            )
        self.groups_ = group_labels[usable]
        self._rows = Members(renumber(usable)[codes], len(self.groups_))
        self._rng = np.random.default_rng(random_state)

    def sample(self, meta_batch: int = 1) -> TaskBatch:
        """Draw ``meta_batch`` tasks.

        Returns
        -------
        TaskBatch
            ``support_x`` ``(meta_batch, k_shot, n_features)``, ``support_y``
            ``(meta_batch, k_shot)``, the query likewise, all float32.
        """
        check_int(meta_batch, "meta_batch")
        groups = self._rng.integers(len(self.groups_), size=meta_batch)
        rows = self._rows.sample(groups, self.k_shot + self.n_query, self._rng)
        support, query = rows[:, : self.k_shot], rows[:, self.k_shot :]
        return TaskBatch(
            gather(self._X, support),
            gather(self._y, support),
            gather(self._X, query),
            gather(self._y, query),
        )
