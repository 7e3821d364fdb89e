"""Synthetic few-shot problems and small modules shared by the learners' tests."""

import numpy as np
import torch
from torch import nn

from autometa.tasks.task import TaskBatch


def random_tasks(n_way, k_shot, n_query=3, n_tasks=1, n_features=6, seed=0):
    """Class-major tasks of random inputs."""
    g = torch.Generator().manual_seed(seed)
    return TaskBatch(
        torch.randn(n_tasks, n_way * k_shot, n_features, generator=g),
        torch.arange(n_way).repeat_interleave(k_shot).repeat(n_tasks, 1),
        torch.randn(n_tasks, n_way * n_query, n_features, generator=g),
        torch.arange(n_way).repeat_interleave(n_query).repeat(n_tasks, 1),
    )


class TinyEmbedding(nn.Module):
    """A user module, with a batch-norm layer that tracks running statistics."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(6, 8)
        self.norm = nn.BatchNorm1d(8)

    def forward(self, x):
        return torch.relu(self.norm(self.linear(x)))


def small_blobs(seed=0):
    """12 classes of 6 points in 6 dimensions, class means 0.3 apart: a few-shot source for quick training runs."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(12), 6)
    X = rng.normal(size=(len(y), 6)).astype(np.float32) + y[:, None] * 0.3
    return X, y


def blobs(n_classes=100, per_class=20, n_features=20, n_relevant=4, seed=0):
    """Gaussian classes whose means differ in a random 4-d subspace of 20-d inputs.

    The noise is 10 times larger in the other 16 directions, so raw distances
    are mostly noise: only a learned embedding finds the classes.
    """
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), per_class)
    means = np.zeros((n_classes, n_features))
    means[:, :n_relevant] = rng.normal(size=(n_classes, n_relevant))
    scale = np.full(n_features, 2.0)
    scale[:n_relevant] = 0.2
    rotation = np.linalg.qr(rng.normal(size=(n_features, n_features)))[0]
    X = (means[y] + rng.normal(size=(len(y), n_features)) * scale) @ rotation
    return X.astype(np.float32), y


def nearest_neighbour_accuracy(tasks):
    nearest = torch.cdist(tasks.query_x, tasks.support_x).argmin(-1)
    return float((tasks.support_y.gather(1, nearest) == tasks.query_y).float().mean())
