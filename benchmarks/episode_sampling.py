"""How fast :class:`~autometa.tasks.EpisodeSampler` draws episodes, on one core.

Compares it, in the same run, with the per-episode Python loop most few-shot
code uses (``random.sample`` per class, then ``torch.stack``). Without data it
uses Omniglot-shaped synthetic data: 28x28 float32 images, 20 per class,
classes grouped into alphabets.

Run it as ``python -m benchmarks.episode_sampling``.
"""

from __future__ import annotations

import random
import time

import numpy as np
import torch

from autometa._common import describe
from autometa.tasks import EpisodeSampler


def omniglot_like(
    n_classes: int = 968, n_per_class: int = 20, n_groups: int = 32, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random 28x28 float32 "images" shaped like Omniglot's background set.

    The defaults match the two small background sets rotated four times
    (242 characters x 4 = 968 classes, 19,360 images).

    Returns
    -------
    X : numpy.ndarray of shape (n_classes * n_per_class, 28, 28)
    y, groups : numpy.ndarray of shape (n_classes * n_per_class,)
        Class and group (alphabet) of each image; group sizes differ by at most one class.
    """
    rng = np.random.default_rng(random_state)
    X = rng.random((n_classes * n_per_class, 28, 28), dtype=np.float32)
    y = np.repeat(np.arange(n_classes), n_per_class)
    return X, y, y % n_groups


def run(
    X=None,
    y=None,
    groups=None,
    n_way: int = 20,
    k_shot: int = 5,
    n_query: int = 15,
    n_episodes: int = 1000,
    meta_batch: int = 32,
    repeats: int = 5,
    baseline: bool = True,
    random_state: int = 0,
) -> dict[str, float]:
    """Time drawing ``n_episodes`` episodes in meta-batches of ``meta_batch`` on one thread.

    Parameters
    ----------
    X, y, groups : array-like, default=None
        The pool, as for :class:`~autometa.tasks.EpisodeSampler`; default
        :func:`omniglot_like`.
    n_way, k_shot, n_query, meta_batch : int
        The episodes.
    n_episodes : int, default=1000
        Episodes per timing (rounded up to whole meta-batches).
    repeats : int, default=5
        Timings of each sampler, interleaved so that both see the same load.
    baseline : bool, default=True
        Also time the per-episode Python loop on the same pool.
    random_state : int, default=0

    Returns
    -------
    dict
        ``episodes`` per timing, ``setup_s`` (building the sampler), the median
        ``sample_s`` with ``sample_s_min`` and ``sample_s_max``, and
        ``episodes_per_s`` (from the median); with the baseline also
        ``baseline_episodes_per_s`` and ``speedup`` (median over repeats of
        the per-repeat ratio, with ``speedup_min`` and ``speedup_max``).
        Also printed, with the machine and library versions.
    """
    if X is None:
        X, y, groups = omniglot_like(random_state=random_state)
    n_batches = -(-n_episodes // meta_batch)
    episodes = n_batches * meta_batch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        sampler = EpisodeSampler(X, y, n_way, k_shot, n_query, groups=groups, random_state=random_state)
        setup_s = time.perf_counter() - start
        draws = [lambda: sampler.sample(meta_batch)]
        if baseline:
            loop = _LoopSampler(X, y, groups, n_way, k_shot, n_query, random_state)
            draws.append(lambda: loop.sample(meta_batch))
        times = np.array([[_time(draw, n_batches) for draw in draws] for _ in range(repeats)])
    finally:
        torch.set_num_threads(threads)
    sample_s = float(np.median(times[:, 0]))
    result = {
        "episodes": episodes,
        "setup_s": setup_s,
        "sample_s": sample_s,
        "sample_s_min": float(times[:, 0].min()),
        "sample_s_max": float(times[:, 0].max()),
        "episodes_per_s": episodes / sample_s,
    }
    if baseline:
        speedups = times[:, 1] / times[:, 0]
        result["baseline_episodes_per_s"] = episodes / float(np.median(times[:, 1]))
        result["speedup"] = float(np.median(speedups))
        result["speedup_min"], result["speedup_max"] = float(speedups.min()), float(speedups.max())
    _report(result, tuple(np.shape(X)), n_way, k_shot, n_query, meta_batch, repeats, random_state)
    return result


def _time(draw, n_batches: int) -> float:
    draw()  # warm-up: first-touch allocations and lazy initialisation
    start = time.perf_counter()
    for _ in range(n_batches):
        draw()
    return time.perf_counter() - start


class _LoopSampler:
    """The per-episode, per-class Python loop that :class:`EpisodeSampler` replaces."""

    def __init__(self, X, y, groups, n_way, k_shot, n_query, random_state):
        self.X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        groups = np.zeros(len(y), dtype=int) if groups is None else np.asarray(groups)
        self.examples = {c: np.flatnonzero(np.asarray(y) == c).tolist() for c in np.unique(y)}
        by_group = {g: np.unique(np.asarray(y)[groups == g]).tolist() for g in np.unique(groups)}
        self.class_lists = [classes for classes in by_group.values() if len(classes) >= n_way]
        self.rng = random.Random(random_state)

    def sample(self, meta_batch):
        support, query = [], []
        for _ in range(meta_batch):
            classes = self.rng.sample(self.rng.choice(self.class_lists), self.n_way)
            picks = [self.rng.sample(self.examples[c], self.k_shot + self.n_query) for c in classes]
            support.append(self.X[[i for p in picks for i in p[: self.k_shot]]])
            query.append(self.X[[i for p in picks for i in p[self.k_shot :]]])
        return torch.stack(support), torch.stack(query)


def _report(result, shape, n_way, k_shot, n_query, meta_batch, repeats, random_state) -> None:
    print(
        f"episode sampling: {result['episodes']} {n_way}-way {k_shot}-shot {n_query}-query episodes "
        f"from X{shape}, meta-batch {meta_batch}, seed {random_state}, 1 thread, "
        f"median of {repeats} [min, max]"
    )
    print(f"  machine: {describe()}")
    print(
        f"  EpisodeSampler: {result['sample_s']:.3f} s [{result['sample_s_min']:.3f}, "
        f"{result['sample_s_max']:.3f}], {result['episodes_per_s']:,.0f} episodes/s "
        f"(setup {result['setup_s']:.3f} s)"
    )
    if "speedup" in result:
        print(
            f"  per-episode loop: {result['baseline_episodes_per_s']:,.0f} episodes/s; EpisodeSampler "
            f"is {result['speedup']:.1f}x [{result['speedup_min']:.1f}, {result['speedup_max']:.1f}] faster"
        )
