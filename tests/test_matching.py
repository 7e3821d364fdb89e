"""Matching Networks: attention, the loss on log-probabilities, the temperature, full-context embeddings,
learning."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from autometa.meta import MatchingNet, MetaLearner, ProtoNet, meta_train
from autometa.meta.matching import cosine_attention
from autometa.nn import MLP, Conv4
from autometa.tasks import EpisodeSampler, TaskBatch, split_classes

from helpers import TinyEmbedding, blobs, nearest_neighbour_accuracy, random_tasks

SPEC = {"name": "mlp", "in_features": 6, "out_features": None, "hidden": [16]}


def attention_vote(backbone, support_x, support_y, query_x, temperature=1.0):
    """The paper's prediction by hand: softmax of cosines / temperature, then a weighted vote of one-hot labels."""
    with torch.no_grad():
        support, query = backbone(support_x), backbone(query_x)
        cosines = torch.stack([F.cosine_similarity(q[None], support, dim=-1) for q in query])
        attention = (cosines / temperature).softmax(-1)
        return attention, attention @ F.one_hot(support_y).float()


def test_attention_rows_sum_to_one():
    g = torch.Generator().manual_seed(0)
    attention = cosine_attention(torch.randn(2, 7, 5, generator=g), torch.randn(2, 4, 5, generator=g))
    assert attention.shape == (2, 7, 4) and (attention > 0).all()
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 7))


@pytest.mark.parametrize("temperature", ["learn", 1.0, 0.3])
def test_outputs_are_log_probabilities_of_the_attention_weighted_label_vote(temperature):
    torch.manual_seed(0)
    learner = MatchingNet(MLP(6, None, (16,)), temperature=temperature)
    tasks = random_tasks(4, 2, n_tasks=3)
    _, log_probs = learner.query_loss(tasks)
    assert log_probs.shape == (3, 12, 4)
    t = 0.1 if temperature == "learn" else temperature  # the learned temperature starts at 0.1
    for b in range(3):
        attention, vote = attention_vote(learner.backbone, tasks.support_x[b], tasks.support_y[b], tasks.query_x[b],
                                         t)
        torch.testing.assert_close(attention.sum(-1), torch.ones(12))
        torch.testing.assert_close(log_probs[b].detach().exp(), vote)


def test_the_loss_is_the_negative_log_likelihood():
    """Cross-entropy re-applies log_softmax to its input, which leaves normalised
    log-probabilities unchanged: the shared loss is the paper's NLL."""
    torch.manual_seed(0)
    learner = MatchingNet(MLP(6, None, (16,)))
    tasks = random_tasks(5, 1, n_tasks=2)
    loss, log_probs = learner.query_loss(tasks)
    flat, targets = log_probs.flatten(0, 1), tasks.query_y.flatten()
    nll = -flat.gather(1, targets[:, None]).mean()
    torch.testing.assert_close(loss, nll)
    torch.testing.assert_close(F.nll_loss(flat, targets), nll)
    torch.testing.assert_close(flat.log_softmax(-1), flat)


@pytest.mark.parametrize("fce", [False, True])
@pytest.mark.parametrize("n_way", [2, 5, 50])
@pytest.mark.parametrize("k_shot", [1, 5])
def test_adapt_to_any_number_of_ways_and_shots(fce, n_way, k_shot):
    torch.manual_seed(0)
    learner = MatchingNet(MLP(6, None, (16,)), fce=fce, lstm_steps=3, embedding_dim=16)
    task = random_tasks(n_way, k_shot)
    with torch.no_grad():
        log_probs = learner.adapt(task.support_x[0], task.support_y[0])(task.query_x[0])
    assert log_probs.shape == (n_way * 3, n_way) and torch.isfinite(log_probs).all()
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(n_way * 3))
    if not fce:
        _, vote = attention_vote(learner.backbone, task.support_x[0], task.support_y[0], task.query_x[0], 0.1)
        torch.testing.assert_close(log_probs.exp(), vote)


