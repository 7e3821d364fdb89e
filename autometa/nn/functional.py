"""Calling a network with explicit, per-task parameters.

Gradient-based meta-learners evaluate one network under many parameter sets
(one per task). There are three correct ways to do that, and this module holds
the pieces they need:

* a Python loop of :func:`torch.func.functional_call` (any module);
* :func:`torch.func.vmap` over tasks, on a copy of the module made by
  :func:`vmap_safe` (any module);
* :func:`task_batched_call`, which runs a whole batch of tasks as single
  grouped convolutions and batched matrix products, with plain autograd and
  no functorch transform (``nn.Sequential`` stacks of common layers, such as
  :func:`~autometa.nn.MLP` and :func:`~autometa.nn.Conv4`).

Why :func:`vmap_safe` exists: ``vmap`` of :func:`torch.func.grad` through
``torch.nn.functional.batch_norm`` in training mode gives a wrong
second-order gradient (pytorch/functorch#534; still so in torch 2.13). The
forward pass is right, so nothing fails loudly. Normalising with elementary
tensor operations instead gives the same function with correct derivatives
of every order, and under ``vmap`` each task is normalised with its own
statistics.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def use_batch_statistics(module: nn.Module) -> nn.Module:
    """Make every batch-norm layer of ``module`` normalise with batch statistics.

    Running statistics are dropped (in place), so the layer computes the same
    function in training and evaluation mode and a task's predictions depend
    on that task's examples only: the transductive setting of MAML. Returns
    ``module``.
    """
    for layer in module.modules():
        if isinstance(layer, _BatchNorm):
            layer.track_running_stats = False
            layer.running_mean = None
            layer.running_var = None
            layer.num_batches_tracked = None
    return module


class _ElementaryBatchNorm(nn.Module):
    """Batch normalisation from elementary ops; parameter names as in torch's."""

    def __init__(self, source: _BatchNorm):
        super().__init__()
        self.eps = source.eps
        self.weight = source.weight
        self.bias = source.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # statistics over every dimension but the channel one (dim 1)
        dims = [d for d in range(x.dim()) if d != 1]
        mean = x.mean(dim=dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
        out = (x - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            shape = [1, -1] + [1] * (x.dim() - 2)
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def vmap_safe(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose batch-norm layers are safe to ``vmap`` through.

    Every ``BatchNorm`` layer (which must already use batch statistics, see
    :func:`use_batch_statistics`) becomes an equivalent layer made of
    elementary operations. Parameter names are unchanged, so the copy accepts
    the same parameter dictionaries in :func:`torch.func.functional_call`.
    """
    twin = copy.deepcopy(module)
    for name, layer in list(twin.named_modules()):
        if isinstance(layer, _BatchNorm):
            if layer.track_running_stats:
                raise ValueError(
                    f"batch-norm layer {name!r} tracks running statistics; call "
                    "autometa.nn.use_batch_statistics(module) first"
                )
            parent_name, _, child = name.rpartition(".")
            parent = twin.get_submodule(parent_name) if parent_name else twin
            setattr(parent, child, _ElementaryBatchNorm(layer))
    return twin


_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.Dropout)
_SUPPORTED = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.MaxPool2d, nn.Flatten, *_ELEMENTWISE)


def supports_task_batching(module: nn.Module) -> bool:
    """Whether :func:`task_batched_call` can run ``module``."""
    if not isinstance(module, nn.Sequential):
        return False
    for layer in module:
        if not isinstance(layer, _SUPPORTED):
            return False
        if isinstance(layer, _BatchNorm) and layer.track_running_stats:
            return False
        if isinstance(layer, nn.Conv2d) and (layer.padding_mode != "zeros" or isinstance(layer.padding, str)):
            return False
        if isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) != (1, -1):
            return False
    return True


def task_batched_call(module: nn.Sequential, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Evaluate ``module`` for ``B`` tasks at once, each with its own parameters.

    Parameters
    ----------
    module : nn.Sequential
        A network for which :func:`supports_task_batching` is true; only its
        structure is used.
    params : dict of str to Tensor
        ``module``'s parameters by name, each with a leading task dimension
        ``B`` (e.g. ``p.expand(B, *p.shape)``).
    x : Tensor of shape (B, N, *features)

    Returns
    -------
    Tensor of shape (B, N, *out)
        Exactly ``torch.stack([functional_call(module, params_b, x_b) ...])``.

    Notes
    -----
    Images travel as ``(N, B * C, H, W)``: a convolution of all tasks is then
    one grouped convolution, and batch normalisation over ``B * C`` channels
    normalises each task with its own statistics, with torch's fused kernels
    and their exact double-backward.
    """
    n_tasks, n = x.shape[:2]
    image = x.dim() == 5  # (B, N, C, H, W) travels as (N, B*C, H, W)
    h = x.transpose(0, 1).reshape(n, n_tasks * x.shape[2], *x.shape[3:]) if image else x
    for index, layer in enumerate(module):
        p = {k.partition(".")[2]: v for k, v in params.items() if k.partition(".")[0] == str(index)}
        if isinstance(layer, nn.Conv2d):
            weight = p["weight"].reshape(-1, *p["weight"].shape[2:])
            bias = p["bias"].reshape(-1) if "bias" in p else None
            h = F.conv2d(h, weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups * n_tasks)
        elif isinstance(layer, _BatchNorm):
            weight = p["weight"].reshape(-1) if "weight" in p else None
            bias = p["bias"].reshape(-1) if "bias" in p else None
            if image:
                h = F.batch_norm(h, None, None, weight, bias, training=True, eps=layer.eps)
            else:  # (B, N, F) -> (N, B*F): one channel per task and feature
                flat = h.transpose(0, 1).reshape(n, -1)
                flat = F.batch_norm(flat, None, None, weight, bias, training=True, eps=layer.eps)
                h = flat.reshape(n, n_tasks, -1).transpose(0, 1)
        elif isinstance(layer, nn.Flatten):
            if image:
                h = h.reshape(n, n_tasks, -1).transpose(0, 1)
                image = False
            else:
                h = h.flatten(2)
        elif isinstance(layer, nn.Linear):
            if image:
                raise ValueError("task_batched_call: a Linear layer must follow a Flatten layer")
            h = torch.bmm(h, p["weight"].transpose(1, 2))
            if "bias" in p:
                h = h + p["bias"].unsqueeze(1)
        else:  # elementwise layers and pooling act on each channel alone
            h = layer(h)
    if image:
        h = h.reshape(n, n_tasks, -1, *h.shape[2:]).transpose(0, 1)
    return h
