"""MAML: exact meta-gradients for every strategy and backbone, first order, Meta-SGD."""

import itertools

import pytest
import torch
from torch import nn

import autometa.meta.maml as maml_module
from autometa.meta import MAML
from autometa.nn import MLP, Conv4
from autometa.tasks.task import TaskBatch

STRATEGIES = ["loop", "vmap", "batched"]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))]


def _labels(n_tasks, n_way, per_class):
    return torch.arange(n_way).repeat_interleave(per_class).repeat(n_tasks, 1)


def random_tasks(shape, n_tasks=3, n_way=3, k_shot=2, n_query=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TaskBatch(
        torch.randn(n_tasks, n_way * k_shot, *shape, generator=g, dtype=torch.float64),
        _labels(n_tasks, n_way, k_shot),
        torch.randn(n_tasks, n_way * n_query, *shape, generator=g, dtype=torch.float64),
        _labels(n_tasks, n_way, n_query),
    )


BACKBONES = {
    "mlp": (lambda: MLP(4, 3, (8, 8)), (4,)),
    "mlp-batchnorm": (lambda: MLP(4, 3, (8, 8), norm=True), (4,)),
    "conv4": (lambda: Conv4(3, hidden=4, image_size=16, norm=False), (1, 16, 16)),
    "conv4-batchnorm": (lambda: Conv4(3, hidden=4, image_size=16), (1, 16, 16)),
}


def directional_check(learner, tasks, n_directions=3, eps=1e-7, seed=0):
    """Relative errors of <meta-gradient, v> against central finite differences."""
    learner.zero_grad()
    loss, _ = learner.query_loss(tasks)
    loss.backward()
    params = list(learner.parameters())
    g = torch.Generator().manual_seed(seed)
    errors = []
    for _ in range(n_directions):
        direction = [torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device) for p in params]
        analytic = sum(float((p.grad * d).sum()) for p, d in zip(params, direction))
        with torch.no_grad():
            for p, d in zip(params, direction):
                p.add_(eps * d)
            plus = float(learner.query_loss(tasks)[0])
            for p, d in zip(params, direction):
                p.sub_(2 * eps * d)
            minus = float(learner.query_loss(tasks)[0])
            for p, d in zip(params, direction):
                p.add_(eps * d)
        numeric = (plus - minus) / (2 * eps)
        errors.append(abs(analytic - numeric) / max(abs(numeric), 1e-8))
    return max(errors)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "backbone,strategy,inner_steps,learn_inner_lr",
    list(itertools.product(BACKBONES, STRATEGIES, [1, 2], [False, True])),
)
def test_second_order_meta_gradient_matches_finite_differences(backbone, strategy, inner_steps, learn_inner_lr, device):
    torch.manual_seed(0)
    make, shape = BACKBONES[backbone]
    learner = MAML(make(), inner_lr=0.05, inner_steps=inner_steps, learn_inner_lr=learn_inner_lr, strategy=strategy)
    learner.double().to(device)
    assert directional_check(learner, random_tasks(shape).to(device)) < 1e-5


def test_finite_difference_check_catches_vmap_through_torch_batchnorm(monkeypatch):
    """The check above must fail for the known-wrong path: vmap of grad through
    torch's own batch_norm (pytorch/functorch#534). If torch fixes that bug this
    test fails, and vmap_safe can be retired."""
    torch.manual_seed(0)
    make, shape = BACKBONES["conv4-batchnorm"]
    learner = MAML(make(), inner_lr=0.05, inner_steps=1, strategy="vmap").double()
    monkeypatch.setattr(maml_module, "vmap_safe", lambda module: module)
    assert directional_check(learner, random_tasks(shape)) > 1e-4


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_strategies_agree_in_first_order(backbone):
    make, shape = BACKBONES[backbone]
    tasks = random_tasks(shape)
    grads = {}
    for strategy in STRATEGIES:
        torch.manual_seed(0)
        learner = MAML(make(), inner_lr=0.05, inner_steps=2, first_order=True, strategy=strategy).double()
        learner.query_loss(tasks)[0].backward()
        grads[strategy] = torch.cat([p.grad.flatten() for p in learner.parameters()])
    for strategy in STRATEGIES[1:]:
        torch.testing.assert_close(grads[strategy], grads["loop"], rtol=1e-9, atol=1e-12)


