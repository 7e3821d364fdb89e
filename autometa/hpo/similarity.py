"""How similar each earlier task is to the new one: by descriptor, or by the trials seen so far.

By descriptor (:func:`descriptor_weights`), before any trial: the earlier
tasks whose meta-features (:mod:`autometa.hpo.metafeatures`) are nearest to
the new task's.

By response (:func:`response_similarity`), once the study has trials: an
earlier task resembles the new one when its *response surface explains
the new study's trials*: predict, with a cheap model of each earlier task,
the objective at the configurations the study has tried, and compare the
predictions with the values the study observed by Spearman's rank
correlation (:func:`response_similarity`). Ranks make the comparison blind to
the objectives' scales and offsets, so an accuracy in percent and a loss can
be compared. Everything is recomputed from the study's trials on each call:
no state is kept between trials.

Two per-task models are provided: :class:`NearestNeighbourSurfaces`
(each task's nearest trial, in the encoded configuration space of
:class:`autometa.hpo.encoding.SpaceEncoder`) and the meta-learned
surrogate's per-task heads
(:meth:`autometa.hpo.surrogate.NumpySurrogate.task_predictions`), which cost
one matrix product for all tasks. Either way the most similar tasks get
uniform weights (:func:`top_similar_weights`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from autometa.hpo.encoding import normalised_ranks
from autometa.hpo.metafeatures import metafeature_vector

__all__ = ["NearestNeighbourSurfaces", "descriptor_weights", "response_similarity", "top_similar_weights"]


def descriptor_weights(tasks: Sequence, descriptor: Mapping[str, float], n_similar: int) -> np.ndarray:
    """Uniform weights over the ``n_similar`` tasks whose descriptors are nearest to ``descriptor``.

    Each meta-feature column is standardised by its mean and standard
    deviation over the described tasks; columns that are NaN for the new
    task or for any described task, or constant across them, are left out;
    the distance is Euclidean on the rest. Tasks without a descriptor get
    weight 0. Ties go to the earlier task. Without a usable column (or a
    described task) every task gets the same weight, with a warning.

    Parameters
    ----------
    tasks : sequence of Task
        The earlier tasks; ``task.descriptor`` is a meta-feature mapping or None.
    descriptor : mapping of str to float
        The new task's meta-features (:func:`autometa.hpo.compute_metafeatures`).
    n_similar : int
        How many tasks share the weight.

    Returns
    -------
    numpy.ndarray of shape (len(tasks),)
        Weights summing to 1.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> tasks = [SimpleNamespace(descriptor={"log10_n_rows": v}) for v in (2.0, 3.0, 4.0)]
    >>> descriptor_weights(tasks, {"log10_n_rows": 3.2}, n_similar=2).tolist()
    [0.0, 0.5, 0.5]
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


def response_similarity(values: np.ndarray, predictions: np.ndarray, direction: str = "minimize") -> np.ndarray:
    """Spearman's rank correlation of observed values with each task's predictions.

    Parameters
    ----------
    values : array-like of shape (n,)
        The study's objective values at ``n`` configurations.
    predictions : array-like of shape (n, n_tasks)
        Each earlier task's predicted *normalised rank* (0 best) at those
        configurations.
    direction : {"minimize", "maximize"}, default="minimize"
        The study's direction.

    Returns
    -------
    numpy.ndarray of shape (n_tasks,)
        In ``[-1, 1]``; 0 where either side is constant or ``n < 2``.

    Examples
    --------
    >>> predictions = [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]
    >>> response_similarity([1.0, 2.0, 3.0], predictions).tolist()
    [1.0, -1.0]
    >>> response_similarity([1.0, 2.0, 3.0], predictions, direction="maximize").tolist()
    [-1.0, 1.0]
    """
    observed = normalised_ranks(values, direction)
    predicted = normalised_ranks(np.asarray(predictions, dtype=np.float64).T)
    if observed.shape[0] < 2:
        return np.zeros(predicted.shape[0])
    a = observed - observed.mean()
    b = predicted - predicted.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a**2).sum() * (b**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (b @ a) / denominator
    return np.where(denominator > 0, rho, 0.0)


def top_similar_weights(similarity: np.ndarray, n_similar: int) -> np.ndarray:
    """Uniform weights over the ``n_similar`` most similar tasks (ties: the earlier task).

    Examples
    --------
    >>> top_similar_weights([0.1, 0.9, 0.5], n_similar=2).tolist()
    [0.0, 0.5, 0.5]
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    top = np.argsort(-similarity, kind="stable")[:n_similar]
    weights = np.zeros(len(similarity))
    weights[top] = 1.0 / len(top)
    return weights


class NearestNeighbourSurfaces:
    """Each earlier task's response surface as the value of its nearest trial.

    Parameters
    ----------
    tasks_x : sequence of numpy.ndarray of shape (n_t, d)
        Each task's encoded configurations.
    tasks_y : sequence of numpy.ndarray of shape (n_t,)
        Their normalised ranks (0 best).

    Examples
    --------
    >>> import numpy as np
    >>> surfaces = NearestNeighbourSurfaces([np.array([[0.0], [1.0]])], [np.array([0.0, 1.0])])
    >>> surfaces.predict(np.array([[0.2], [0.9]])).tolist()
    [[0.0], [1.0]]
    """

    def __init__(self, tasks_x: Sequence[np.ndarray], tasks_y: Sequence[np.ndarray]):
        self.tasks_x = [np.asarray(x, dtype=np.float64) for x in tasks_x]
        self.tasks_y = [np.asarray(y, dtype=np.float64) for y in tasks_y]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted normalised ranks, shape ``(n, n_tasks)``; ties between neighbours averaged."""
        x = np.asarray(x, dtype=np.float64)
        out = np.empty((len(x), len(self.tasks_x)))
        for t, (tx, ty) in enumerate(zip(self.tasks_x, self.tasks_y)):
            squared = (x**2).sum(1)[:, None] - 2 * x @ tx.T + (tx**2).sum(1)[None, :]
            nearest = squared <= squared.min(axis=1, keepdims=True) + 1e-9
            out[:, t] = (nearest * ty).sum(1) / nearest.sum(1)
        return out
