"""What the metric-based learners (:mod:`~autometa.meta.protonet`,
:mod:`~autometa.meta.matching`) share: embedding the sets of a meta-batch in
one backbone call, and the one-hot support labels a task is classified by.

Tensors carry the meta-batch first: ``(B, S, ...)`` for the ``S`` examples
of each of ``B`` tasks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def embed_sets(backbone: nn.Module, x: torch.Tensor, autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Embed the sets ``x`` of shape ``(B, S, *features)`` in one backbone call.

    With ``autocast_dtype`` (e.g. ``torch.bfloat16``) the backbone runs under
    :func:`torch.autocast` in that precision and the embeddings come back in
    ``x``'s dtype, so the distances and losses computed from them keep full
    precision.

    Returns the flat embeddings, ``(B, S, D)``.
    """
    flat = x.flatten(0, 1)
    if autocast_dtype is None:
        embedded = backbone(flat)
    else:
        with torch.autocast(flat.device.type, dtype=autocast_dtype):
            embedded = backbone(flat)
        embedded = embedded.to(x.dtype)
    return embedded.reshape(*x.shape[:2], -1)


def one_hot_support(support_y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The ``(B, S, n_way)`` one-hot support labels, ``n_way = max(support_y) + 1``.

    Raises
    ------
    ValueError
        If some task lacks one of the labels ``0 .. n_way - 1``: its class
        would have no support example to be represented by.
    """
    one_hot = F.one_hot(support_y.long(), int(support_y.max()) + 1).to(dtype)
    missing = one_hot.sum(1) == 0
    if missing.any():
        task, label = (int(i) for i in missing.nonzero()[0])
        raise ValueError(
            f"support labels must be 0 .. n_way - 1, each at least once; task {task} "
            f"has no example of label {label}"
        )
    return one_hot
