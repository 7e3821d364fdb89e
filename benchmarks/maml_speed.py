"""Seconds per MAML meta-step: autometa's strategies against ``higher`` and a
plain autograd loop, side by side in one run on one device.

The setting of the MAML paper's Omniglot experiments: 5-way 1-shot, 15
queries per class, Conv4 with 64 filters and batch normalisation, a
meta-batch of 32 tasks, one inner SGD step. Every contender computes the same
meta-gradient (checked against each other before timing).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from autometa._common import describe
from autometa.meta import MAML
from autometa.nn import Conv4, use_batch_statistics
from autometa.tasks.task import TaskBatch


def random_episodes(meta_batch=32, n_way=5, k_shot=1, n_query=15, image_size=28, device="cpu", seed=0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)

    def labels(per_class):
        return torch.arange(n_way).repeat_interleave(per_class).repeat(meta_batch, 1)

    tasks = TaskBatch(
        torch.rand(meta_batch, n_way * k_shot, 1, image_size, image_size, generator=g),
        labels(k_shot),
        torch.rand(meta_batch, n_way * n_query, 1, image_size, image_size, generator=g),
        labels(n_query),
    )
    return tasks.to(device)


def plain_loop_step(model, tasks: TaskBatch, inner_lr: float, first_order: bool) -> None:
    """The textbook implementation: one task at a time, torch.autograd.grad."""
    params = dict(model.named_parameters())
    total = 0.0
    for i in range(len(tasks)):
        loss = F.cross_entropy(functional_call(model, params, (tasks.support_x[i],)), tasks.support_y[i])
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
        adapted = {k: p - inner_lr * g for (k, p), g in zip(params.items(), grads)}
        total = total + F.cross_entropy(functional_call(model, adapted, (tasks.query_x[i],)), tasks.query_y[i])
    (total / len(tasks)).backward()


def higher_step(model, tasks: TaskBatch, inner_lr: float, first_order: bool) -> None:
    """The ``higher`` library's documented MAML loop."""
    import higher

    inner_opt = torch.optim.SGD(model.parameters(), lr=inner_lr)
    # first order: the inner gradient is a constant, higher's documented hook for it
    detach = (lambda grads: [g.detach() for g in grads]) if first_order else None
    for i in range(len(tasks)):
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
            diffopt.step(F.cross_entropy(fmodel(tasks.support_x[i]), tasks.support_y[i]), grad_callback=detach)
            query_loss = F.cross_entropy(fmodel(tasks.query_x[i]), tasks.query_y[i]) / len(tasks)
            query_loss.backward()


def _autometa_step(learner: MAML, tasks: TaskBatch) -> None:
    loss, _ = learner.query_loss(tasks)
    loss.backward()


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _time(step, device, repeats: int) -> tuple[list[float], float]:
    times = []
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if torch.device(device).type == "cuda" else float("nan")
    return times, peak


def contenders(device: str, first_order: bool, inner_lr: float, seed: int):
    """Name -> (model whose .grad the step fills, step function)."""
    torch.manual_seed(seed)
    reference = use_batch_statistics(Conv4(5)).to(device)
    found = {}
    for strategy in ("loop", "batched", "vmap"):
        learner = MAML(Conv4(5), inner_lr=inner_lr, inner_steps=1, first_order=first_order,
                       strategy=strategy).to(device)
        learner.backbone.load_state_dict(reference.state_dict())
        found[f"autometa {strategy}"] = (learner, lambda tasks, m=learner: _autometa_step(m, tasks))
    try:
        import higher  # noqa: F401

        model = use_batch_statistics(Conv4(5)).to(device)
        model.load_state_dict(reference.state_dict())
        found["higher"] = (model, lambda tasks, m=model: higher_step(m, tasks, inner_lr, first_order))
    except ImportError:
        pass
    model = use_batch_statistics(Conv4(5)).to(device)
    model.load_state_dict(reference.state_dict())
    found["plain loop"] = (model, lambda tasks, m=model: plain_loop_step(m, tasks, inner_lr, first_order))
    return found


def _gradient(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def run(device: str = "cpu", meta_batch: int = 32, repeats: int = 5, inner_lr: float = 0.4, seed: int = 0,
        only: list[str] | None = None, tf32: bool = True, cudnn_benchmark: bool = False) -> dict:
    """Time every contender for second and first order; print a table; return the numbers.

    ``tf32`` and ``cudnn_benchmark`` set torch's global CUDA switches for the
    whole run (every contender alike) and restore them afterwards.
    """
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = cudnn_benchmark
    try:
        return _run(device, meta_batch, repeats, inner_lr, seed, only, tf32, cudnn_benchmark)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark = saved


def _run(device, meta_batch, repeats, inner_lr, seed, only, tf32, cudnn_benchmark) -> dict:
    tasks = random_episodes(meta_batch, device=device, seed=seed)
    print(f"MAML meta-step, 5-way 1-shot, 15 queries, Conv4-64 with batch norm, meta-batch {meta_batch}, "
          f"1 inner step; median of {repeats} after a warm-up [min, max]")
    print(f"machine: {describe(device, ('autometa', 'torch', 'higher'))}; torch threads {torch.get_num_threads()}; seed {seed}")
    if torch.device(device).type == "cuda":
        print(f"CUDA: TF32 {'on' if tf32 else 'off'}; cudnn.benchmark {'on' if cudnn_benchmark else 'off'}")
    results = {}
    for first_order in (False, True):
        order = "first order" if first_order else "second order"
        found = contenders(device, first_order, inner_lr, seed)
        if only:
            found = {k: v for k, v in found.items() if k in only or k == "higher"}
        grads = {}
        for name, (model, step) in found.items():
            model.zero_grad(set_to_none=True)
            step(tasks)  # warm-up, and the gradient to compare
            grads[name] = _gradient(model)
        reference = grads.get("plain loop", next(iter(grads.values())))
        rows = {}
        for name, (model, step) in found.items():
            error = float((grads[name] - reference).norm() / reference.norm())

            def timed(model=model, step=step):
                model.zero_grad(set_to_none=True)
                step(tasks)

            times, peak = _time(timed, device, repeats)
            rows[name] = {"median_s": float(np.median(times)), "min_s": min(times), "max_s": max(times),
                          "peak_mib": peak, "grad_rel_error": error}
        base = rows.get("higher", {}).get("median_s")
        print(f"\n{order}:")
        print(f"  {'':18}{'s/step':>10}{'[min, max]':>20}{'vs higher':>11}{'peak MiB':>10}{'grad rel. err':>15}")
        for name, row in rows.items():
            ratio = f"{base / row['median_s']:.2f}x" if base else "-"
            print(f"  {name:18}{row['median_s']:>10.4f}   [{row['min_s']:.4f}, {row['max_s']:.4f}]{ratio:>11}"
                  f"{row['peak_mib']:>10.0f}{row['grad_rel_error']:>15.1e}")
        results[order] = rows
    return results
