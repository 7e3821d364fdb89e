"""Meta-training on several processes with :mod:`torch.distributed`.

Launch one process per GPU (or a few per CPU machine) with ``torchrun``; each
calls :func:`~autometa.meta.meta_train` with ``distributed=True``::

    torchrun --standalone --nproc-per-node 2 train.py          # one machine
    torchrun --nnodes 4 --nproc-per-node 8 --rdzv-backend c10d \\
             --rdzv-endpoint HOST:29500 --rdzv-id job1 train.py  # on every node

where ``train.py`` holds::

    from autometa.meta import distributed, meta_train

    with distributed.session("cuda") as ctx:     # "cpu" uses gloo, "cuda" nccl
        learner = build_learner().to(ctx.device)  # ctx.device is cuda:LOCAL_RANK
        meta_train(learner, tasks, steps=10_000, meta_batch=32, distributed=True,
                   checkpoint="ckpt.pt", verbose=True)
        if ctx.is_main:
            learner.save("model.pt")

The result is the single-process run on the whole meta-batch, up to floating
point: the same tasks, the same meta-gradient, the same parameters.

Tasks
    Every rank draws the *whole* meta-batch from its task source (seeded
    alike on every rank) and keeps a contiguous slice of it,
    :func:`shard`: rank ``r`` of ``W`` takes positions
    ``shard(meta_batch, r, W)``. Ranks thus see exactly the tasks one process
    would have drawn, whatever ``W``, and the samplers' random state is the
    same on every rank (so any world size can resume a checkpoint). The cost:
    sampling (and augmentation) is not divided among ranks, each does all of
    it; autometa's samplers are vectorised and cheap next to a meta-step, but
    heavy per-task augmentation would be worth moving into the learner's
    slice. On the first step, :func:`meta_train` checks that all ranks drew
    the same meta-batch and raises otherwise (different seeds per rank).
Meta-gradient
    Each rank computes :meth:`~autometa.meta.MetaLearner.meta_gradient` of its
    slice, a mean over its ``n_r`` tasks; :func:`all_reduce_meta_gradient`
    sums ``(n_r / meta_batch) * grad_r`` over ranks, the mean over all
    ``meta_batch`` tasks, so ``W`` need not divide the meta-batch (it must
    not exceed it). Every learner's meta-gradient is such a mean: the
    gradient of the mean query loss (MAML, first and second order, ProtoNet,
    Matching Networks; their losses average over equally many queries per
    task), and Reptile's pseudo-gradient ``theta - mean_i phi_i`` (the
    weighted sum gives ``theta`` minus the mean over all tasks). The training
    metrics are averaged the same way, so rank 0's history is the
    single-process one. Every rank then takes the same optimiser step and
    the parameters stay identical (rank 0's are broadcast once at the start).
Why an explicit all-reduce, not ``DistributedDataParallel``
    DDP averages gradients from autograd hooks fired by ``backward`` through
    the wrapped module's ``forward``. The learners here call their network
    functionally (:func:`torch.func.functional_call` with adapted
    parameters), differentiate inner loops with :func:`torch.autograd.grad`,
    and Reptile writes its pseudo-gradient into ``.grad`` with no backward
    pass at all: DDP would see none of it. One all-reduce of one flat tensor
    per step (gradients, batch-norm buffers and metrics together) works for
    every learner unchanged; it forgoes DDP's overlap of communication with
    the backward pass, which matters little for the small networks of
    meta-learning, whose step time is compute in the inner loops.
Batch normalisation
    MAML and Reptile normalise each task with its own batch statistics
    (:func:`~autometa.nn.use_batch_statistics`), so splitting the meta-batch
    changes nothing. ProtoNet and Matching Networks embed the whole
    meta-batch in one call, so in training their batch norm normalises over
    the rank's slice, not the whole meta-batch (as DDP without
    ``SyncBatchNorm``): equal to one process only when each rank holds one
    task or the backbone has no batch norm. Their running statistics are
    averaged over ranks after every step, weighted like the gradients, in the
    same all-reduce, so all ranks keep identical buffers and rank 0's
    checkpoint holds the average.
Rank 0
    Only rank 0 shows the progress bar, runs the callbacks (validation,
    early stopping) and writes the checkpoint; its decision to stop (a
    callback, or the time budget by its clock) is broadcast so every rank
    stops at the same step. After training, only rank 0's learner holds what
    callbacks restored (e.g. :meth:`Validation.restore_best`): save from
    rank 0. All of this, and the collectives above, is
    :class:`DistributedCoordinator`, the part of :func:`meta_train` that
    differs from one process.
Failure and resume
    A process group does not survive a dead rank: restart all ranks (by hand,
    or ``torchrun --max-restarts N``), and :func:`meta_train` resumes every
    one of them from the last checkpoint, which stores parameters, optimiser
    state, step and the random state of the task source, so the run goes on
    as if never interrupted. Every rank reads the checkpoint: put it on a
    filesystem they all see.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from autometa._common import resolve_device
from autometa.tasks.task import TaskBatch

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
LAUNCH_HINT = (
    "launch every process with torchrun, e.g. `torchrun --standalone --nproc-per-node 2 train.py`, "
    "and call autometa.meta.distributed.init_from_env() (or use distributed.session()) first"
)


@dataclass(frozen=True)
class Session:
    """Where this process stands in a distributed run (see :func:`session`)."""

    rank: int
    world_size: int
    local_rank: int
    device: str
    is_main: bool


# -- where am I -------------------------------------------------------------
def launched_with_torchrun() -> bool:
    """Whether the environment holds the variables ``torchrun`` sets for each process."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def is_initialized() -> bool:
    """Whether a default process group exists."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank, 0 without a process group."""
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    """The number of processes, 1 without a process group."""
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``), 0 when not launched by torchrun."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main_process() -> bool:
    """True on rank 0, and in a process that is not part of a distributed run."""
    return rank() == 0


