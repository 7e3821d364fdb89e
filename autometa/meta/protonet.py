"""Prototypical Networks: classify a query by its distances to the class means of the support set."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from autometa.meta import registry
from autometa.meta._metric import embed_sets, one_hot_support
from autometa.meta.base import MetaLearner, Predictor, evaluation_mode
from autometa.tasks.task import TaskBatch

DISTANCES = ("squared_euclidean", "cosine")
LOSSES = ("prototypes", "nca")


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
    loss : {"prototypes", "nca"}, default="prototypes"
        The meta-training loss. ``"prototypes"``: the paper's, cross-entropy
        of the queries against the support set's prototypes. ``"nca"``: every
        example of a task, support and query alike, against all the others
        (Neighbourhood Component Analysis, as Laenen & Bertinetto, NeurIPS
        2021, "On Episodes, Prototypical Networks, and Few-Shot Learning"):
        minus the log of the softmax mass, over the task's other examples, on
        those of its own class. It uses every pair of a task rather than
        queries against means. Both losses are classified by prototypes
        after training (:meth:`adapt`).

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
    channels_last = True  # one backbone call embeds a whole set: see MetaLearner
    mixed_precision = True

    def __init__(self, backbone: nn.Module | dict, distance: str = "squared_euclidean", loss: str = "prototypes"):
        super().__init__(backbone, distance=distance, loss=loss)
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.distance = distance
        self.loss = loss

    @classmethod
    def ensemble(cls, members: Sequence["ProtoNet"]) -> "ProtoNet":
        """One ProtoNet made of several trained ones: its embedding is the members' embeddings side by side
        (a ``"concat"`` backbone holding a copy of each member's).

        With squared Euclidean distances the ensemble's logits are the sum of the members' logits, so its class
        probabilities are the product of theirs, renormalised. It saves, loads and adapts as any ProtoNet;
        trained further, it uses the first member's loss. The members are left unchanged.

        Raises
        ------
        ValueError
            For no members, a member that is not a ProtoNet with squared Euclidean distances, or one whose
            backbone is a user's module rather than a spec (the ensemble could not be saved).
        """
        members = list(members)
        if not members:
            raise ValueError("an ensemble needs at least one member")
        for i, member in enumerate(members):
            if not isinstance(member, ProtoNet) or member.distance != "squared_euclidean":
                raise ValueError(f"member {i}: an ensemble sums squared Euclidean logits; expected a ProtoNet with "
                                 f"distance='squared_euclidean', got {_describe(member)}")
            if member.config["backbone"] is None:
                raise ValueError(f"member {i}: its backbone is a module, not a spec; build it from a spec (e.g. "
                                 "{'name': 'conv4'}) so the ensemble can be saved")
        combined = cls({"name": "concat", "branches": [member.config["backbone"] for member in members]},
                       loss=members[0].loss)
        for branch, member in zip(combined.backbone.branches, members):
            branch.load_state_dict(member.backbone.state_dict())
        return combined.to(next(members[0].parameters(), torch.empty(0)).device)

    def query_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean meta-training loss (``self.loss``) and the queries' logits against the prototypes."""
        if self.loss == "nca":
            # support and query in one backbone call: every example is an anchor
            n_support = tasks.support_x.shape[1]
            embedded = embed_sets(self.backbone, torch.cat([tasks.support_x, tasks.query_x], 1),
                                  self._autocast_dtype())
            support, query = embedded[:, :n_support], embedded[:, n_support:]
            labels = torch.cat([tasks.support_y, tasks.query_y], 1)
            loss = nca_loss(self._logits(embedded, embedded), labels)
        else:
            dtype = self._autocast_dtype()
            support, query = (embed_sets(self.backbone, tasks.support_x, dtype),
                              embed_sets(self.backbone, tasks.query_x, dtype))
            loss = None
        logits = self._logits(query, class_prototypes(support, tasks.support_y))
        return (self._loss(logits, tasks.query_y) if loss is None else loss), logits

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


def _describe(member) -> str:
    if isinstance(member, ProtoNet):
        return f"a ProtoNet with distance={member.distance!r}"
    return type(member).__name__


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


def nca_loss(similarities: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The mean NCA loss of ``(B, M, M)`` pairwise similarities of the ``(B, M)``
    labelled examples of ``B`` tasks: for each example, minus the log of the
    softmax mass (over the other examples of its task) on those of its class.

    Raises
    ------
    ValueError
        If an example is the only one of its class in its task (nothing to
        be near).
    """
    same = labels[:, :, None] == labels[:, None, :]
    itself = torch.eye(labels.shape[1], dtype=torch.bool, device=labels.device)
    same = same & ~itself
    if not same.any(-1).all():
        raise ValueError("the NCA loss needs at least two examples of every class in a task")
    others = similarities.masked_fill(itself, float("-inf"))
    positives = others.masked_fill(~same, float("-inf"))
    return (others.logsumexp(-1) - positives.logsumexp(-1)).mean()


def squared_distances(query: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """``(B, Q, N)`` squared Euclidean distances of ``(B, Q, D)`` queries to ``(B, N, D)`` prototypes."""
    # |q|^2 - 2 q.p + |p|^2: a matrix product, never a (B, Q, N, D) difference tensor
    cross = query @ prototypes.transpose(1, 2)
    return query.pow(2).sum(-1, keepdim=True) - 2 * cross + prototypes.pow(2).sum(-1)[:, None, :]


registry.register("protonet", ProtoNet)
