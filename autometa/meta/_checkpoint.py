"""Checkpoints of :func:`~autometa.meta.meta_train`: one file from which a run
goes on as if never interrupted.

A checkpoint is the learner's archive (:meth:`MetaLearner.payload`, so
:meth:`MetaLearner.load` reads it as a model) with the training state beside
it:

``optimizer``
    the outer optimiser's ``state_dict``;
``step``
    the meta-steps taken;
``random_state``
    the state of every random generator the run draws from: the numpy
    ``Generator`` and ``torch.Generator`` attributes of the task source,
    looked up three objects deep (every autometa sampler, and wrappers such
    as the Omniglot recipe's augmentation), torch's global generator, and
    CUDA's on a GPU. Stored as plain data, readable with
    ``torch.load(weights_only=True)``.

Each checkpoint is written once, whole, with
:func:`~autometa._common.atomic_torch_save`: a crash while saving leaves the
previous checkpoint as it was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from types import ModuleType

import numpy as np
import torch
from torch import nn

from autometa._common import atomic_torch_save
from autometa.meta.base import MetaLearner, read_model_payload


def save_checkpoint(path: str | os.PathLike, learner: MetaLearner, optimizer: torch.optim.Optimizer, step: int,
                    tasks) -> None:
    """Write the checkpoint of ``learner`` after ``step`` meta-steps to ``path``, atomically."""
    payload = learner.payload()
    payload["optimizer"] = optimizer.state_dict()
    payload["step"] = step
    payload["random_state"] = random_state(tasks, learner.device)
    atomic_torch_save(payload, path)


def load_checkpoint(path: str | os.PathLike, learner: MetaLearner, optimizer: torch.optim.Optimizer, tasks) -> int:
    """Restore ``learner``, ``optimizer`` and the random generators from ``path``; the step it holds.

    A learner file saved by :meth:`MetaLearner.save` reads as the checkpoint
    of step 0: training starts from its weights.
    """
    payload = read_model_payload(path, map_location=learner.device)
    learner.load_state_dict(payload["state_dict"])
    if "optimizer" in payload:
        optimizer.load_state_dict(payload["optimizer"])
    if "random_state" in payload:
        set_random_state(payload["random_state"], tasks, learner.device)
    return int(payload.get("step", 0))


def random_generators(source, path: str = "tasks", depth: int = 3, seen=None) -> Iterator[tuple[str, object]]:
    """The numpy and torch random generators held by ``source``'s attributes, by attribute path."""
    seen = set() if seen is None else seen
    if id(source) in seen or not hasattr(source, "__dict__") or isinstance(source, (type, ModuleType, nn.Module, torch.Tensor)):
        return
    seen.add(id(source))
    for name, value in vars(source).items():
        if isinstance(value, (np.random.Generator, torch.Generator)):
            yield f"{path}.{name}", value
        elif depth > 1:
            yield from random_generators(value, f"{path}.{name}", depth - 1, seen)


def random_state(tasks, device: torch.device) -> dict:
    """What a resumed run needs to draw the same random numbers, as plain data."""
    numpy_states, torch_states = {}, {}
    for path, generator in random_generators(tasks):
        if isinstance(generator, np.random.Generator):
            numpy_states[path] = generator.bit_generator.state
        else:
            torch_states[path] = generator.get_state()
    state = {
        "tasks_numpy": json.dumps(numpy_states, default=lambda array: array.tolist()),
        "tasks_torch": torch_states,
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_random_state(state: dict, tasks, device: torch.device) -> None:
    """Put the generators of ``tasks``, torch and CUDA back in ``state`` (from :func:`random_state`)."""
    numpy_states = json.loads(state["tasks_numpy"])
    for path, generator in random_generators(tasks):
        if isinstance(generator, np.random.Generator) and path in numpy_states:
            generator.bit_generator.state = numpy_states[path]
        elif isinstance(generator, torch.Generator) and path in state["tasks_torch"]:
            generator.set_state(state["tasks_torch"][path].cpu())
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
