"""Reptile: meta-learning by moving the initialisation towards fine-tuned weights."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from autometa.meta import registry
from autometa.meta.base import MetaLearner, Predictor, check_inner_loop, check_steps, resolve_strategy
from autometa.nn import task_batched_call, use_batch_statistics
from autometa.tasks.task import TaskBatch

STRATEGIES = ("auto", "loop", "batched")
INNER_OPTIMIZERS = ("sgd", "adam")
# the paper's inner Adam: no momentum (beta1 = 0), torch's other defaults
ADAM_BETAS = (0.0, 0.999)
ADAM_EPS = 1e-8

Params = dict[str, torch.Tensor]


class Reptile(MetaLearner):
    """Reptile (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning
    Algorithms"): learn an initialisation by repeatedly fine-tuning it on a
    task and moving it towards the fine-tuned weights.

    For each task ``i`` of a meta-batch the inner loop takes ``inner_steps``
    steps of SGD or Adam on the task's whole support set, from ``theta`` to
    ``phi_i``, with plain first-order gradients. The outer update is

    ``theta <- theta + epsilon * (mean_i phi_i - theta)``.

    :meth:`meta_gradient` writes it as the pseudo-gradient
    ``theta - mean_i phi_i`` into ``.grad``, so any torch optimiser drives the
    outer loop: ``torch.optim.SGD(lr=epsilon)`` is exactly the update above.

    Parameters
    ----------
    backbone : nn.Module or dict
        The network, or a backbone spec (``{"name": "conv4", "out_features": 5}``).
        Its batch-norm layers are switched to batch statistics, so the
        network computes the same function in every mode.
    inner_lr : float or None, default=None
        Step size of the inner optimiser; ``None``: the registry's default
        for ``task_type`` (:mod:`autometa.meta.registry`). For
        classification, 1e-3: the paper's for Adam on 1-shot 5-way Omniglot
        (Adam's steps do not depend on the scale of the loss, so it carries
        over); for regression, 0.02 with SGD on sinusoids (SGD needs a larger
        one).
    inner_steps : int or None, default=None
        Inner steps per task in meta-training (:meth:`adapt` and
        :meth:`evaluate` may take another number); ``None``: the registry's
        default, 5 (the paper's 1-shot 5-way Omniglot value).
    inner_optimizer : {"sgd", "adam"} or None, default=None
        ``"adam"`` is Adam with betas ``(0, 0.999)``, as in the paper's
        classification experiments. Its moments start from zero on every task
        (the paper's code carried them over from task to task; with
        ``beta1 = 0`` that changes only the second-moment estimate).
        ``None``: the registry's default, ``"adam"`` for classification and
        ``"sgd"`` for regression.
    task_type : {"classification", "regression"}, default="classification"
        Cross-entropy on logits, or mean squared error on outputs.
    strategy : {"auto", "loop", "batched"}, default="auto"
        How the inner loops of a meta-batch run; both give the same
        pseudo-gradient. ``"loop"``: one task after another with
        :func:`torch.func.functional_call` (any module; memory of one task).
        ``"batched"``: all tasks at once through
        :func:`autometa.nn.task_batched_call`, parameters and Adam moments
        carrying a leading task dimension (``nn.Sequential`` of common layers,
        see :func:`autometa.nn.supports_task_batching`). ``"auto"`` takes
        ``"batched"`` where it applies, except on CPU for networks with
        convolutions, whose grouped CPU kernels are slow; else ``"loop"``.

    Notes
    -----
    The outer learning rate belongs to the outer optimiser. The paper uses
    SGD with ``epsilon = 1.0`` annealed linearly to 0 (Omniglot,
    Mini-ImageNet); the closest :func:`~autometa.meta.meta_train` setting is
    ``optimizer=torch.optim.SGD(learner.parameters(), lr=1.0)`` with its
    default cosine decay to 0, which is what we recommend. ``meta_train``'s
    default, ``Adam(lr=1e-3)``, also works but is no longer Reptile's
    interpolation: Adam rescales the pseudo-gradient entry by entry, so each
    weight moves about ``lr`` per meta-step whatever its distance to ``phi``
    (``lr=1e-3``, the default, works on sinusoids).

    Examples
    --------
    >>> import torch
    >>> from autometa.meta import Reptile, meta_train
    >>> from autometa.tasks import SinusoidTasks
    >>> reptile = Reptile({"name": "mlp", "in_features": 1, "out_features": 1},
    ...                   inner_lr=0.02, inner_steps=5, inner_optimizer="sgd",
    ...                   task_type="regression")
    >>> tasks = SinusoidTasks(k_shot=10, random_state=0)
    >>> outer = torch.optim.SGD(reptile.parameters(), lr=1.0)
    >>> history = meta_train(reptile, tasks, steps=10, meta_batch=4, optimizer=outer)
    >>> new_task = tasks.sample(1)
    >>> predict = reptile.adapt(new_task.support_x[0], new_task.support_y[0], steps=10)
    >>> predict(new_task.query_x[0]).shape
    torch.Size([10, 1])
    """

    def __init__(
        self,
        backbone: nn.Module | dict,
        inner_lr: float | None = None,
        inner_steps: int | None = None,
        inner_optimizer: str | None = None,
        task_type: str = "classification",
        strategy: str = "auto",
    ):
        inner = registry.with_defaults("reptile", task_type, inner_lr=inner_lr, inner_steps=inner_steps,
                                       inner_optimizer=inner_optimizer)
        inner_lr, inner_steps, inner_optimizer = inner["inner_lr"], inner["inner_steps"], inner["inner_optimizer"]
        super().__init__(
            backbone,
            inner_lr=inner_lr,
            inner_steps=inner_steps,
            inner_optimizer=inner_optimizer,
            task_type=task_type,
            strategy=strategy,
        )
        check_inner_loop(inner_lr, inner_steps, task_type, strategy, STRATEGIES)
        if inner_optimizer not in INNER_OPTIMIZERS:
            raise ValueError(f"inner_optimizer must be one of {INNER_OPTIMIZERS}, got {inner_optimizer!r}")
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.inner_optimizer = inner_optimizer
        self.task_type = task_type
        self.strategy = strategy
        use_batch_statistics(self.backbone)

    # -- strategy -------------------------------------------------------
    def resolved_strategy(self, device: torch.device | None = None) -> str:
        """The strategy ``"auto"`` stands for on ``device`` (default: the model's)."""
        return resolve_strategy(self.strategy, self.backbone, device or self.device, STRATEGIES)

    # -- the verbs --------------------------------------------------------
    def meta_gradient(self, tasks: TaskBatch) -> dict[str, float]:
        """Add the Reptile pseudo-gradient ``theta - mean_i phi_i`` to ``.grad``.

        Returns the query loss (and accuracy) of the fine-tuned ``phi_i``,
        which Reptile itself never trains on.
        """
        adapted, metrics = self._adapt_and_score(tasks, self.inner_steps)
        for name, p in self.backbone.named_parameters():
            pseudo_grad = p.detach() - adapted[name].mean(0)
            p.grad = pseudo_grad if p.grad is None else p.grad + pseudo_grad
        return metrics

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor, steps: int | None = None) -> Predictor:
        """Fine-tune a copy of the initialisation on one task's support set.

        ``steps`` overrides ``inner_steps`` (the paper evaluates with more
        steps than it trains with). The learner itself is not changed.
        """
        adapted = self._fine_tune(self._looped_call, support_x[None], support_y[None], self._steps(steps))
        return lambda query_x: self._looped_call(adapted, query_x[None])[0]

    def evaluate(self, tasks: TaskBatch, steps: int | None = None) -> dict[str, float]:
        """Fine-tune on each task's support set (``steps`` inner steps) and score its query set."""
        return self._adapt_and_score(tasks, self._steps(steps))[1]

    # -- inner loop -------------------------------------------------------
    def _steps(self, steps: int | None) -> int:
        check_steps(steps)
        return self.inner_steps if steps is None else steps

    def _adapt_and_score(self, tasks: TaskBatch, steps: int) -> tuple[Params, dict[str, float]]:
        """Every task's fine-tuned parameters (stacked on dim 0) and their query metrics."""
        if self.resolved_strategy(tasks.device) == "batched":
            forward = self._batched_call
            adapted = self._fine_tune(forward, tasks.support_x, tasks.support_y, steps)
        else:
            forward = self._looped_call
            # one task at a time, so only one task's graph is ever alive
            per_task = [
                self._fine_tune(forward, tasks.support_x[i : i + 1], tasks.support_y[i : i + 1], steps)
                for i in range(len(tasks))
            ]
            adapted = {name: torch.cat([phi[name] for phi in per_task]) for name in per_task[0]}
        with torch.no_grad():
            outputs = forward(adapted, tasks.query_x)
            loss = self._task_losses(outputs, tasks.query_y).mean()
        return adapted, self._metrics(loss, outputs, tasks.query_y)

    def _fine_tune(self, forward, support_x: torch.Tensor, support_y: torch.Tensor, steps: int) -> Params:
        """``steps`` inner-optimiser steps from ``theta`` for a batch of tasks.

        ``forward(params, x)`` maps parameters with a leading task dimension
        ``B`` and inputs ``(B, N, ...)`` to outputs ``(B, N, ...)``. Returns
        the detached fine-tuned parameters, each ``(B, *shape)``.
        """
        n_tasks = len(support_x)
        params = {k: p.detach().expand(n_tasks, *p.shape) for k, p in self.backbone.named_parameters()}
        moments: dict[str, tuple] = {}
        for t in range(1, steps + 1):
            with torch.enable_grad():  # also under torch.no_grad(): the inner loop needs gradients
                leaves = [p.requires_grad_() for p in params.values()]
                # the sum of per-task losses gives each task the gradient of its own loss
                loss = self._task_losses(forward(params, support_x), support_y).sum()
                grads = torch.autograd.grad(loss, leaves)
            with torch.no_grad():
                params = {k: self._update(k, p, g, moments, t) for (k, p), g in zip(params.items(), grads)}
        return {k: p.detach() for k, p in params.items()}

    def _update(self, name: str, p: torch.Tensor, g: torch.Tensor, moments: dict, t: int) -> torch.Tensor:
        """Step ``t`` (from 1) of the inner optimiser for one parameter; elementwise,
        so a leading task dimension gives every task its own Adam moments."""
        if self.inner_optimizer == "sgd":
            return p - self.inner_lr * g
        beta1, beta2 = ADAM_BETAS
        m, v = moments.get(name, (0.0, 0.0))
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        moments[name] = (m, v)
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        return p - self.inner_lr * m_hat / (v_hat.sqrt() + ADAM_EPS)

    # -- calling the network with per-task parameters ---------------------
    def _batched_call(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        return task_batched_call(self.backbone, params, x)

    def _looped_call(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [functional_call(self.backbone, {k: p[i] for k, p in params.items()}, (x[i],)) for i in range(len(x))]
        )


registry.register("reptile", Reptile)
