"""Reptile: the pseudo-gradient against torch's own optimisers, strategies, adapt, persistence, end to end."""

import copy
import itertools

import pytest
import torch
from torch import nn

from autometa.meta import MetaLearner, Reptile, meta_train
from autometa.nn import MLP, Conv4
from autometa.tasks import SinusoidTasks
from autometa.tasks.task import TaskBatch


BACKBONES = {
    "mlp": (lambda: MLP(4, 3, (8, 8)), (4,), "classification"),
    "mlp-batchnorm": (lambda: MLP(4, 3, (8, 8), norm=True), (4,), "classification"),
    "mlp-regression": (lambda: MLP(4, 1, (8, 8)), (4,), "regression"),
    "conv4": (lambda: Conv4(3, hidden=4, image_size=16), (1, 16, 16), "classification"),
}


def random_tasks(shape, task_type="classification", n_tasks=3, n_way=3, k_shot=2, n_query=3, seed=0):
    g = torch.Generator().manual_seed(seed)

    def targets(per_class):
        if task_type == "regression":
            return torch.randn(n_tasks, n_way * per_class, generator=g, dtype=torch.float64)
        return torch.arange(n_way).repeat_interleave(per_class).repeat(n_tasks, 1)

    return TaskBatch(
        torch.randn(n_tasks, n_way * k_shot, *shape, generator=g, dtype=torch.float64),
        targets(k_shot),
        torch.randn(n_tasks, n_way * n_query, *shape, generator=g, dtype=torch.float64),
        targets(n_query),
    )


def make_learner(backbone="mlp", seed=0, **kwargs):
    make, shape, task_type = BACKBONES[backbone]
    torch.manual_seed(seed)
    return Reptile(make(), task_type=task_type, **kwargs).double(), random_tasks(shape, task_type)


def flat(tensors):
    return torch.cat([t.flatten() for t in tensors])


def fine_tuned_with_torch_optim(learner, support_x, support_y, steps):
    """The inner loop written with a module and torch.optim: an independent reference."""
    net = copy.deepcopy(learner.backbone)
    if learner.inner_optimizer == "sgd":
        optimizer = torch.optim.SGD(net.parameters(), lr=learner.inner_lr)
    else:
        optimizer = torch.optim.Adam(net.parameters(), lr=learner.inner_lr, betas=(0.0, 0.999), eps=1e-8)
    for _ in range(steps):
        optimizer.zero_grad()
        learner._loss(net(support_x), support_y).backward()
        optimizer.step()
    return net


@pytest.mark.parametrize("backbone,inner_optimizer", list(itertools.product(BACKBONES, ["sgd", "adam"])))
def test_batched_and_loop_strategies_give_the_same_pseudo_gradient(backbone, inner_optimizer):
    grads, metrics = {}, {}
    for strategy in ("loop", "batched"):
        learner, tasks = make_learner(
            backbone, inner_lr=0.05, inner_steps=3, inner_optimizer=inner_optimizer, strategy=strategy
        )
        metrics[strategy] = learner.meta_gradient(tasks)
        grads[strategy] = flat(p.grad for p in learner.parameters())
    assert grads["loop"].abs().max() > 0
    # Adam divides by sqrt(v) + 1e-8, which blows the roundoff of exactly-zero
    # gradients (biases before batch norm) up to ~1e-10 steps
    atol = 1e-9 if inner_optimizer == "adam" else 1e-12
    torch.testing.assert_close(grads["batched"], grads["loop"], rtol=1e-9, atol=atol)
    assert metrics["batched"] == pytest.approx(metrics["loop"], rel=1e-9)


