"""The outer loop shared by every meta-learner, on one process or several.

:func:`meta_train` reads top to bottom: set the learning rate, draw a
meta-batch, accumulate its meta-gradient, step the optimiser, run the
callbacks, checkpoint, decide whether to stop. What differs between one
process and a ``torchrun`` launch sits behind a *coordinator*:
:class:`SingleProcess` here, or
:class:`~autometa.meta.distributed.DistributedCoordinator`, with the same
five methods (``begin``, ``my_tasks``, ``average``, ``decide``, ``wait``) and
an ``is_main`` flag for the one process that prints, validates and saves.
Checkpoints are :mod:`autometa.meta._checkpoint`'s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from autometa.meta._checkpoint import load_checkpoint, save_checkpoint
from autometa.meta.base import MetaLearner
from autometa.meta.distributed import DistributedCoordinator
from autometa.tasks.task import TaskBatch

Callback = Callable[["TrainState"], bool | None]


@dataclass
class TrainState:
    """What a callback sees after each meta-step."""

    learner: MetaLearner
    step: int
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)


class SingleProcess:
    """The coordinator of a run on one process: the main one, with nothing to share.

    :class:`~autometa.meta.distributed.DistributedCoordinator` is the
    counterpart for one rank of a ``torchrun`` launch.
    """

    is_main = True

    def begin(self, learner: MetaLearner, start: int, steps: int | None, meta_batch: int) -> None:
        """Prepare the run that starts at step ``start``."""

    def my_tasks(self, batch: TaskBatch, first: bool) -> TaskBatch:
        """The tasks of ``batch`` this process trains on: all of them."""
        return batch

    def average(self, learner: MetaLearner, metrics: dict[str, float]) -> dict[str, float]:
        """The meta-gradient and ``metrics`` over the whole meta-batch: already so."""
        return metrics

    def decide(self, stop: bool, elapsed: float) -> tuple[bool, float]:
        """Whether to stop, and the seconds elapsed the schedule goes by."""
        return stop, elapsed

    def wait(self) -> None:
        """Return when every process is done: at once."""


def meta_train(
    learner: MetaLearner,
    tasks,
    *,
    steps: int | None = 1000,
    time_budget: float | None = None,
    meta_batch: int = 16,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    schedule: str = "cosine",
    callbacks: Sequence[Callback] = (),
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 500,
    verbose: bool = False,
    distributed: bool = False,
) -> list[dict[str, float]]:
    """Meta-train ``learner`` on tasks drawn from ``tasks``.

    Parameters
    ----------
    learner : MetaLearner
    tasks : object with ``sample(meta_batch) -> TaskBatch``
        A task source such as :class:`~autometa.tasks.EpisodeSampler`.
    steps : int or None, default=1000
        Number of meta-steps. ``None`` runs until ``time_budget`` is spent.
    time_budget : float or None
        Stop after this many seconds (checked after each step).
    meta_batch : int, default=16
        Tasks per meta-step.
    lr : float, default=1e-3
        Learning rate of the default Adam optimiser.
    optimizer : torch.optim.Optimizer, optional
        Replaces the default ``Adam(learner.parameters(), lr)``.
    schedule : {"cosine", "constant"}, default="cosine"
        Cosine decay of the learning rate to zero over ``steps`` (or over the
        time budget when ``steps`` is None).
    callbacks : sequence of callables
        Each is called with a :class:`TrainState` after every step; one that
        returns True stops training (early stopping).
    checkpoint : path, optional
        Save learner and optimiser state here every ``checkpoint_every``
        steps and at the end; training resumes from it when it exists. The
        checkpoint also holds the step and the random state of the task
        source (its numpy ``Generator`` and ``torch.Generator`` attributes,
        looked up three objects deep: every autometa sampler) and of torch,
        so a resumed run draws the tasks an uninterrupted one would have.
        Each checkpoint is written once, whole and atomically: a crash while
        saving leaves the previous one.
    verbose : bool, default=False
        Show a progress bar (on a terminal; tqdm leaves it out of non-TTY logs).
    distributed : bool, default=False
        Train as one rank of a ``torchrun`` launch: every rank draws the
        whole meta-batch from ``tasks`` (seed it alike on every rank) and
        computes the meta-gradient of its slice; the meta-gradients are
        averaged across ranks, so the result is that of one process on the
        whole meta-batch. Only rank 0 shows progress, runs ``callbacks`` and
        writes ``checkpoint``. Joins the process group from torchrun's
        environment variables if it does not exist yet. See
        :mod:`autometa.meta.distributed` and its
        :class:`~autometa.meta.distributed.DistributedCoordinator`.

    Returns
    -------
    list of dict
        Training metrics per step (``loss``, ``accuracy`` for classifiers).
    """
    if steps is None and time_budget is None:
        raise ValueError("give steps, time_budget, or both")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    if meta_batch < 1:
        raise ValueError(f"meta_batch must be positive, got {meta_batch}")
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    optimizer = optimizer or torch.optim.Adam(learner.parameters(), lr=lr)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    device = learner.device
    run = (DistributedCoordinator(device, meta_batch, synchronise_stop=bool(callbacks) or time_budget is not None)
           if distributed else SingleProcess())
    start = 0
    if checkpoint is not None and Path(checkpoint).exists():
        start = load_checkpoint(checkpoint, learner, optimizer, tasks)
    run.begin(learner, start, steps, meta_batch)

    history: list[dict[str, float]] = []
    learner.train()
    bar = tqdm(total=steps, initial=start, disable=None if verbose and run.is_main else True,
               desc=type(learner).__name__, unit="step")
    t0, elapsed = time.perf_counter(), 0.0
    step = start
    while steps is None or step < steps:
        if schedule == "cosine":
            progress = step / steps if steps is not None else elapsed / time_budget
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        batch = run.my_tasks(tasks.sample(meta_batch), first=step == start)
        optimizer.zero_grad(set_to_none=True)
        metrics = run.average(learner, learner.meta_gradient(batch.to(device)))
        optimizer.step()
        step += 1
        history.append(metrics)
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in metrics.items()}, refresh=False)

        stop = False
        if run.is_main:
            state = TrainState(learner, step, metrics, history)
            stop = any([bool(callback(state)) for callback in callbacks])  # a list: every callback runs
            if checkpoint is not None and step % checkpoint_every == 0:
                save_checkpoint(checkpoint, learner, optimizer, step, tasks)
        elapsed = time.perf_counter() - t0
        stop, elapsed = run.decide(stop or (time_budget is not None and elapsed >= time_budget), elapsed)
        if stop:
            break
    bar.close()
    if checkpoint is not None:
        if run.is_main:
            save_checkpoint(checkpoint, learner, optimizer, step, tasks)
        run.wait()  # returning means the checkpoint is on disk
    return history


class Validation:
    """Model selection and early stopping on held-out tasks.

    Every ``every`` steps, evaluate on ``n_tasks`` tasks from ``tasks`` (the
    same tasks each time: they are drawn once); keep a copy of the best
    parameters by ``metric``; stop when it has not improved for ``patience``
    evaluations. Call :meth:`restore_best` after training.
    """

    def __init__(self, tasks, every: int = 100, n_tasks: int = 64, metric: str = "accuracy",
                 patience: int | None = None):
        self.tasks = tasks.sample(n_tasks)
        self.every = every
        self.metric = metric
        self.patience = patience
        self.best_score = -math.inf
        self.best_step = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.scores: list[tuple[int, float]] = []
        self._stale = 0

    def __call__(self, state: TrainState) -> bool:
        if state.step % self.every:
            return False
        state.learner.eval()
        metrics = state.learner.evaluate(self.tasks.to(state.learner.device))
        state.learner.train()
        # higher is better: accuracy as is, losses negated
        score = metrics[self.metric] if self.metric == "accuracy" else -metrics[self.metric]
        self.scores.append((state.step, metrics[self.metric]))
        if score > self.best_score:
            self.best_score, self.best_step, self._stale = score, state.step, 0
            self.best_state = {k: v.detach().clone() for k, v in state.learner.state_dict().items()}
        else:
            self._stale += 1
        return self.patience is not None and self._stale >= self.patience

    def restore_best(self, learner: MetaLearner) -> None:
        if self.best_state is not None:
            learner.load_state_dict(self.best_state)
