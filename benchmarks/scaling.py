"""Meta-training throughput, in tasks per second, on one process and on several.

Every configuration meta-trains the same learner on the same episodes with
:func:`~autometa.meta.meta_train`: Omniglot-shaped random images (28x28,
50 classes of 10), 5-way 1-shot episodes with 5 queries per class, Conv4 with
``--hidden`` filters. The rows are

``1 process``
    the plain single-process path (no process group), ``--threads`` threads;
``1 process, N threads`` (CPU only)
    the same with as many intra-op threads as the largest distributed row
    uses cores in all: the alternative to more processes on one CPU machine;
``W processes``
    ``meta_train(distributed=True)`` on ``W`` ranks (gloo on CPU, NCCL with
    one GPU each on CUDA), each with ``--threads`` threads, launched as
    ``torchrun`` would (the same environment variables, a free loopback port).

A row runs ``--warmup`` steps, then ``--repeats`` consecutive timed segments
of ``--steps`` meta-steps each (in one launch), timed on rank 0 (the ranks
step together). Throughput is ``meta_batch * steps / seconds`` per segment,
reported as the mean with a 95% confidence interval (Student's t over the
segments), as a ratio to the ``1 process`` row of the same run, and as that
ratio per core (CPU threads) or per GPU used: the parallel efficiency.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path

import torch

from autometa._common import describe, mean_ci

ALGORITHMS = ("maml", "fomaml", "reptile", "protonet", "matching")


def run(algorithm: str = "maml", processes=(1, 2), device: str = "cpu", meta_batch: int = 16, hidden: int = 32,
        steps: int = 5, repeats: int = 5, warmup: int = 2, threads: int = 1, seed: int = 0) -> dict:
    """Time every configuration; print a table; return ``{row name: numbers}``."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if not processes or min(processes) < 1:
        raise ValueError(f"processes must be positive numbers, got {processes}")
    if min(steps, repeats, threads, meta_batch, warmup) < 1:
        # the first step holds one-time costs (and the clock starts at its end)
        raise ValueError("steps, repeats, threads, meta_batch and warmup must be at least 1")
    if max(processes) > meta_batch:
        raise ValueError(f"{max(processes)} processes need a meta-batch of at least as many tasks, got {meta_batch}")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda: CUDA is not available on this machine")
        if max(processes) > torch.cuda.device_count():
            raise ValueError(f"{max(processes)} processes need as many GPUs; this machine has "
                             f"{torch.cuda.device_count()}")
    print(f"meta-training throughput: {algorithm}, Conv4-{hidden} on random 28x28 images, 5-way 1-shot, "
          f"5 queries per class, meta-batch {meta_batch}; {warmup} warm-up steps, then {repeats} segments "
          f"of {steps} steps; mean tasks/s with 95% CI (t over segments)")
    print(f"machine: {describe(device if device == 'cpu' else 'cuda:0')}; device {device}; "
          f"{threads} torch thread(s) per process; seed {seed}")
    plan = [("1 process", 1, threads, False)]
    if device == "cpu" and max(processes) * threads > threads:
        plan.append((f"1 process, {max(processes) * threads} threads", 1, max(processes) * threads, False))
    backend = "gloo" if device == "cpu" else "nccl"
    plan += [(f"{w} process{'es' if w > 1 else ''} ({backend})", w, threads, True) for w in processes]
    rows = {}
    print(f"\n  {'':26}{'tasks/s':>10}{'95% CI':>12}{'vs 1 process':>14}{'efficiency':>12}")
    for name, world, row_threads, distributed in plan:
        rates = _launch(algorithm, world, device, meta_batch, hidden, steps, repeats, warmup, row_threads,
                        distributed, seed)
        mean, half = mean_ci(rates)
        rows[name] = {"processes": world, "threads": row_threads, "distributed": distributed,
                      "tasks_per_s": mean, "ci95": half, "segments": rates}
        ratio = mean / rows["1 process"]["tasks_per_s"]
        # the speed-up per core (CPU) or GPU used, relative to the first row's
        efficiency = ratio / (world * row_threads / threads if device == "cpu" else world)
        print(f"  {name:26}{mean:>10.1f}{'+- ' + format(half, '.1f'):>12}{ratio:>13.2f}x"
              f"{efficiency:>11.2f}", flush=True)
    return rows


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(algorithm, world, device, meta_batch, hidden, steps, repeats, warmup, threads, distributed,
            seed) -> list[float]:
    """Run one row in ``world`` fresh processes; the tasks/s of each timed segment."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rates.json"
        config = dict(algorithm=algorithm, world=world, device=device, meta_batch=meta_batch, hidden=hidden,
                      steps=steps, repeats=repeats, warmup=warmup, threads=threads, distributed=distributed,
                      seed=seed, port=_free_port(), out=str(out))
        mp.start_processes(_worker, args=(config,), nprocs=world, join=True, start_method="spawn")
        return json.loads(out.read_text())


def _learner(algorithm: str, hidden: int):
    from autometa.meta import MAML, MatchingNet, ProtoNet, Reptile

    classifier = {"name": "conv4", "hidden": hidden, "out_features": 5}
    embedding = {"name": "conv4", "hidden": hidden}
    if algorithm in ("maml", "fomaml"):
        return MAML(classifier, inner_lr=0.4, inner_steps=1, first_order=algorithm == "fomaml")
    if algorithm == "reptile":
        return Reptile(classifier, inner_lr=1e-3, inner_steps=5)
    return ProtoNet(embedding) if algorithm == "protonet" else MatchingNet(embedding)


def _worker(rank: int, config: dict) -> None:
    """One rank of a row (a top-level function: spawned processes import it)."""
    from autometa.meta import distributed, meta_train
    from autometa.tasks import EpisodeSampler

    torch.set_num_threads(config["threads"])
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(config["port"]), RANK=str(rank),
                      WORLD_SIZE=str(config["world"]), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(config["world"]))
    device = "cuda:0" if config["device"] == "cuda" and not config["distributed"] else config["device"]
    with distributed.session(device, enabled=config["distributed"]) as ctx:
        generator = torch.Generator().manual_seed(config["seed"])
        images = torch.rand(500, 1, 28, 28, generator=generator).to(ctx.device)
        tasks = EpisodeSampler(images, torch.arange(50).repeat_interleave(10), n_way=5, k_shot=1, n_query=5,
                               random_state=config["seed"])
        torch.manual_seed(config["seed"])
        learner = _learner(config["algorithm"], config["hidden"]).to(ctx.device)
        stamps = []

        def clock(state) -> None:
            if ctx.device.startswith("cuda"):
                torch.cuda.synchronize(ctx.device)
            stamps.append(time.perf_counter())

        total = config["warmup"] + config["steps"] * config["repeats"]
        optimizer = torch.optim.SGD(learner.parameters(), lr=1.0) if config["algorithm"] == "reptile" else None
        meta_train(learner, tasks, steps=total, meta_batch=config["meta_batch"], optimizer=optimizer,
                   callbacks=[clock], distributed=config["distributed"])
        if ctx.is_main:
            steps, first = config["steps"], config["warmup"] - 1  # stamps[k]: the end of step k + 1
            rates = [config["meta_batch"] * steps / (stamps[first + (i + 1) * steps] - stamps[first + i * steps])
                     for i in range(config["repeats"])]
            Path(config["out"]).write_text(json.dumps(rates))