@pytest.mark.parametrize("strategy,inner_optimizer", list(itertools.product(["loop", "batched"], ["sgd", "adam"])))
def test_pseudo_gradient_is_theta_minus_the_mean_fine_tuned_weights(strategy, inner_optimizer):
    learner, tasks = make_learner("mlp-batchnorm", inner_lr=0.05, inner_steps=3, inner_optimizer=inner_optimizer,
                                  strategy=strategy)
    theta = flat(learner.parameters()).detach().clone()
    phis = [
        flat(fine_tuned_with_torch_optim(learner, tasks.support_x[i], tasks.support_y[i], steps=3).parameters())
        for i in range(len(tasks))
    ]
    mean_phi = torch.stack(phis).detach().mean(0)
    learner.meta_gradient(tasks)
    torch.testing.assert_close(flat(p.grad for p in learner.parameters()), theta - mean_phi)
    # outer SGD(lr=epsilon) is Reptile's interpolation theta + epsilon * (mean phi - theta)
    torch.optim.SGD(learner.parameters(), lr=0.5).step()
    torch.testing.assert_close(flat(learner.parameters()).detach(), theta + 0.5 * (mean_phi - theta))


@pytest.mark.parametrize("strategy", ["loop", "batched"])
def test_one_sgd_step_on_one_task_gives_inner_lr_times_the_support_gradient(strategy):
    # theta - phi = theta - (theta - lr * g) = lr * g: with one step Reptile is SGD on the expected support loss
    learner, tasks = make_learner("conv4", inner_lr=0.1, inner_steps=1, inner_optimizer="sgd", strategy=strategy)
    one_task = tasks[0]
    support_loss = learner._loss(learner.backbone(one_task.support_x[0]), one_task.support_y[0])
    expected = 0.1 * flat(torch.autograd.grad(support_loss, list(learner.parameters())))
    learner.meta_gradient(one_task)
    torch.testing.assert_close(flat(p.grad for p in learner.parameters()), expected)


def test_meta_gradient_accumulates_into_grad_like_backward():
    learner, tasks = make_learner(inner_lr=0.05, inner_optimizer="sgd")
    learner.meta_gradient(tasks)
    once = flat(p.grad for p in learner.parameters()).clone()
    learner.meta_gradient(tasks)
    torch.testing.assert_close(flat(p.grad for p in learner.parameters()), 2 * once)


@pytest.mark.parametrize("inner_optimizer", ["sgd", "adam"])
def test_adapt_fine_tunes_a_copy_and_never_mutates_the_learner(inner_optimizer):
    learner, tasks = make_learner("mlp-batchnorm", inner_lr=0.05, inner_steps=2, inner_optimizer=inner_optimizer)
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    support_x, support_y, query_x = tasks.support_x[0], tasks.support_y[0], tasks.query_x[0]
    with torch.no_grad():  # adaptation needs gradients, and takes them even here
        predict = learner.adapt(support_x, support_y, steps=4)
        outputs = predict(query_x)
    # test-time steps (4) may differ from training's inner_steps (2)
    reference = fine_tuned_with_torch_optim(learner, support_x, support_y, steps=4)
    torch.testing.assert_close(outputs, reference(query_x).detach())
    assert not outputs.requires_grad
    for k, v in learner.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert all(p.grad is None for p in learner.parameters())


@pytest.mark.parametrize("strategy", ["loop", "batched"])
def test_evaluate_scores_the_fine_tuned_weights(strategy):
    learner, tasks = make_learner(inner_lr=0.05, inner_optimizer="adam", strategy=strategy)
    with torch.no_grad():
        untouched = learner._loss(learner.backbone(tasks.query_x.flatten(0, 1)), tasks.query_y.flatten())
    assert learner.evaluate(tasks, steps=0)["loss"] == pytest.approx(float(untouched))
    adapted = learner.evaluate(tasks, steps=5)
    per_task = MetaLearner.evaluate(learner, tasks, steps=5)  # the base class: adapt() task by task
    assert adapted == pytest.approx(per_task, rel=1e-9)
    assert adapted["loss"] != pytest.approx(float(untouched))
    assert all(p.grad is None for p in learner.parameters())


def test_auto_strategy_never_picks_vmap():
    assert Reptile(Conv4(5)).resolved_strategy(torch.device("cuda")) == "batched"
    assert Reptile(nn.Sequential(nn.Linear(3, 2), nn.LSTM(2, 2))).resolved_strategy(torch.device("cuda")) == "loop"


