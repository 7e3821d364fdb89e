"""MAML on the sinusoid family of Finn et al. (2017), section 5.1.

A 40-40 ReLU network, inner learning rate 0.01, meta-batch 25, Adam 1e-3
(constant, as in the paper; ``schedule="cosine"`` decays it, as
:func:`~autometa.meta.meta_train` does by default);
second and first order; K = 5 and 10 support points. Reports the query MSE
on 1,000 new tasks (100 query points each) after 1 and 10 inner steps, with
95% confidence intervals over tasks.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from autometa._common import describe, mean_ci
from autometa.meta import MAML, meta_train
from autometa.tasks import SinusoidTasks


def mse_per_task(learner: MAML, tasks, steps: int) -> np.ndarray:
    return np.array([learner.evaluate(tasks[i], steps=steps)["loss"] for i in range(len(tasks))])


def run(shots=(5, 10), orders=("second", "first"), meta_steps: int = 70_000, n_test_tasks: int = 1000,
        schedule: str = "constant", seed: int = 0, verbose: bool = False) -> list[dict]:
    print(f"MAML sinusoid regression: 40-40 ReLU MLP, inner lr 0.01, meta-batch 25, Adam 1e-3 ({schedule}), "
          f"{meta_steps} meta-steps, 1 inner step in training; {n_test_tasks} test tasks x 100 query points; seed {seed}")
    print(f"machine: {describe()}")
    print(f"{'K':>3} {'order':>7} {'train s':>8} {'MSE 1 step (95% CI)':>24} {'MSE 10 steps (95% CI)':>24}")
    rows = []
    for k_shot in shots:
        test = SinusoidTasks(k_shot=k_shot, n_query=100, random_state=seed + 1).sample(n_test_tasks)
        for order in orders:
            torch.manual_seed(seed)
            learner = MAML({"name": "mlp", "in_features": 1, "out_features": 1}, inner_lr=0.01,
                           inner_steps=1, first_order=order == "first", task_type="regression")
            start = time.perf_counter()
            meta_train(learner, SinusoidTasks(k_shot=k_shot, n_query=k_shot, random_state=seed), steps=meta_steps,
                       meta_batch=25, lr=1e-3, schedule=schedule, verbose=verbose)
            seconds = time.perf_counter() - start
            row = {"k_shot": k_shot, "order": order, "train_s": seconds}
            cells = []
            for steps in (1, 10):
                mse = mse_per_task(learner, test, steps)
                mean, half = mean_ci(mse)
                row[f"mse_{steps}"], row[f"ci_{steps}"] = mean, half
                cells.append(f"{mean:.3f} +- {half:.3f}")
            print(f"{k_shot:>3} {order:>7} {seconds:>8.0f} {cells[0]:>24} {cells[1]:>24}", flush=True)
            rows.append(row)
    return rows
