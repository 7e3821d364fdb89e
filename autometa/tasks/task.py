"""The one currency of autometa: a batch of tasks, each a support and a query set."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass(frozen=True)
class TaskBatch:
    """A meta-batch of few-shot tasks as dense tensors.

    Every tensor has the task index as its leading dimension, so a batch of
    ``B`` tasks with ``S`` support and ``Q`` query examples of shape ``F`` is

    ``support_x``  ``(B, S, *F)``, ``support_y`` ``(B, S)``,
    ``query_x``    ``(B, Q, *F)``, ``query_y``   ``(B, Q)``.

    For classification the labels are episode labels ``0 .. n_way - 1``
    (``int64``); for regression they are ``float32`` targets and the trailing
    feature dimension of ``y`` is dropped. A single task is a batch of one.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    def __post_init__(self):
        sizes = {f.name: getattr(self, f.name).shape[0] for f in fields(self)}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"TaskBatch tensors disagree on the number of tasks: {sizes}")
        if self.support_x.shape[:2] != self.support_y.shape[:2]:
            raise ValueError(
                f"support_x {tuple(self.support_x.shape)} and support_y "
                f"{tuple(self.support_y.shape)} disagree on the support size"
            )
        if self.query_x.shape[:2] != self.query_y.shape[:2]:
            raise ValueError(
                f"query_x {tuple(self.query_x.shape)} and query_y "
                f"{tuple(self.query_y.shape)} disagree on the query size"
            )

    def __len__(self) -> int:
        return self.support_x.shape[0]

    def __getitem__(self, index) -> "TaskBatch":
        """Tasks ``index`` (an int keeps the batch dimension, of size one)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return TaskBatch(*(getattr(self, f.name)[index] for f in fields(self)))

    def to(self, device=None, dtype=None) -> "TaskBatch":
        """Move to ``device``; ``dtype`` converts the floating-point tensors only."""

        def move(t: torch.Tensor) -> torch.Tensor:
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return TaskBatch(*(move(getattr(self, f.name)) for f in fields(self)))

    @property
    def device(self) -> torch.device:
        return self.support_x.device
