"""Backbones and functional helpers for meta-learning in torch."""

from autometa.nn.backbones import MLP, Concat, Conv4, SkipMLP, build_backbone
from autometa.nn.functional import (
    supports_task_batching,
    task_batched_call,
    use_batch_statistics,
    vmap_safe,
)

__all__ = ["MLP", "Concat", "Conv4", "SkipMLP", "build_backbone", "supports_task_batching", "task_batched_call", "use_batch_statistics", "vmap_safe"]