@pytest.mark.parametrize("fce", [False, True])
def test_adapt_gives_the_outputs_of_meta_training(fce):
    torch.manual_seed(0)
    learner = MatchingNet(Conv4(hidden=8, image_size=16), fce=fce, embedding_dim=8)
    g = torch.Generator().manual_seed(1)
    task = TaskBatch(torch.randn(1, 10, 1, 16, 16, generator=g), torch.arange(5).repeat(2)[None],
                     torch.randn(1, 15, 1, 16, 16, generator=g), torch.arange(5).repeat(3)[None])
    learner.eval()  # adapt() runs in evaluation mode: running batch-norm statistics
    with torch.no_grad():
        _, log_probs = learner.query_loss(task)
        adapted = learner.adapt(task.support_x[0], task.support_y[0])(task.query_x[0])
    torch.testing.assert_close(adapted, log_probs[0])


def test_the_learned_temperature_is_trained_with_the_embedding():
    torch.manual_seed(0)
    learner = MatchingNet(MLP(6, None, (16,)))
    assert learner.config["temperature"] == "learn"
    torch.testing.assert_close(learner.scale, torch.tensor(10.0))
    loss, _ = learner.query_loss(random_tasks(5, 2, n_tasks=2))
    loss.backward()
    assert learner.log_scale.grad is not None and learner.log_scale.grad.abs() > 0
    fixed = MatchingNet(MLP(6, None, (16,)), temperature=0.5)
    assert fixed.scale == 2.0 and "log_scale" not in dict(fixed.named_parameters())


def test_log_probabilities_stay_finite_and_differentiable_at_a_tiny_temperature():
    """At T = 1e-3 a distant class's share of the attention is e^-2000: zero in floating point; its log must
    still be finite, and so must the gradients."""
    torch.manual_seed(0)
    learner = MatchingNet(MLP(6, None, (16,)), temperature=1e-3)
    tasks = random_tasks(5, 2, n_tasks=2)
    loss, log_probs = learner.query_loss(tasks)
    assert torch.isfinite(log_probs).all() and log_probs.min() < -100
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 15))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in learner.parameters())


def test_files_saved_before_the_temperature_existed_load_at_the_papers_temperature(tmp_path):
    torch.manual_seed(0)
    old = MatchingNet(SPEC, temperature=1.0)
    payload = old.payload()
    config = json.loads(payload["config"])
    del config["temperature"]  # as files of the earlier MatchingNet were written
    payload["config"] = json.dumps(config)
    torch.save(payload, tmp_path / "old.pt")
    loaded = MetaLearner.load(tmp_path / "old.pt")
    assert loaded.config["temperature"] == 1.0 and loaded.scale == 1.0
    task = random_tasks(5, 1)
    with torch.no_grad():
        torch.testing.assert_close(loaded.adapt(task.support_x[0], task.support_y[0])(task.query_x[0]),
                                   old.adapt(task.support_x[0], task.support_y[0])(task.query_x[0]))


def test_predictions_do_not_depend_on_the_order_of_the_support_set():
    torch.manual_seed(0)
    learner = MatchingNet(Conv4(hidden=8, image_size=16))  # batch norm: statistics must not care either
    g = torch.Generator().manual_seed(1)
    support_x, support_y = torch.randn(15, 1, 16, 16, generator=g), torch.arange(5).repeat_interleave(3)
    query_x = torch.randn(10, 1, 16, 16, generator=g)
    order = torch.randperm(15, generator=g)
    with torch.no_grad():
        log_probs = learner.adapt(support_x, support_y)(query_x)
        shuffled = learner.adapt(support_x[order], support_y[order])(query_x)
    torch.testing.assert_close(log_probs, shuffled)


def test_full_context_embeddings_are_differentiable_and_change_the_output():
    torch.manual_seed(0)
    plain = MatchingNet(MLP(6, None, (16,)))
    fce = MatchingNet(MLP(6, None, (16,)), fce=True, embedding_dim=16)
    fce.backbone.load_state_dict(plain.backbone.state_dict())
    tasks = random_tasks(5, 2, n_tasks=2)
    loss, log_probs = fce.query_loss(tasks)
    loss.backward()
    for name, p in fce.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert not torch.allclose(log_probs, plain.query_loss(tasks)[1], atol=1e-3)


def test_lstm_steps_sets_the_number_of_attention_reads():
    task = random_tasks(5, 1)
    outputs = {}
    for steps in (1, 5, None):  # None: one read per support example, here 5
        torch.manual_seed(0)  # the same weights each time
        learner = MatchingNet(MLP(6, None, (16,)), fce=True, lstm_steps=steps, embedding_dim=16)
        with torch.no_grad():
            outputs[steps] = learner.adapt(task.support_x[0], task.support_y[0])(task.query_x[0])
    torch.testing.assert_close(outputs[None], outputs[5])
    assert not torch.allclose(outputs[1], outputs[5])


