"""Standard few-shot backbones, built from plain torch layers.

Both are ``nn.Sequential`` stacks of ``Linear``, ``Conv2d``, ``BatchNorm``,
``ReLU``, ``MaxPool2d`` and ``Flatten``: the layer set that
:func:`autometa.nn.task_batched_call` runs for a whole batch of tasks at once.
Normalisation layers are torch's ``BatchNorm`` with running statistics, as
metric learners (Prototypical and Matching Networks) use them: batch
statistics in training, running ones in evaluation, so a prediction depends
on its own input only. Gradient-based learners switch them to batch
statistics in every mode, as Finn et al. (2017) do
(:func:`~autometa.nn.use_batch_statistics`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def MLP(
    in_features: int,
    out_features: int | None,
    hidden: Sequence[int] = (40, 40),
    norm: bool = False,
) -> nn.Sequential:
    """A ReLU multilayer perceptron.

    Parameters
    ----------
    in_features : int
        Width of the input.
    out_features : int or None
        Width of the output layer; ``None`` ends on the last hidden layer
        (an embedding for metric-based learners).
    hidden : sequence of int, default=(40, 40)
        Widths of the hidden layers; ``(40, 40)`` is the MAML paper's sinusoid
        network.
    norm : bool, default=False
        Batch normalisation after each hidden layer.

    Examples
    --------
    >>> from autometa.nn import MLP
    >>> MLP(1, 1)
    Sequential(
      (0): Linear(in_features=1, out_features=40, bias=True)
      (1): ReLU()
      (2): Linear(in_features=40, out_features=40, bias=True)
      (3): ReLU()
      (4): Linear(in_features=40, out_features=1, bias=True)
    )
    """
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers.append(nn.Linear(width, h))
        if norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(nn.ReLU())
        width = h
    if out_features is not None:
        layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def Conv4(
    out_features: int | None = None,
    in_channels: int = 1,
    hidden: int = 64,
    image_size: int = 28,
    norm: bool = True,
) -> nn.Sequential:
    """The four-block convolutional network of few-shot learning.

    Each block is a 3x3 convolution with ``hidden`` filters, batch
    normalisation, ReLU and 2x2 max-pooling (Vinyals et al. 2016; Finn et al.
    2017; Snell et al. 2017). On 28x28 images the output is ``hidden``
    features.

    Parameters
    ----------
    out_features : int or None, default=None
        Adds a linear classification head of this width (MAML, Reptile);
        ``None`` returns the flat embedding (Prototypical and Matching
        Networks).
    in_channels : int, default=1
    hidden : int, default=64
    image_size : int, default=28
        Side of the square input images, used to size the head.
    norm : bool, default=True
        Batch normalisation in each block.
    """
    layers: list[nn.Module] = []
    channels, side = in_channels, image_size
    for _ in range(4):
        layers.append(nn.Conv2d(channels, hidden, kernel_size=3, padding=1))
        if norm:
            layers.append(nn.BatchNorm2d(hidden))
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
        channels, side = hidden, side // 2
    if side < 1:
        raise ValueError(f"image_size={image_size} is too small for four 2x2 poolings; use at least 16")
    layers.append(nn.Flatten())
    if out_features is not None:
        layers.append(nn.Linear(hidden * side * side, out_features))
    return nn.Sequential(*layers)


class Concat(nn.Module):
    """The outputs of several branches on the same input, side by side on the last dimension."""

    def __init__(self, *branches: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=-1)


def SkipMLP(in_features: int, out_features: int, hidden: Sequence[int] = (64,)) -> Concat:
    """An embedding ``[x, MLP(x)]``: the input beside learned features.

    For metric learners on tabular data: nearest-prototype classification on
    this embedding keeps every distance the raw (standardised) features
    give, as 1-NN and nearest-centroid classifiers use them, and meta-learning
    adds features on top instead of replacing them. The MLP ends on a linear
    layer of ``out_features``; the embedding has ``in_features +
    out_features`` dimensions.
    """
    return Concat(nn.Identity(), MLP(in_features, out_features, hidden))


def _concat(branches: Sequence[dict]) -> Concat:
    """``{"name": "concat", "branches": [spec, ...]}``: the branches' outputs side by side."""
    if isinstance(branches, dict) or not isinstance(branches, Sequence) or not branches:
        raise ValueError(f"a concat backbone needs a non-empty list of branch specs, got {branches!r}")
    return Concat(*(build_backbone(branch) for branch in branches))


_BACKBONES = {"mlp": MLP, "conv4": Conv4, "skip_mlp": SkipMLP, "concat": _concat}


def build_backbone(spec: dict) -> nn.Module:
    """Build a backbone from a JSON-able spec such as ``{"name": "conv4", "out_features": 5}``.

    ``{"name": "concat", "branches": [spec, ...]}`` builds each branch and
    concatenates their outputs (:class:`Concat`), e.g. an ensemble of
    embeddings.

    Specs are how saved models record their architecture without pickling code.
    """
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in _BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(_BACKBONES)}")
    return _BACKBONES[name](**spec)
