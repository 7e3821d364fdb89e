"""Prototypical Networks: classify a query by its distances to the class means of the support set."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autometa.meta import registry
from autometa.meta._metric import embed_sets, one_hot_support
from autometa.meta.base import MetaLearner, Predictor, evaluation_mode
from autometa.tasks.task import TaskBatch

DISTANCES = ("squared_euclidean", "cosine")


class ProtoNet(MetaLearner):
    """Prototypical Networks (Snell, Swersky & Zemel, NeurIPS 2017).

    A class is represented by its prototype, the mean embedding of its
    support examples; a query is classified by a softmax over its negative
    distances to the prototypes. Meta-training learns the embedding so that
    this nearest-prototype rule works on new classes.

    Parameters
    ----------
    backbone : nn.Module or dict
        The embedding network, or a backbone spec such as
        ``{"name": "conv4"}`` (no ``out_features``: the flat embedding).
        Batch-norm layers use batch statistics in training and running
        statistics in evaluation (``learner.eval()``), as in the authors'
        code, so a query's prediction depends on that query alone.
    distance : {"squared_euclidean", "cosine"}, default="squared_euclidean"
        Logits are minus the squared Euclidean distance (the paper's choice,
        a linear model in the embedding), or the cosine similarity, which the
        paper found to train worse.

    Notes
    -----
    Support and query sets are embedded in separate backbone calls, each
    covering all tasks of a meta-batch, so the prototypes can be computed
    once per task in :meth:`adapt`.

    Examples
    --------
    >>> import torch
    >>> from autometa.meta import ProtoNet
    >>> from autometa.tasks import EpisodeSampler
    >>> X, y = torch.randn(100, 8), torch.arange(10).repeat_interleave(10)
    >>> tasks = EpisodeSampler(X, y, n_way=5, k_shot=1, n_query=3, random_state=0).sample(4)
    >>> protonet = ProtoNet({"name": "mlp", "in_features": 8, "out_features": None})
    >>> metrics = protonet.meta_gradient(tasks)  # fills .grad of protonet's parameters
    >>> predict = protonet.adapt(tasks.support_x[0], tasks.support_y[0])
    >>> predict(tasks.query_x[0]).shape
    torch.Size([15, 5])
    """

    task_type = "classification"

    def __init__(self, backbone: nn.Module | dict, distance: str = "squared_euclidean"):
        super().__init__(backbone, distance=distance)
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        self.distance = distance

    def query_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        prototypes = class_prototypes(embed_sets(self.backbone, tasks.support_x), tasks.support_y)
        logits = self._logits(embed_sets(self.backbone, tasks.query_x), prototypes)
        return self._loss(logits, tasks.query_y), logits

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> Predictor:
        """Compute the prototypes of one task's support set (once).

        Parameters
        ----------
        support_x : Tensor of shape (S, *features)
        support_y : Tensor of shape (S,)
            Labels ``0 .. n_way - 1``, each at least once; any number of
            ways and shots.

        Returns
        -------
        callable
            Maps query inputs ``(Q, *features)`` to logits ``(Q, n_way)``.
        """
        with torch.no_grad(), evaluation_mode(self):
            prototypes = class_prototypes(embed_sets(self.backbone, support_x[None]), support_y[None])

        def predict(query_x: torch.Tensor) -> torch.Tensor:
            with evaluation_mode(self):
                return self._logits(embed_sets(self.backbone, query_x[None]), prototypes)[0]

        return predict

    def _logits(self, query: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        if self.distance == "cosine":
            return F.normalize(query, dim=-1) @ F.normalize(prototypes, dim=-1).transpose(1, 2)
        return -squared_distances(query, prototypes)


def class_prototypes(support: torch.Tensor, support_y: torch.Tensor) -> torch.Tensor:
    """Per-class mean embeddings.

    Parameters
    ----------
    support : Tensor of shape (B, S, D)
        Support embeddings.
    support_y : Tensor of shape (B, S)
        Labels ``0 .. n_way - 1``, each present in every task.

    Returns
    -------
    Tensor of shape (B, n_way, D)
    """
    one_hot = one_hot_support(support_y, support.dtype)
    sums = one_hot.transpose(1, 2) @ support
    return sums / one_hot.sum(1)[..., None]


def squared_distances(query: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """``(B, Q, N)`` squared Euclidean distances of ``(B, Q, D)`` queries to ``(B, N, D)`` prototypes."""
    # |q|^2 - 2 q.p + |p|^2: a matrix product, never a (B, Q, N, D) difference tensor
    cross = query @ prototypes.transpose(1, 2)
    return query.pow(2).sum(-1, keepdim=True) - 2 * cross + prototypes.pow(2).sum(-1)[:, None, :]


registry.register("protonet", ProtoNet)