def device_for_rank(device: str | torch.device = "auto") -> torch.device:
    """The device this process should train on.

    ``"cuda"`` (or ``"auto"`` where CUDA is available) is ``cuda:LOCAL_RANK``,
    one GPU per process; ``"cpu"`` is the CPU. An explicit ``"cuda:N"`` is
    kept only with one process per machine.
    """
    device = str(resolve_device(device))
    if device.startswith("cuda"):
        per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        if device != "cuda" and per_machine > 1:
            raise ValueError(
                f"device {device!r} with {per_machine} processes per machine: pass 'cuda' and each "
                f"process takes cuda:LOCAL_RANK"
            )
        if device == "cuda":
            if local_rank() >= torch.cuda.device_count():
                raise RuntimeError(
                    f"local rank {local_rank()} has no GPU: this machine has {torch.cuda.device_count()}; "
                    f"launch at most that many processes per node (--nproc-per-node)"
                )
            device = f"cuda:{local_rank()}"
    return torch.device(device)


# -- setting up and tearing down ---------------------------------------------
def init_from_env(device: str | torch.device = "auto", backend: str | None = None,
                  timeout: datetime.timedelta | None = None) -> torch.device:
    """Join the process group described by ``torchrun``'s environment variables.

    Parameters
    ----------
    device : str or torch.device, default="auto"
        As in :func:`device_for_rank`; sets the current CUDA device.
    backend : str, optional
        ``"nccl"`` for a CUDA device, ``"gloo"`` for the CPU by default.
    timeout : datetime.timedelta, optional
        How long a collective waits for a slow or dead rank (torch's default
        when None).

    Returns
    -------
    torch.device
        The device this process trains on. Calling again once the group
        exists only returns it.

    Raises
    ------
    RuntimeError
        When the process was not launched by ``torchrun`` (or with its
        variables set by hand).
    """
    device = device_for_rank(device)
    if is_initialized():
        return device
    if not launched_with_torchrun():
        missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
        raise RuntimeError(f"no torch.distributed environment (missing {', '.join(missing)}): {LAUNCH_HINT}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = backend or ("nccl" if device.type == "cuda" else "gloo")
    kwargs = {"timeout": timeout} if timeout is not None else {}
    dist.init_process_group(backend, **kwargs)
    return device


@contextmanager
def session(device: str | torch.device = "auto", backend: str | None = None,
            enabled: bool = True) -> Iterator[Session]:
    """Run the block as one rank of a ``torchrun`` launch.

    Joins the process group (:func:`init_from_env`) and leaves it at the end
    (if this call created it). The yielded :class:`Session` names the rank,
    the world size, the device this rank trains on and whether it is rank 0,
    the one that should print and save. With ``enabled=False`` it touches no
    process group and yields the single process's session on ``device``
    (``"auto"`` resolved), so one code path serves both kinds of run.

    Examples
    --------
    >>> from autometa.meta import distributed
    >>> with distributed.session("cpu") as ctx:  # doctest: +SKIP
    ...     meta_train(learner.to(ctx.device), tasks, distributed=True)
    ...     if ctx.is_main:
    ...         learner.save("model.pt")
    """
    if not enabled:
        yield Session(0, 1, 0, str(resolve_device(device)), True)
        return
    created = not is_initialized()
    resolved = init_from_env(device, backend)
    try:
        yield Session(rank(), world_size(), local_rank(), str(resolved), is_main_process())
    except BaseException:
        if created and is_initialized():
            dist.destroy_process_group()
        raise
    if created and is_initialized():
        # leave together: a rank that tears its group down while another still
        # works (rank 0 saving) can abort gloo's threads at exit
        dist.barrier()
        dist.destroy_process_group()


def require_process_group(device: torch.device) -> tuple[int, int]:
    """``(rank, world_size)`` of the process group, joining it when torchrun launched us.

    Raises
    ------
    RuntimeError
        Without a process group and without torchrun's variables.
    """
    if not is_initialized():
        if not launched_with_torchrun():
            raise RuntimeError(f"distributed=True but torch.distributed is not initialised: {LAUNCH_HINT}")
        init_from_env(device if device.type == "cpu" else "cuda")
    return dist.get_rank(), dist.get_world_size()


# -- the coordinator of meta_train -------------------------------------------
class DistributedCoordinator:
    """This rank's part in a distributed :func:`~autometa.meta.meta_train`.

    The torch.distributed counterpart of
    :class:`autometa.meta.training.SingleProcess`, with the same methods:
    it joins the process group, gives this rank its slice of every
    meta-batch, averages meta-gradients and metrics over the ranks, and
    makes every rank stop at rank 0's decision.

    Parameters
    ----------
    device : torch.device
        Where this rank trains.
    meta_batch : int
        Tasks per meta-step, over all ranks.
    synchronise_stop : bool
        Whether rank 0 may decide to stop early (callbacks, a time budget):
        only then does :meth:`decide` broadcast its decision and its clock.
    """

    def __init__(self, device: torch.device, meta_batch: int, synchronise_stop: bool):
        self.device = device
        self.rank, self.world_size = require_process_group(device)
        self.is_main = self.rank == 0
        self.positions = shard(meta_batch, self.rank, self.world_size)
        self.share = (self.positions.stop - self.positions.start) / meta_batch
        self.synchronise_stop = synchronise_stop

    def begin(self, learner: nn.Module, start: int, steps: int | None, meta_batch: int) -> None:
        """Check that the ranks agree on the run, and give them rank 0's parameters."""
        # a rank that missed the checkpoint, or was given other settings, would
        # otherwise deadlock or silently train on something else
        check_agreement(
            [start, -1 if steps is None else steps, meta_batch],
            "the step resumed from, steps and meta_batch (is the checkpoint on a filesystem every "
            "rank reads?)", self.device,
        )
        broadcast_module(learner)

    def my_tasks(self, batch: TaskBatch, first: bool) -> TaskBatch:
        """This rank's slice of the meta-batch every rank drew (checked alike on the ``first`` step)."""
        if first:
            check_agreement([batch_fingerprint(batch)],
                            "the meta-batch they drew (seed the task source alike on every rank)", self.device)
        return batch[self.positions]

    def average(self, learner: nn.Module, metrics: dict[str, float]) -> dict[str, float]:
        """The meta-gradient in ``learner``'s ``.grad``, and ``metrics``, averaged over all ranks."""
        return all_reduce_meta_gradient(learner, self.share, metrics)

    def decide(self, stop: bool, elapsed: float) -> tuple[bool, float]:
        """Rank 0's decision to stop, and its clock, on every rank."""
        if not self.synchronise_stop:
            return stop, elapsed
        return rank0_decision(stop, elapsed, self.device)

    def wait(self) -> None:
        """Return when every rank is here (rank 0's checkpoint is then on disk)."""
        barrier(self.device)


# -- splitting the meta-batch -------------------------------------------------
def shard(meta_batch: int, rank: int, world_size: int) -> slice:
    """The contiguous positions of a meta-batch that ``rank`` of ``world_size`` trains on.

    Sizes differ by at most one; the first ``meta_batch % world_size`` ranks
    take one task more.

    Examples
    --------
    >>> [shard(5, r, 2) for r in range(2)]
    [slice(0, 3, None), slice(3, 5, None)]
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in 0 .. {world_size - 1}, got {rank}")
    if meta_batch < world_size:
        raise ValueError(
            f"meta_batch={meta_batch} is smaller than the {world_size} processes: every rank needs at "
            f"least one task; raise meta_batch or launch fewer processes"
        )
    base, extra = divmod(meta_batch, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


# -- collectives ---------------------------------------------------------------
def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Give every rank ``src``'s parameters and buffers (in place)."""
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src)


