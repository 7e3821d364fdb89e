"""Matching Networks, with optional full-context embeddings and a learned temperature."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from autometa.meta import registry
from autometa.meta._metric import embed_sets, one_hot_support
from autometa.meta.base import MetaLearner, Predictor, evaluation_mode
from autometa.tasks.task import TaskBatch

#: The learned temperature's starting value.
LEARNED_TEMPERATURE_START = 0.1


class MatchingNet(MetaLearner):
    """Matching Networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, NeurIPS 2016).

    A query attends to the support examples by a softmax over the cosine
    similarities of their embeddings, divided by a temperature ``T``; its
    predicted class distribution is the attention-weighted vote of the
    support labels,
    ``P(y | x, S) = sum_i softmax_i(cos(f(x), g(x_i)) / T) onehot(y_i)``.

    The outputs are the log-probabilities ``log P(y | x, S)``. They are also
    logits of that same distribution (their softmax is ``P`` itself, as the
    probabilities sum to one), so the shared cross-entropy loss on them is
    exactly the paper's negative log-likelihood.

    Parameters
    ----------
    backbone : nn.Module or dict
        The embedding network ``f' = g'``, or a backbone spec such as
        ``{"name": "conv4"}``. As in :class:`~autometa.meta.ProtoNet`,
        batch norm uses running statistics in evaluation mode, and support
        and query sets are embedded in separate calls, so the support
        embeddings are computed once per task in :meth:`adapt`.
    fce : bool, default=False
        Full-context embeddings (the paper's appendix). The support embedding
        becomes ``g(x_i) = g'(x_i) + h_fwd_i + h_bwd_i``, with a bidirectional
        LSTM run over the support set in its given order (so predictions then
        depend on that order, as in the paper). The query embedding is the
        state ``h_K`` of an attention LSTM that reads the support set
        ``K`` times: ``r = sum_i softmax_i(h_{k-1} . g(x_i)) g(x_i)``,
        ``hhat_k, c_k = LSTM([f'(x), r], (h_{k-1}, c_{k-1}))``,
        ``h_k = hhat_k + f'(x)``, from ``h_0 = f'(x)``, ``c_0 = 0``. The
        paper's hidden state ``[h, r]`` is fed here as input ``[f'(x), r]``
        with hidden state ``h``: the gates see the same three vectors, and
        ``hhat`` keeps the embedding width so that the skip connection fits.
    lstm_steps : int or None, default=None
        ``K``, the attention LSTM's read steps; ``None`` reads once per
        support example (``K = n_way * k_shot``). A fixed ``K`` keeps the cost
        independent of the support size. Only used with ``fce=True``.
    embedding_dim : int, default=64
        Width ``D`` of the backbone's flat output (64 for ``conv4`` on 28x28
        images), which sizes both LSTMs (hidden size ``D``). Only used with
        ``fce=True``.
    temperature : float or "learn", default="learn"
        ``T`` above. Cosines lie in [-1, 1], so at the paper's ``T = 1`` the
        most similar support example gets at most ``e^2`` times the attention
        of the least similar one: the vote is nearly uniform and the loss
        gives the embedding little to learn from. A smaller ``T`` sharpens
        it (metric scaling: Oreshkin, Rodriguez & Lacoste, "TADAM",
        NeurIPS 2018). ``"learn"``: ``log(1 / T)`` is a parameter trained
        with the embedding, from ``T = 0.1``. A positive float fixes ``T``;
        ``1.0`` is the paper's attention.

    Examples
    --------
    >>> import torch
    >>> from autometa.meta import MatchingNet
    >>> from autometa.tasks import EpisodeSampler
    >>> X, y = torch.randn(100, 8), torch.arange(10).repeat_interleave(10)
    >>> tasks = EpisodeSampler(X, y, n_way=5, k_shot=1, n_query=3, random_state=0).sample(4)
    >>> backbone = {"name": "mlp", "in_features": 8, "out_features": None, "hidden": [32]}
    >>> matching = MatchingNet(backbone, fce=True, embedding_dim=32)
    >>> metrics = matching.meta_gradient(tasks)  # fills .grad of matching's parameters
    >>> predict = matching.adapt(tasks.support_x[0], tasks.support_y[0])
    >>> log_probs = predict(tasks.query_x[0])
    >>> log_probs.shape, bool(torch.allclose(log_probs.exp().sum(-1), torch.ones(15)))
    (torch.Size([15, 5]), True)
    """

    task_type = "classification"
    channels_last = True  # one backbone call embeds a whole set: see MetaLearner
    mixed_precision = True
    # files saved before ``temperature`` existed were trained at the paper's T = 1
    config_of_older_files: ClassVar[dict] = {"temperature": 1.0}

    def __init__(
        self,
        backbone: nn.Module | dict,
        fce: bool = False,
        lstm_steps: int | None = None,
        embedding_dim: int = 64,
        temperature: float | str = "learn",
    ):
        super().__init__(backbone, fce=fce, lstm_steps=lstm_steps, embedding_dim=embedding_dim,
                         temperature=temperature)
        if lstm_steps is not None and not (isinstance(lstm_steps, int) and lstm_steps >= 1):
            raise ValueError(f"lstm_steps must be a positive int or None, got {lstm_steps!r}")
        if not (isinstance(embedding_dim, int) and embedding_dim >= 1):
            raise ValueError(f"embedding_dim must be a positive int, got {embedding_dim!r}")
        learned = isinstance(temperature, str) and temperature == "learn"
        fixed = (isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
                 and math.isfinite(temperature) and temperature > 0)
        if not (learned or fixed):
            raise ValueError(f"temperature must be a positive number or 'learn', got {temperature!r}")
        self.temperature = temperature
        # log(1 / T): a parameter when learned
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / LEARNED_TEMPERATURE_START))) if learned else None
        self.fce = fce
        self.lstm_steps = lstm_steps
        self.embedding_dim = embedding_dim
        if fce:
            self.support_lstm = nn.LSTM(embedding_dim, embedding_dim, batch_first=True, bidirectional=True)
            self.query_lstm = nn.LSTMCell(2 * embedding_dim, embedding_dim)

    def query_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        support = self._support_embeddings(tasks.support_x)
        query = self._query_embeddings(tasks.query_x, support)
        log_probs = label_log_probs(query, support, one_hot_support(tasks.support_y, support.dtype), self.scale)
        return self._loss(log_probs, tasks.query_y), log_probs

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> Predictor:
        """Embed one task's support set (once).

        Parameters
        ----------
        support_x : Tensor of shape (S, *features)
        support_y : Tensor of shape (S,)
            Labels ``0 .. n_way - 1``, each at least once; any number of
            ways and shots.

        Returns
        -------
        callable
            Maps query inputs ``(Q, *features)`` to class log-probabilities
            ``(Q, n_way)``.
        """
        with torch.no_grad(), evaluation_mode(self):
            support = self._support_embeddings(support_x[None])
            one_hot = one_hot_support(support_y[None], support.dtype)

        def predict(query_x: torch.Tensor) -> torch.Tensor:
            with evaluation_mode(self):
                return label_log_probs(self._query_embeddings(query_x[None], support), support, one_hot,
                                       self.scale)[0]

        return predict

    @property
    def scale(self) -> torch.Tensor | float:
        """``1 / T``, the factor on the cosines (a tensor when learned)."""
        return self.log_scale.exp() if self.log_scale is not None else 1.0 / float(self.temperature)

    # -- embeddings g (support) and f (query) ------------------------------
    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        embeddings = embed_sets(self.backbone, x, self._autocast_dtype())
        if self.fce and embeddings.shape[-1] != self.embedding_dim:
            raise ValueError(
                f"the backbone embeds into {embeddings.shape[-1]} features but embedding_dim="
                f"{self.embedding_dim}; pass embedding_dim={embeddings.shape[-1]}"
            )
        return embeddings

    def _support_embeddings(self, support_x: torch.Tensor) -> torch.Tensor:
        embeddings = self._embed(support_x)
        if not self.fce:
            return embeddings
        forward, backward = self.support_lstm(embeddings)[0].chunk(2, dim=-1)
        return embeddings + forward + backward

    def _query_embeddings(self, query_x: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        embeddings = self._embed(query_x)
        if not self.fce:
            return embeddings
        steps = self.lstm_steps or support.shape[1]
        # LSTMCell takes a flat batch: every query of every task is one row
        flat = embeddings.reshape(-1, self.embedding_dim)
        h, c = flat, torch.zeros_like(flat)
        for _ in range(steps):
            attention = (h.view_as(embeddings) @ support.transpose(1, 2)).softmax(-1)
            read = (attention @ support).reshape_as(flat)
            h_hat, c = self.query_lstm(torch.cat([flat, read], dim=-1), (h, c))
            h = h_hat + flat
        return h.view_as(embeddings)


def _scaled_cosines(query: torch.Tensor, support: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    return scale * (F.normalize(query, dim=-1) @ F.normalize(support, dim=-1).transpose(1, 2))


def cosine_attention(query: torch.Tensor, support: torch.Tensor, scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Softmax over the support of the cosine similarities times ``scale`` (``1 / T``), ``(B, Q, S)``.

    ``query`` is ``(B, Q, D)``, ``support`` is ``(B, S, D)``.
    """
    return _scaled_cosines(query, support, scale).softmax(-1)


def label_log_probs(query: torch.Tensor, support: torch.Tensor, one_hot: torch.Tensor,
                    scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Log of the attention-weighted label vote, ``(B, Q, n_way)``.

    ``one_hot`` is the ``(B, S, n_way)`` one-hot support labels, each class
    present. The log of each class's share of the attention is a log-sum-exp
    over its support examples, so it stays finite however sharp the
    attention (at a small temperature the share of a distant class
    underflows to 0 in floating point).
    """
    log_attention = _scaled_cosines(query, support, scale).log_softmax(-1)
    labels = one_hot.argmax(-1)[:, None, :].expand_as(log_attention)  # (B, Q, S)
    shape = (*log_attention.shape[:2], one_hot.shape[-1])
    peak = torch.full(shape, -math.inf, dtype=log_attention.dtype, device=log_attention.device)
    peak = peak.scatter_reduce(2, labels, log_attention.detach(), "amax")
    # each example's attention relative to its class's largest, summed per class (a matmul: deterministic on GPU)
    shares = (log_attention - peak.gather(2, labels)).exp() @ one_hot
    return shares.log() + peak


registry.register("matching", MatchingNet)
