"""Backbones and the functional helpers behind the task-batched strategy."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from autometa.nn import MLP, Conv4, build_backbone, supports_task_batching, task_batched_call, use_batch_statistics, vmap_safe


def test_conv4_shapes():
    assert Conv4()(torch.zeros(3, 1, 28, 28)).shape == (3, 64)
    assert Conv4(5)(torch.zeros(3, 1, 28, 28)).shape == (3, 5)
    assert Conv4(7, in_channels=3, hidden=8, image_size=32)(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
    with pytest.raises(ValueError, match="too small"):
        Conv4(image_size=8)


def test_mlp_shapes_and_norm():
    assert MLP(3, 2)(torch.zeros(4, 3)).shape == (4, 2)
    assert MLP(3, None, (16,))(torch.zeros(4, 3)).shape == (4, 16)
    assert any(isinstance(m, nn.BatchNorm1d) for m in MLP(3, 2, norm=True).modules())


def test_build_backbone_from_spec():
    net = build_backbone({"name": "conv4", "out_features": 5, "hidden": 8})
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 5)
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        build_backbone({"name": "resnet"})


def test_a_concat_spec_puts_its_branches_outputs_side_by_side():
    torch.manual_seed(0)
    net = build_backbone({"name": "concat", "branches": [{"name": "mlp", "in_features": 3, "out_features": 2},
                                                         {"name": "mlp", "in_features": 3, "out_features": 5}]})
    x = torch.randn(4, 3)
    out = net(x)
    assert out.shape == (4, 7)
    torch.testing.assert_close(out[:, :2], net.branches[0](x))
    torch.testing.assert_close(out[:, 2:], net.branches[1](x))
    for branches in ([], {"name": "mlp"}, None):
        with pytest.raises(ValueError, match="non-empty list of branch specs"):
            build_backbone({"name": "concat", "branches": branches})


def test_use_batch_statistics_drops_running_statistics():
    net = use_batch_statistics(Conv4(5, hidden=4))
    for layer in net.modules():
        if isinstance(layer, nn.BatchNorm2d):
            assert not layer.track_running_stats and layer.running_mean is None
    assert not list(net.buffers())


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: MLP(4, 3, (8, 8)), (4,)),
        (lambda: MLP(4, 3, (8,), norm=True), (4,)),
        (lambda: Conv4(3, hidden=4, image_size=16), (1, 16, 16)),
        (lambda: Conv4(3, hidden=4, image_size=16, norm=False), (1, 16, 16)),
    ],
)
def test_task_batched_call_equals_one_call_per_task(make, shape):
    torch.manual_seed(0)
    net = use_batch_statistics(make()).double()
    assert supports_task_batching(net)
    n_tasks = 3
    params = {k: p.detach() + 0.1 * torch.randn(n_tasks, *p.shape, dtype=p.dtype) for k, p in net.named_parameters()}
    x = torch.randn(n_tasks, 6, *shape, dtype=torch.float64)
    batched = task_batched_call(net, params, x)
    looped = torch.stack([functional_call(net, {k: v[i] for k, v in params.items()}, (x[i],)) for i in range(n_tasks)])
    torch.testing.assert_close(batched, looped)


def test_supports_task_batching_rejects_what_it_cannot_run():
    assert not supports_task_batching(nn.Linear(2, 2))  # not a Sequential
    assert not supports_task_batching(nn.Sequential(nn.Linear(2, 2), nn.LSTM(2, 2)))
    assert not supports_task_batching(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))  # running statistics
    assert not supports_task_batching(nn.Sequential(nn.Conv2d(1, 2, 3, padding="same")))


def test_vmap_safe_computes_the_same_function_with_the_same_parameter_names():
    torch.manual_seed(0)
    net = use_batch_statistics(Conv4(3, hidden=4, image_size=16)).double()
    twin = vmap_safe(net)
    assert [k for k, _ in twin.named_parameters()] == [k for k, _ in net.named_parameters()]
    x = torch.randn(5, 1, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(twin(x), net(x))
    with pytest.raises(ValueError, match="use_batch_statistics"):
        vmap_safe(Conv4(3, hidden=4, image_size=16))


def test_skip_mlp_embeds_the_input_beside_learned_features():
    net = build_backbone({"name": "skip_mlp", "in_features": 3, "out_features": 5, "hidden": [8]})
    x = torch.randn(4, 3)
    out = net(x)
    assert out.shape == (4, 8)
    torch.testing.assert_close(out[:, :3], x)
    assert isinstance(net.branches[1][-1], nn.Linear)  # the learned part ends linear