def all_reduce_meta_gradient(learner: nn.Module, share: float, metrics: dict[str, float]) -> dict[str, float]:
    """Average the meta-gradient, floating-point buffers and metrics over ranks.

    Every rank contributes ``share * x`` (its fraction of the meta-batch) to
    one summing all-reduce of one flat tensor, so the result is the
    task-weighted mean. A parameter keeps ``grad=None`` only when it has no
    gradient on any rank.

    Parameters
    ----------
    learner : nn.Module
        Its ``.grad`` holds this rank's meta-gradient; on return, the mean
        over all ranks (the same on every rank).
    share : float
        This rank's tasks over the whole meta-batch, ``n_r / meta_batch``.
    metrics : dict of str to float
        This rank's training metrics (means over its tasks).

    Returns
    -------
    dict of str to float
        The metrics averaged over the whole meta-batch.
    """
    params = list(learner.parameters())
    buffers = [b for b in learner.buffers() if b.is_floating_point()]
    names = sorted(metrics)
    dtype = params[0].dtype
    for p in params[1:]:
        dtype = torch.promote_types(dtype, p.dtype)
    device = params[0].device
    pieces = [
        (p.grad.detach() if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(dtype) for p in params
    ]
    pieces += [b.detach().reshape(-1).to(dtype) for b in buffers]
    pieces.append(torch.tensor([metrics[k] for k in names], dtype=dtype, device=device))
    flat = torch.cat(pieces).mul_(share)
    # counts are not weighted: a parameter has a gradient if any rank gave it one
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=dtype, device=device)
    flat = torch.cat([flat, has_grad])
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.dtype)
        offset += n
    with torch.no_grad():
        for b in buffers:
            n = b.numel()
            b.copy_(flat[offset : offset + n].view_as(b))
            offset += n
    averaged = dict(zip(names, flat[offset : offset + len(names)].tolist()))
    for p, count in zip(params, flat[-len(params) :].tolist()):
        if count == 0:
            p.grad = None
    return averaged


