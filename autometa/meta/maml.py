"""Model-Agnostic Meta-Learning, its first-order variant and Meta-SGD."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from autometa.meta import registry
from autometa.meta.base import MetaLearner, Predictor, check_inner_loop, check_steps, resolve_strategy
from autometa.nn import task_batched_call, use_batch_statistics, vmap_safe
from autometa.tasks.task import TaskBatch

STRATEGIES = ("auto", "loop", "vmap", "batched")


class MAML(MetaLearner):
    """MAML (Finn, Abbeel & Levine, ICML 2017): learn an initialisation from
    which a few gradient steps on a task's support set fit that task.

    For each task ``i`` the inner loop takes ``inner_steps`` steps
    ``theta_i <- theta_i - inner_lr * grad L_support_i(theta_i)`` from
    ``theta``; the meta-loss is the mean query loss of the adapted
    ``theta_i``, differentiated through the inner loop (second order) or with
    the inner gradients treated as constants (``first_order=True``).

    Parameters
    ----------
    backbone : nn.Module or dict
        The network, or a backbone spec (``{"name": "conv4", "out_features": 5}``).
        Its batch-norm layers are switched to batch statistics, as in the
        paper, so the network computes the same function in every mode.
    inner_lr : float or None, default=None
        Step size of the inner SGD; ``None``: the registry's default for
        ``task_type`` (:mod:`autometa.meta.registry`: 0.4 for
        classification, 0.01 for regression).
    inner_steps : int or None, default=None
        Inner steps per task in meta-training (:meth:`adapt` and
        :meth:`evaluate` may take another number); ``None``: the registry's
        default, 5.
    first_order : bool, default=False
    learn_inner_lr : bool, default=False
        Meta-SGD (Li et al. 2017): one learned inner learning rate per
        parameter entry, initialised at ``inner_lr``.
    task_type : {"classification", "regression"}, default="classification"
        Cross-entropy on logits, or mean squared error on outputs.
    strategy : {"auto", "loop", "vmap", "batched"}, default="auto"
        How the tasks of a meta-batch are processed; all give the same
        meta-gradient. ``"loop"``: one task after another (any module).
        ``"vmap"``: vectorised with :func:`torch.func.vmap` (any module; batch
        norm is rewritten so its second-order gradient stays exact).
        ``"batched"``: every task at once as grouped convolutions and batched
        matrix products, no functorch transform (``nn.Sequential`` of common
        layers, see :func:`autometa.nn.supports_task_batching`). ``"auto"``
        takes ``"batched"`` where it applies (on CPU only for networks without
        convolutions, whose grouped CPU kernels are slow), else ``"vmap"`` on
        GPU and ``"loop"`` on CPU, where vectorising does not pay.

    Examples
    --------
    >>> import torch
    >>> from autometa.meta import MAML
    >>> from autometa.tasks import SinusoidTasks
    >>> maml = MAML({"name": "mlp", "in_features": 1, "out_features": 1},
    ...             inner_lr=0.01, task_type="regression")
    >>> tasks = SinusoidTasks(k_shot=10, random_state=0).sample(4)
    >>> metrics = maml.meta_gradient(tasks)  # fills .grad of maml's parameters
    >>> predict = maml.adapt(tasks.support_x[0], tasks.support_y[0])
    >>> predict(tasks.query_x[0]).shape
    torch.Size([10, 1])
    """

    def __init__(
        self,
        backbone: nn.Module | dict,
        inner_lr: float | None = None,
        inner_steps: int | None = None,
        first_order: bool = False,
        learn_inner_lr: bool = False,
        task_type: str = "classification",
        strategy: str = "auto",
    ):
        inner = registry.with_defaults("maml", task_type, inner_lr=inner_lr, inner_steps=inner_steps)
        inner_lr, inner_steps = inner["inner_lr"], inner["inner_steps"]
        super().__init__(
            backbone,
            inner_lr=inner_lr,
            inner_steps=inner_steps,
            first_order=first_order,
            learn_inner_lr=learn_inner_lr,
            task_type=task_type,
            strategy=strategy,
        )
        check_inner_loop(inner_lr, inner_steps, task_type, strategy, STRATEGIES)
        self.task_type = task_type
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.first_order = first_order
        self.strategy = strategy
        use_batch_statistics(self.backbone)
        # kept out of the module tree: it only lends its structure to functional_call
        self._vmap_twin: tuple[nn.Module, ...] = ()
        if learn_inner_lr:
            # names of ParameterDict keys cannot contain dots
            self.inner_lrs = nn.ParameterDict(
                {k.replace(".", "__"): nn.Parameter(torch.full_like(p, inner_lr)) for k, p in self.backbone.named_parameters()}
            )
        else:
            self.inner_lrs = None

    # -- strategy -------------------------------------------------------
    def resolved_strategy(self, device: torch.device | None = None) -> str:
        """The strategy ``"auto"`` stands for on ``device`` (default: the model's)."""
        return resolve_strategy(self.strategy, self.backbone, device or self.device, STRATEGIES)

    def _lr(self, name: str) -> torch.Tensor | float:
        return self.inner_lr if self.inner_lrs is None else self.inner_lrs[name.replace(".", "__")]

    def _step(self, params: dict, grads: dict) -> dict:
        return {k: p - self._lr(k) * g for (k, p), g in zip(params.items(), grads.values())}

    # -- one task at a time (loop), and every task at once (batched) ------
    def _adapt_params(self, forward, params: dict, support_x, support_y, create_graph: bool, steps=None) -> dict:
        """Inner loop with plain autograd; ``forward(params, x)`` may be batched over tasks."""
        with torch.enable_grad():  # the inner loop needs gradients even under torch.no_grad()
            for _ in range(self.inner_steps if steps is None else steps):
                loss = self._inner_loss(forward(params, support_x), support_y)
                grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
                params = self._step(params, dict(zip(params, grads)))
        return params

    def _inner_loss(self, outputs, targets):
        # batched over tasks (B, N, ...): summing the per-task mean losses makes
        # each task's gradient its own
        return self._task_losses(outputs, targets).sum() if targets.dim() == 2 else self._loss(outputs, targets)

    def _call(self, params, x):
        return functional_call(self.backbone, params, (x,))

    def _batched_call(self, params, x):
        return task_batched_call(self.backbone, params, x)

    def query_loss(self, tasks: TaskBatch):
        params = dict(self.backbone.named_parameters())
        create_graph = not self.first_order
        strategy = self.resolved_strategy(tasks.device)
        if strategy == "loop":
            outputs = []
            for i in range(len(tasks)):
                adapted = self._adapt_params(self._call, params, tasks.support_x[i], tasks.support_y[i], create_graph)
                outputs.append(self._call(adapted, tasks.query_x[i]))
            outputs = torch.stack(outputs)
        elif strategy == "batched":
            n_tasks = len(tasks)
            with torch.enable_grad():  # keeps the expanded parameters differentiable under no_grad
                expanded = {k: p.expand(n_tasks, *p.shape) for k, p in params.items()}
            adapted = self._adapt_params(self._batched_call, expanded, tasks.support_x, tasks.support_y, create_graph)
            outputs = self._batched_call(adapted, tasks.query_x)
        else:
            outputs = self._vmap_query_outputs(params, tasks)
        return self._inner_loss(outputs, tasks.query_y) / len(tasks), outputs

    # -- vectorised with torch.func ---------------------------------------
    def _vmap_query_outputs(self, params: dict, tasks: TaskBatch) -> torch.Tensor:
        if not self._vmap_twin:
            self._vmap_twin = (vmap_safe(self.backbone),)
        twin = self._vmap_twin[0]
        buffers = dict(self.backbone.named_buffers())

        def forward(p, x):
            return functional_call(twin, (p, buffers), (x,))

        def support_loss(p, x, y):
            return self._loss(forward(p, x), y)

        def one_task(p, support_x, support_y, query_x):
            for _ in range(self.inner_steps):
                grads = grad(support_loss)(p, support_x, support_y)
                if self.first_order:
                    grads = {k: g.detach() for k, g in grads.items()}
                p = self._step(p, grads)
            return forward(p, query_x)

        return vmap(one_task, in_dims=(None, 0, 0, 0))(params, tasks.support_x, tasks.support_y, tasks.query_x)

    # -- adaptation to a new task -----------------------------------------
    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor, steps: int | None = None) -> Predictor:
        """Fine-tune a copy of the initialisation on one task's support set.

        ``steps`` overrides ``inner_steps`` (the paper trains with one step
        and evaluates with up to ten). The learner itself is not changed.
        """
        check_steps(steps)
        params = {k: p.detach().requires_grad_() for k, p in self.backbone.named_parameters()}
        adapted = self._adapt_params(self._call, params, support_x, support_y, create_graph=False, steps=steps)
        adapted = {k: p.detach() for k, p in adapted.items()}
        return lambda query_x: self._call(adapted, query_x)

    def evaluate(self, tasks: TaskBatch, steps: int | None = None) -> dict[str, float]:
        """Adapt to each task (``steps`` inner steps) and score its query set."""
        if self.resolved_strategy(tasks.device) != "batched":
            return super().evaluate(tasks, steps=steps)
        n_tasks = len(tasks)
        params = {k: p.detach().expand(n_tasks, *p.shape).requires_grad_() for k, p in self.backbone.named_parameters()}
        adapted = self._adapt_params(self._batched_call, params, tasks.support_x, tasks.support_y, False, steps)
        with torch.no_grad():
            outputs = self._batched_call(adapted, tasks.query_x)
            loss = self._inner_loss(outputs, tasks.query_y) / n_tasks
        return self._metrics(loss, outputs, tasks.query_y)


registry.register("maml", MAML)
registry.register("fomaml", MAML, first_order=True)