def test_batchnorm_layers_use_batch_statistics():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    Reptile(net)
    assert net[1].running_mean is None and not net[1].track_running_stats


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"inner_lr": 0.0}, "inner_lr must be a positive number"),
        ({"inner_lr": -1.0}, "inner_lr must be a positive number"),
        ({"inner_lr": "0.1"}, "inner_lr must be a positive number"),
        ({"inner_steps": 0}, "inner_steps must be a positive int"),
        ({"inner_steps": 2.0}, "inner_steps must be a positive int"),
        ({"inner_steps": True}, "inner_steps must be a positive int"),
        ({"inner_optimizer": "rmsprop"}, "inner_optimizer must be one of"),
        ({"strategy": "vmap"}, "strategy must be one of"),
        ({"task_type": "ranking"}, "task_type must be"),
    ],
)
def test_invalid_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Reptile(MLP(2, 2), **kwargs)


def test_invalid_test_time_steps():
    learner, tasks = make_learner()
    with pytest.raises(ValueError, match="steps must be a non-negative int"):
        learner.adapt(tasks.support_x[0], tasks.support_y[0], steps=-1)
    with pytest.raises(ValueError, match="steps must be a non-negative int"):
        learner.evaluate(tasks, steps=1.5)


def test_save_load_roundtrip(tmp_path):
    spec = {"name": "mlp", "in_features": 4, "out_features": 3, "hidden": [8]}
    torch.manual_seed(0)
    learner = Reptile(spec, inner_lr=0.05, inner_steps=2, inner_optimizer="sgd", strategy="loop")
    tasks = random_tasks((4,)).to(dtype=torch.float32)
    learner.meta_gradient(tasks)
    torch.optim.SGD(learner.parameters(), lr=1.0).step()
    learner.save(tmp_path / "reptile.pt")
    for loader in (Reptile.load, MetaLearner.load):
        loaded = loader(tmp_path / "reptile.pt")
        assert isinstance(loaded, Reptile) and loaded.config == learner.config
        for k, v in learner.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)
        assert loaded.evaluate(tasks) == learner.evaluate(tasks)


def test_save_load_with_a_custom_backbone_needs_the_module(tmp_path):
    learner = Reptile(MLP(4, 3, (8,)), inner_optimizer="sgd", inner_lr=0.1)
    learner.save(tmp_path / "custom.pt")
    with pytest.raises(ValueError, match="custom backbone"):
        Reptile.load(tmp_path / "custom.pt")
    loaded = Reptile.load(tmp_path / "custom.pt", backbone=MLP(4, 3, (8,)))
    assert loaded.inner_optimizer == "sgd" and loaded.inner_lr == 0.1


# -- end to end ----------------------------------------------------------------


def sinusoid_gain(inner_optimizer, inner_lr, outer_optimizer, meta_steps):
    """Query MSE after 10 inner steps on 200 new sinusoids: meta-trained / its random initialisation."""
    torch.manual_seed(0)
    reptile = Reptile({"name": "mlp", "in_features": 1, "out_features": 1}, inner_lr=inner_lr, inner_steps=5,
                      inner_optimizer=inner_optimizer, task_type="regression")
    initial = copy.deepcopy(reptile)
    optimizer = outer_optimizer(reptile.parameters()) if outer_optimizer else None
    meta_train(reptile, SinusoidTasks(k_shot=10, random_state=0), steps=meta_steps, meta_batch=8, optimizer=optimizer)
    held_out = SinusoidTasks(k_shot=10, random_state=1).sample(200)
    return reptile.evaluate(held_out, steps=10)["loss"] / initial.evaluate(held_out, steps=10)["loss"]


@pytest.mark.slow
def test_end_to_end_sinusoids_sgd_inner_loop_and_the_papers_outer_sgd():
    # the paper's outer loop: SGD with step size 1 annealed to 0 (here by meta_train's cosine schedule)
    ratio = sinusoid_gain("sgd", 0.02, lambda params: torch.optim.SGD(params, lr=1.0), meta_steps=600)
    assert ratio < 0.6


@pytest.mark.slow
def test_end_to_end_sinusoids_adam_inner_loop_and_meta_trains_default_adam():
    ratio = sinusoid_gain("adam", 0.01, None, meta_steps=800)
    assert ratio < 0.6