def check_agreement(values: list[float], what: str, device: torch.device) -> None:
    """Raise on every rank when ranks hold different ``values``.

    ``what`` names the values in the error, e.g. ``"step, meta_batch"``.
    """
    local = torch.tensor(values, dtype=torch.float64, device=device)
    low, high = local.clone(), local.clone()
    dist.all_reduce(low, dist.ReduceOp.MIN)
    dist.all_reduce(high, dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise RuntimeError(
            f"the {world_size()} ranks disagree on {what}: from {low.tolist()} to {high.tolist()} "
            f"(this rank, {rank()}: {local.tolist()})"
        )


def batch_fingerprint(batch: TaskBatch) -> float:
    """A number that differs, in practice, between two different meta-batches."""
    total = 0.0
    for tensor in (batch.support_x, batch.support_y, batch.query_x, batch.query_y):
        flat = tensor.detach().reshape(-1).to("cpu", torch.float64)
        total += float((flat * (1 + torch.arange(len(flat), dtype=torch.float64) % 7)).sum())
    return total


def rank0_decision(stop: bool, elapsed: float, device: torch.device) -> tuple[bool, float]:
    """Rank 0's stop decision and clock, on every rank."""
    flags = torch.tensor([float(stop), elapsed], dtype=torch.float64, device=device)
    dist.broadcast(flags, 0)
    return bool(flags[0]), float(flags[1])


def barrier(device: torch.device) -> None:
    """Wait for every rank (``device`` picks the GPU that NCCL synchronises on)."""
    if device.type == "cuda":
        dist.barrier(device_ids=[device.index if device.index is not None else torch.cuda.current_device()])
    else:
        dist.barrier()
