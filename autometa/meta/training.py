"""The outer loop shared by every meta-learner, on one process or several
(:mod:`autometa.meta.distributed`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from autometa.meta import distributed as dist_utils
from autometa.meta._checkpoint import load_checkpoint, save_checkpoint
from autometa.meta.base import MetaLearner
from autometa.tasks.task import TaskBatch

Callback = Callable[["TrainState"], bool | None]


@dataclass
class TrainState:
    """What a callback sees after each meta-step."""

    learner: MetaLearner
    step: int
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)


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
        :mod:`autometa.meta.distributed`.

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
    main = True
    if distributed:
        rank, world = dist_utils.require_process_group(device)
        main = rank == 0
        positions = dist_utils.shard(meta_batch, rank, world)
        share = (positions.stop - positions.start) / meta_batch
    start = 0
    if checkpoint is not None and Path(checkpoint).exists():
        start = load_checkpoint(checkpoint, learner, optimizer, tasks)
    if distributed:
        # a rank that missed the checkpoint, or was given other settings, would
        # otherwise deadlock or silently train on something else
        dist_utils.check_agreement(
            [start, -1 if steps is None else steps, meta_batch],
            "the step resumed from, steps and meta_batch (is the checkpoint on a filesystem every "
            "rank reads?)", device,
        )
        dist_utils.broadcast_module(learner)
        # rank 0's clock drives the time budget and the schedule
        synchronise_control = bool(callbacks) or time_budget is not None
        elapsed = 0.0
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    learner.train()
    bar = tqdm(total=steps, initial=start, disable=None if verbose and main else True, desc=type(learner).__name__, unit="step")
    step = start
    while steps is None or step < steps:
        if not distributed:
            elapsed = time.perf_counter() - t0
        progress = step / steps if steps is not None else elapsed / time_budget
        if schedule == "cosine":
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        batch: TaskBatch = tasks.sample(meta_batch)
        if distributed:
            if step == start:
                dist_utils.check_agreement([dist_utils.batch_fingerprint(batch)],
                                           "the meta-batch they drew (seed the task source alike on every rank)",
                                           device)
            batch = batch[positions]
        optimizer.zero_grad(set_to_none=True)
        metrics = learner.meta_gradient(batch.to(device))
        if distributed:
            metrics = dist_utils.all_reduce_meta_gradient(learner, share, metrics)
        optimizer.step()
        step += 1
        history.append(metrics)
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in metrics.items()}, refresh=False)
        stop = False
        if main:
            state = TrainState(learner, step, metrics, history)
            stop = any([bool(cb(state)) for cb in callbacks])
            if checkpoint is not None and (step % checkpoint_every == 0):
                save_checkpoint(checkpoint, learner, optimizer, step, tasks)
        out_of_time = time_budget is not None and time.perf_counter() - t0 >= time_budget
        if distributed and synchronise_control:
            stop, elapsed = dist_utils.rank0_decision(stop or out_of_time, time.perf_counter() - t0, device)
            out_of_time = False
        if stop or out_of_time:
            break
    bar.close()
    if checkpoint is not None and main:
        save_checkpoint(checkpoint, learner, optimizer, step, tasks)
    if distributed and checkpoint is not None:
        dist_utils.barrier(device)  # returning means the checkpoint is on disk
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
