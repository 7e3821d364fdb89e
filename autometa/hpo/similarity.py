"""Task similarity from the trials seen so far, without a descriptor.

An earlier task resembles the new one when its *response surface explains
the new study's trials*: predict, with a cheap model of each earlier task,
the objective at the configurations the study has tried, and compare the
predictions with the values the study observed by Spearman's rank
correlation (:func:`response_similarity`). Ranks make the comparison blind to
the objectives' scales and offsets, so an accuracy in percent and a loss can
be compared. Everything is recomputed from the study's trials on each call:
no state is kept between trials.

Two per-task models are provided: :class:`NearestNeighbourSurfaces`
(each task's nearest trial, in the encoded configuration space of
:class:`autometa.hpo.surrogate.SpaceEncoder`) and the meta-learned
surrogate's per-task heads (:class:`autometa.hpo.surrogate.NumpySurrogate`),
which cost one matrix product for all tasks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autometa.hpo.surrogate import normalised_ranks

__all__ = ["NearestNeighbourSurfaces", "response_similarity", "top_similar_weights"]


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