def test_first_order_drops_the_second_order_term():
    make, shape = BACKBONES["mlp"]
    tasks = random_tasks(shape)
    flat = {}
    for first_order in (False, True):
        torch.manual_seed(0)
        learner = MAML(make(), inner_lr=0.3, inner_steps=1, first_order=first_order, strategy="loop").double()
        learner.query_loss(tasks)[0].backward()
        flat[first_order] = torch.cat([p.grad.flatten() for p in learner.parameters()])
    assert not torch.allclose(flat[True], flat[False])
    # first order: the meta-gradient is the query gradient at the adapted parameters
    torch.manual_seed(0)
    learner = MAML(make(), inner_lr=0.3, inner_steps=1, strategy="loop").double()
    expected = []
    for i in range(len(tasks)):
        adapted = learner.adapt(tasks.support_x[i], tasks.support_y[i])
        params = {k: p.detach().requires_grad_() for k, p in learner.backbone.named_parameters()}
        support_loss = nn.functional.cross_entropy(learner._call(params, tasks.support_x[i]), tasks.support_y[i])
        grads = torch.autograd.grad(support_loss, list(params.values()))
        stepped = {k: (p - 0.3 * g).detach().requires_grad_() for (k, p), g in zip(params.items(), grads)}
        query_loss = nn.functional.cross_entropy(learner._call(stepped, tasks.query_x[i]), tasks.query_y[i])
        expected.append(torch.cat([g.flatten() for g in torch.autograd.grad(query_loss, list(stepped.values()))]))
        assert adapted(tasks.query_x[i]).shape == (9, 3)
    torch.testing.assert_close(flat[True], torch.stack(expected).mean(0))


def test_auto_strategy_by_device_and_backbone():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert MAML(Conv4(5)).resolved_strategy(cpu) == "loop"  # grouped CPU convolutions are slow
    assert MAML(Conv4(5)).resolved_strategy(cuda) == "batched"
    assert MAML(MLP(1, 1)).resolved_strategy(cpu) == "batched"
    custom = nn.Sequential(nn.Linear(3, 2), nn.LSTM(2, 2))  # not task-batchable
    assert MAML(custom).resolved_strategy(cuda) == "vmap"
    assert MAML(custom).resolved_strategy(cpu) == "loop"
    with pytest.raises(ValueError, match="strategy='batched' needs.*use strategy='loop' or 'vmap'"):
        MAML(custom, strategy="batched").resolved_strategy()


def test_batchnorm_layers_use_batch_statistics():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    MAML(net)
    assert net[1].running_mean is None and not net[1].track_running_stats


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"inner_lr": 0.0}, "inner_lr must be a positive number"),
        ({"inner_lr": -1.0}, "inner_lr must be a positive number"),
        ({"inner_steps": 0}, "inner_steps must be a positive int"),
        ({"strategy": "fast"}, "strategy must be one of"),
        ({"task_type": "ranking"}, "task_type must be"),
    ],
)
def test_invalid_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MAML(MLP(2, 2), **kwargs)


def test_adapt_does_not_change_the_initialisation():
    learner = MAML(MLP(4, 3, (8,)), inner_lr=0.5)
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    tasks = random_tasks((4,)).to(dtype=torch.float32)
    with torch.no_grad():
        learner.adapt(tasks.support_x[0], tasks.support_y[0])(tasks.query_x[0])
    for k, v in learner.state_dict().items():
        torch.testing.assert_close(v, before[k])
