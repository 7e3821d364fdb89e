"""A knowledge base's tasks as the surrogate and the similarity see them, and the surrogate meta-trained on them.

:class:`EncodedTasks` encodes each task's completed trials once
(:class:`autometa.hpo.encoding.SpaceEncoder`, targets their normalised
ranks) and keeps what a sampler asks of them on every trial: each task's
three best configurations, its nearest-neighbour response surface
(:class:`autometa.hpo.similarity.NearestNeighbourSurfaces`) and a digest of
the encoded content.

Meta-training the surrogate is a pure function of that content, the number
of steps and the seed, so :meth:`EncodedTasks.meta_trained` keeps the last
few results in a process-wide cache: samplers of one knowledge base (the
workers of one process, a benchmark's repeated studies) train it once; the
pretrained knowledge bases ship theirs.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

import numpy as np

from autometa.hpo.encoding import SpaceEncoder, finite_trials, normalised_ranks
from autometa.hpo.similarity import NearestNeighbourSurfaces

__all__ = ["EncodedTasks"]

#: How many meta-trained surrogates the process keeps (the oldest goes first).
CACHE_SIZE = 4
_CACHE: dict[str, object] = {}
_CACHE_LOCK = threading.Lock()


class EncodedTasks:
    """Single-objective tasks encoded for the surrogate and the similarity (a pure function of the tasks).

    Parameters
    ----------
    tasks : sequence of Task
        Single-objective tasks, each with a completed trial of finite value.

    Attributes
    ----------
    encoder : SpaceEncoder
        Built from every completed trial of the tasks.
    tasks_x : list of numpy.ndarray of shape (n_t, encoder.n_columns)
        Each task's completed finite trials, encoded.
    tasks_y : list of numpy.ndarray of shape (n_t,)
        Their normalised ranks (0 best).
    best_configs : list of list of dict
        Each task's (up to) three best configurations, best first.
    surfaces : NearestNeighbourSurfaces
        Each task's response surface as the value of its nearest trial.
    key : str
        A digest of the encoded tasks (``tasks_x`` with their shapes, ``tasks_y``): all that meta-training sees.
    """

    def __init__(self, tasks: Sequence):
        self.encoder = SpaceEncoder(t for task in tasks for t in task.completed_trials())
        self.tasks_x, self.tasks_y, self.best_configs = [], [], []
        for task in tasks:
            trials = finite_trials(task.completed_trials())
            y = normalised_ranks([t.value for t in trials], task.direction)
            self.tasks_x.append(self.encoder.encode([t.params for t in trials]))
            self.tasks_y.append(y)
            self.best_configs.append([trials[i].params for i in np.argsort(y, kind="stable")[:3]])
        self.surfaces = NearestNeighbourSurfaces(self.tasks_x, self.tasks_y)
        # what meta-training sees, and nothing else: the same tasks under other parameter names share a surrogate
        digest = hashlib.sha256()
        for x, y in zip(self.tasks_x, self.tasks_y):
            digest.update(repr(x.shape).encode() + np.ascontiguousarray(x).tobytes() + b"|"
                          + np.ascontiguousarray(y).tobytes())
        self.key = digest.hexdigest()

    def surrogate_key(self, steps: int, seed: int) -> str:
        """What identifies the surrogate meta-trained on these tasks with ``steps`` and ``seed``."""
        return f"{self.key}:{steps}:{seed}"

    def meta_trained(self, steps: int, seed: int):
        """The surrogate meta-trained on these tasks (:func:`autometa.hpo.surrogate.meta_train_surrogate`), cached.

        Looked up in the process-wide cache, then among the surrogates shipped
        with the pretrained knowledge bases
        (:func:`autometa.hpo.pretrained.shipped_surrogate`); trained only when
        neither has it.

        Returns
        -------
        NumpySurrogate
            With its task heads fitted; shared with other callers of the same content, steps and seed.
        """
        from autometa.hpo.pretrained import shipped_surrogate
        from autometa.hpo.surrogate import meta_train_surrogate

        key = self.surrogate_key(steps, seed)
        with _CACHE_LOCK:
            model = _CACHE.get(key) or shipped_surrogate(key)
            if model is None:
                model = meta_train_surrogate(self.tasks_x, self.tasks_y, steps=steps, seed=seed)
                if len(_CACHE) >= CACHE_SIZE:
                    _CACHE.pop(next(iter(_CACHE)))
                _CACHE[key] = model
            return model
