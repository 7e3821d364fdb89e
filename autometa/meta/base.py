"""What every meta-learner shares: the protocol, saving and loading.

A meta-learner is an ``nn.Module`` with three verbs:

``meta_gradient(tasks)``
    accumulate the meta-gradient of a :class:`~autometa.tasks.TaskBatch` into
    the parameters' ``.grad`` and return metrics (meta-training step);
``adapt(support_x, support_y)``
    return a predictor for one new task, fitted on its support set;
``evaluate(tasks)``
    adapt to each task of a batch and score it on its query set.

:func:`autometa.meta.meta_train` runs the outer loop for any of them.
:meth:`MetaLearner.save` writes a learner as plain data;
:meth:`MetaLearner.load` rebuilds it through :mod:`autometa.meta.registry`,
which knows every learner class by the name the file records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from autometa._common import PRETRAINED_PREFIX, atomic_torch_save, read_payload, shipped_file, shipped_names
from autometa.meta import registry
from autometa.nn import build_backbone, supports_task_batching
from autometa.tasks.task import TaskBatch

FORMAT = "autometa.meta"
FORMAT_VERSION = 1
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"

Predictor = Callable[[torch.Tensor], torch.Tensor]


class MetaLearner(nn.Module):
    """Base class of the few-shot learners in :mod:`autometa.meta`.

    Subclasses set ``self.config`` (JSON-able constructor arguments, with the
    backbone as a spec or ``None`` for a user module) and implement
    :meth:`query_loss`, :meth:`adapt` and, when the meta-gradient is not the
    gradient of the query loss (Reptile), :meth:`meta_gradient`.

    A subclass that sets ``channels_last`` keeps the convolution weights of a
    backbone it builds from a spec in channels-last memory format (a user's
    module is left as given). The values are the same; on CPU, oneDNN then
    runs the convolutions, batch norm and pooling on channels-last tensors,
    which pays for the large batches metric learners embed at once (see
    BENCHMARKS.md) but not for the few images per task of gradient-based
    learners.
    """

    task_type = "classification"  # or "regression"
    channels_last: ClassVar[bool] = False
    #: Whether the learner takes a :attr:`training_dtype` (the metric learners, whose backbone embeds whole sets).
    mixed_precision: ClassVar[bool] = False
    #: Constructor arguments added after files were saved, with the values those files were trained with:
    #: :meth:`load` uses them where a file's config lacks them.
    config_of_older_files: ClassVar[dict[str, Any]] = {}

    def __init__(self, backbone: nn.Module | dict, **config):
        super().__init__()
        if isinstance(backbone, dict):
            self.config = {"backbone": dict(backbone), **config}
            backbone = build_backbone(backbone)
            if self.channels_last:
                backbone = backbone.to(memory_format=torch.channels_last)  # only 4-d weights change
        elif isinstance(backbone, nn.Module):
            self.config = {"backbone": None, **config}
        else:
            raise TypeError(f"backbone must be an nn.Module or a spec dict, got {type(backbone).__name__}")
        self.backbone = backbone
        self.training_dtype = None

    @property
    def training_dtype(self) -> torch.dtype | None:
        """A lower precision (``torch.bfloat16``) the backbone computes in while the learner is in training
        mode, under :func:`torch.autocast`; ``None``: the parameters' dtype.

        Parameters, gradients, losses and every evaluation (``eval()`` mode,
        :meth:`adapt`) stay in full precision. A setting of the run, not saved
        with the learner. Only learners with :attr:`mixed_precision` (the
        metric learners) take one: ValueError for the others, TypeError for
        anything but a floating-point ``torch.dtype`` or None.
        """
        return self._training_dtype

    @training_dtype.setter
    def training_dtype(self, dtype: torch.dtype | None) -> None:
        if dtype is not None:
            if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
                raise TypeError(f"training_dtype must be a floating-point torch.dtype or None, got {dtype!r}")
            if not self.mixed_precision:
                raise ValueError(f"{type(self).__name__} trains in its parameters' dtype; a training_dtype is for "
                                 "the metric learners (ProtoNet, MatchingNet)")
        self._training_dtype = dtype

    # -- the protocol ---------------------------------------------------
    def query_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable mean query loss over the tasks, and the query outputs."""
        raise NotImplementedError

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> Predictor:
        """A function mapping query inputs of this task to outputs (logits)."""
        raise NotImplementedError

    def meta_gradient(self, tasks: TaskBatch) -> dict[str, float]:
        """Accumulate the meta-gradient into ``.grad``; return training metrics."""
        loss, outputs = self.query_loss(tasks)
        loss.backward()
        return self._metrics(loss, outputs, tasks.query_y)

    def evaluate(self, tasks: TaskBatch, **adapt_kwargs) -> dict[str, float]:
        """Adapt to each task's support set and score its query set.

        ``adapt_kwargs`` go to :meth:`adapt` (e.g. ``steps`` for MAML).
        """
        losses, outputs = [], []
        for i in range(len(tasks)):
            task = tasks[i]
            predictor = self.adapt(task.support_x[0], task.support_y[0], **adapt_kwargs)
            with torch.no_grad():
                out = predictor(task.query_x[0])
            losses.append(self._loss(out, task.query_y[0]))
            outputs.append(out)
        return self._metrics(torch.stack(losses).mean(), torch.stack(outputs), tasks.query_y)

    # -- shared helpers -------------------------------------------------
    def _autocast_dtype(self) -> torch.dtype | None:
        """The precision the backbone computes in now: :attr:`training_dtype` in training mode, else full."""
        return self.training_dtype if self.training else None

    def _loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.task_type == "classification":
            return nn.functional.cross_entropy(outputs.flatten(0, -2), targets.flatten())
        return nn.functional.mse_loss(outputs.squeeze(-1), targets)

    def _task_losses(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Each task's mean loss: outputs ``(B, N, ...)``, targets ``(B, N)`` -> ``(B,)``."""
        if self.task_type == "classification":
            return nn.functional.cross_entropy(outputs.transpose(1, 2), targets, reduction="none").mean(1)
        return ((outputs.squeeze(-1) - targets) ** 2).mean(1)

    def _metrics(self, loss: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        metrics = {"loss": float(loss.detach())}
        if self.task_type == "classification":
            metrics["accuracy"] = float((outputs.detach().argmax(-1) == targets).float().mean())
        return metrics

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- persistence ----------------------------------------------------
    def payload(self) -> dict:
        """The learner as plain data (tensors, strings, numbers): what :meth:`save` writes.

        The architecture is a JSON config, never pickled code. Add entries
        of plain data to store more beside the learner (as the checkpoints
        of :func:`~autometa.meta.meta_train` do); :meth:`load` ignores them.
        """
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "class": type(self).__name__,
            "config": json.dumps(self.config),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the learner to ``path`` atomically.

        The file is a ``torch.save`` archive of :meth:`payload`, readable
        with ``torch.load(weights_only=True)``.
        """
        atomic_torch_save(self.payload(), path)

    @classmethod
    def load(cls, path: str | os.PathLike, backbone: nn.Module | None = None, map_location="cpu") -> "MetaLearner":
        """Load a learner saved by :meth:`save`, or a shipped one as ``"pretrained:NAME"``
        (see :func:`available_pretrained`).

        ``backbone`` is required when the learner was built around a user
        module (its architecture cannot be stored as data); pass an instance
        of the same architecture.
        """
        if str(path).startswith(PRETRAINED_PREFIX):
            path = pretrained_path(str(path))
        payload = read_model_payload(path, map_location)
        try:
            learner_cls = registry.class_named(payload["class"])
        except KeyError:
            raise ValueError(f"{path} holds an unknown learner class {payload['class']!r}") from None
        if cls is not MetaLearner and not issubclass(learner_cls, cls):
            raise ValueError(f"{path} holds a {payload['class']}, not a {cls.__name__}")
        config = {**learner_cls.config_of_older_files, **json.loads(payload["config"])}
        spec = config.pop("backbone")
        if spec is None and backbone is None:
            raise ValueError(
                f"{path} was saved with a custom backbone module; pass an instance of "
                "the same architecture as load(path, backbone=...)"
            )
        learner = learner_cls(backbone if spec is None else spec, **config)
        try:
            learner.load_state_dict(payload["state_dict"])
        except RuntimeError as error:
            raise ValueError(f"{path}: the weights do not fit the architecture: {error}") from None
        return learner


@contextmanager
def evaluation_mode(module: nn.Module) -> Iterator[None]:
    """Run ``module`` in evaluation mode for the block, then restore its mode:
    adapting to a task is inference, and must not update batch-norm running
    statistics."""
    training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(training)


def resolve_strategy(strategy: str, backbone: nn.Module, device: torch.device, allowed: tuple[str, ...]) -> str:
    """The way a gradient-based learner processes a batch of tasks on ``device``.

    ``"auto"`` takes ``"batched"`` where :func:`~autometa.nn.supports_task_batching`
    holds (on CPU only without convolutions: grouped CPU convolution kernels
    are slow), else ``"vmap"`` on GPU when allowed, else ``"loop"``.
    """
    batchable = supports_task_batching(backbone)
    if strategy == "batched" and not batchable:
        others = "' or '".join(s for s in allowed if s not in ("auto", "batched"))
        raise ValueError(
            "strategy='batched' needs an nn.Sequential of Linear, Conv2d, BatchNorm, "
            f"pooling, Flatten and activation layers; use strategy='{others}'"
        )
    if strategy != "auto":
        return strategy
    if not batchable:
        return "vmap" if device.type != "cpu" and "vmap" in allowed else "loop"
    has_conv = any(isinstance(layer, nn.Conv2d) for layer in backbone.modules())
    return "loop" if device.type == "cpu" and has_conv else "batched"


def check_inner_loop(inner_lr, inner_steps, task_type: str, strategy: str, strategies: tuple[str, ...]) -> None:
    """Validate the hyperparameters that gradient-based learners share."""
    if isinstance(inner_lr, bool) or not isinstance(inner_lr, (int, float)) or not inner_lr > 0:
        raise ValueError(f"inner_lr must be a positive number, got {inner_lr!r}")
    if isinstance(inner_steps, bool) or not (isinstance(inner_steps, int) and inner_steps >= 1):
        raise ValueError(f"inner_steps must be a positive int, got {inner_steps!r}")
    if task_type not in ("classification", "regression"):
        raise ValueError(f"task_type must be 'classification' or 'regression', got {task_type!r}")
    if strategy not in strategies:
        raise ValueError(f"strategy must be one of {strategies}, got {strategy!r}")


def check_steps(steps) -> None:
    """``steps`` overriding the inner steps at adaptation time: None or an int >= 0."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")


def available_pretrained() -> list[str]:
    """Names of the few-shot learners shipped with the package (``MetaLearner.load("pretrained:NAME")``)."""
    return shipped_names(PRETRAINED_DIR)


def pretrained_path(name: str) -> Path:
    """The file of the shipped learner ``name`` (e.g. ``"omniglot-protonet"``); ValueError for an unknown name."""
    return shipped_file(PRETRAINED_DIR, name, "few-shot learner")


def read_model_payload(path: str | os.PathLike, map_location="cpu") -> dict:
    """The checked payload of a learner archive written by :meth:`MetaLearner.save`."""
    return read_payload(path, map_location, format=FORMAT, version=FORMAT_VERSION, kind="model",
                        how_to_make="save one with MetaLearner.save or `autometa fewshot train`")

