"""The shared outer loop: steps, time budget, callbacks, validation, checkpoints."""

import time

import numpy as np
import pytest
import torch

from autometa.meta import MAML, ProtoNet, Validation, meta_train
from autometa.tasks import EpisodeSampler, SinusoidTasks


def _sinusoid_maml(seed=0):
    torch.manual_seed(seed)
    return MAML({"name": "mlp", "in_features": 1, "out_features": 1}, inner_lr=0.01, inner_steps=1,
                task_type="regression")


def test_steps_and_history():
    history = meta_train(_sinusoid_maml(), SinusoidTasks(random_state=0), steps=7, meta_batch=4)
    assert len(history) == 7 and all("loss" in h for h in history)


def test_time_budget_stops_training():
    start = time.perf_counter()
    history = meta_train(_sinusoid_maml(), SinusoidTasks(random_state=0), steps=None, time_budget=0.5, meta_batch=4)
    assert 0.5 <= time.perf_counter() - start < 5 and len(history) >= 1


def test_a_callback_returning_true_stops_training():
    history = meta_train(_sinusoid_maml(), SinusoidTasks(random_state=0), steps=100, meta_batch=2,
                         callbacks=[lambda state: state.step == 3])
    assert len(history) == 3


def test_same_seed_same_result():
    a, b = _sinusoid_maml(), _sinusoid_maml()
    meta_train(a, SinusoidTasks(random_state=1), steps=20, meta_batch=4)
    meta_train(b, SinusoidTasks(random_state=1), steps=20, meta_batch=4)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"steps": None}, "give steps, time_budget, or both"),
        ({"steps": 0}, "steps must be positive"),
        ({"meta_batch": 0}, "meta_batch must be positive"),
        ({"schedule": "step"}, "schedule must be"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        meta_train(_sinusoid_maml(), SinusoidTasks(random_state=0), **kwargs)


def test_checkpoint_resumes_where_it_stopped(tmp_path):
    path = tmp_path / "ckpt.pt"
    interrupted = _sinusoid_maml()
    meta_train(interrupted, SinusoidTasks(random_state=0), steps=10, meta_batch=4, checkpoint=path,
               checkpoint_every=5, callbacks=[lambda state: state.step == 5])
    resumed = _sinusoid_maml(seed=123)  # weights come from the checkpoint
    history = meta_train(resumed, SinusoidTasks(random_state=0), steps=10, meta_batch=4, checkpoint=path)
    assert len(history) == 5  # steps 6..10 only
    assert int(torch.load(path, weights_only=True)["step"]) == 10


def test_validation_keeps_the_best_parameters_and_stops_early():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    y = np.repeat(np.arange(20), 20)
    X[:, 0] += y  # a learnable signal
    torch.manual_seed(0)
    learner = ProtoNet({"name": "mlp", "in_features": 8, "out_features": 16, "hidden": [16]})
    train = EpisodeSampler(X, y, 5, 1, 3, classes=range(10), random_state=0)
    validation = Validation(EpisodeSampler(X, y, 5, 1, 3, classes=range(10, 20), random_state=1), every=5,
                            n_tasks=20, patience=2)
    history = meta_train(learner, train, steps=500, meta_batch=2, callbacks=[validation])
    assert len(history) < 500  # stopped early
    best_step, best = max(validation.scores, key=lambda s: s[1])
    assert validation.best_step == best_step
    validation.restore_best(learner)
    learner.eval()
    assert learner.evaluate(validation.tasks)["accuracy"] == pytest.approx(best)


class _Crash(Exception):
    """Stands for the process dying where it is raised."""


@pytest.mark.parametrize("crash_at", [1, 2, 3])
def test_a_crash_while_checkpointing_leaves_a_complete_checkpoint(tmp_path, monkeypatch, crash_at):
    """Each checkpoint is written once, with its step: dying in any write of a
    run (the checkpoints of steps 3 and 6, and the final one of step 7)
    leaves the previous checkpoint whole, and resuming from it gives the
    uninterrupted run."""
    path = tmp_path / "ckpt.pt"
    real_save, calls = torch.save, []

    def dying_save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == crash_at:
            f.write(b"partial bytes")
            raise _Crash
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(_Crash):
        meta_train(_sinusoid_maml(), SinusoidTasks(random_state=0), steps=7, meta_batch=4, checkpoint=path,
                   checkpoint_every=3)
    monkeypatch.setattr(torch, "save", real_save)
    assert [p.name for p in tmp_path.iterdir()] == ([path.name] if crash_at > 1 else [])
    if crash_at > 1:
        payload = torch.load(path, weights_only=True)
        assert int(payload["step"]) == 3 * (crash_at - 1)
        assert {"state_dict", "optimizer", "random_state"} <= payload.keys()
    resumed = _sinusoid_maml(seed=123 if crash_at > 1 else 0)  # weights from the checkpoint when there is one
    meta_train(resumed, SinusoidTasks(random_state=0), steps=7, meta_batch=4, checkpoint=path, checkpoint_every=3)
    uninterrupted = _sinusoid_maml()
    meta_train(uninterrupted, SinusoidTasks(random_state=0), steps=7, meta_batch=4)
    for key, value in uninterrupted.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key