def test_wrong_embedding_dim_is_an_error_that_names_the_right_one():
    learner = MatchingNet(MLP(6, None, (16,)), fce=True)  # default embedding_dim=64
    with pytest.raises(ValueError, match="embedding_dim=16"):
        learner.query_loss(random_tasks(3, 1))


@pytest.mark.parametrize("kwargs", [{"lstm_steps": 0}, {"lstm_steps": 2.5}, {"embedding_dim": 0},
                                    {"temperature": 0}, {"temperature": -1.0}, {"temperature": math.inf},
                                    {"temperature": "fixed"}, {"temperature": True}])
def test_invalid_arguments_are_errors(kwargs):
    with pytest.raises(ValueError):
        MatchingNet(MLP(6, None, (16,)), **kwargs)


def test_a_bfloat16_training_dtype_runs_the_backbone_in_bfloat16_only_in_training():
    torch.manual_seed(0)
    learner = MatchingNet({"name": "conv4", "hidden": 8, "image_size": 16}, fce=True, embedding_dim=8)
    tasks = TaskBatch(torch.rand(2, 10, 1, 16, 16), torch.arange(5).repeat(2).repeat(2, 1),
                      torch.rand(2, 15, 1, 16, 16), torch.arange(5).repeat(3).repeat(2, 1))
    _, full = learner.query_loss(tasks)
    outputs = []
    learner.backbone.register_forward_hook(lambda module, inputs, output: outputs.append(output.dtype))
    learner.training_dtype = torch.bfloat16
    loss, log_probs = learner.query_loss(tasks)
    assert set(outputs) == {torch.bfloat16} and log_probs.dtype == torch.float32
    torch.testing.assert_close(log_probs, full, rtol=0.05, atol=0.05)
    loss.backward()
    assert all(p.grad.dtype == torch.float32 for p in learner.parameters())
    outputs.clear()
    learner.adapt(tasks.support_x[0], tasks.support_y[0])(tasks.query_x[0])
    assert set(outputs) == {torch.float32}


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    task = random_tasks(5, 2)
    cases = [
        (MatchingNet(SPEC), None),
        (MatchingNet(SPEC, temperature=0.25), None),
        (MatchingNet(SPEC, fce=True, lstm_steps=3, embedding_dim=16), None),
        (MatchingNet(TinyEmbedding(), fce=True, embedding_dim=8), TinyEmbedding()),
    ]
    for learner, backbone in cases:
        with torch.no_grad():  # make the weights differ from a fresh initialisation
            for p in learner.parameters():
                p.add_(torch.randn_like(p))
        learner.save(tmp_path / "matching.pt")
        for loaded in (MetaLearner.load(tmp_path / "matching.pt", backbone=backbone),
                       MatchingNet.load(tmp_path / "matching.pt", backbone=backbone)):
            assert type(loaded) is MatchingNet and loaded.config == learner.config
            with torch.no_grad():
                expected = learner.adapt(task.support_x[0], task.support_y[0])(task.query_x[0])
                assert torch.equal(loaded.adapt(task.support_x[0], task.support_y[0])(task.query_x[0]), expected)
    with pytest.raises(ValueError, match="not a ProtoNet"):
        ProtoNet.load(tmp_path / "matching.pt", backbone=TinyEmbedding())


# -- learning -------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("fce,steps", [(False, 200), (True, 100)])
def test_meta_training_learns_an_embedding_for_new_classes(fce, steps):
    X, y = blobs()
    train_classes, test_classes = split_classes(y, val_fraction=0.3, random_state=0)
    test_tasks = EpisodeSampler(X, y, 5, 1, 5, classes=test_classes, random_state=1).sample(300)
    torch.manual_seed(0)
    # a linear last layer: a ReLU embedding under the cosine can die to all zeros
    learner = MatchingNet(MLP(20, 64, (64,)), fce=fce, embedding_dim=64)
    untrained = learner.evaluate(test_tasks)["accuracy"]
    meta_train(learner, EpisodeSampler(X, y, 5, 1, 5, classes=train_classes, random_state=0),
               steps=steps, meta_batch=16, lr=3e-3)
    trained = learner.evaluate(test_tasks)["accuracy"]
    assert trained > untrained + 0.3, (untrained, trained)
    assert trained > nearest_neighbour_accuracy(test_tasks) + 0.3
