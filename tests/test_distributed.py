"""Meta-training on two processes equals one process on the whole meta-batch.

The distributed runs are real ``torchrun`` launches (gloo, loopback, a free
port from ``--standalone``) of this file as a script; the single-process
references run in the test process with the same configurations.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autometa.meta import MAML, MatchingNet, ProtoNet, Reptile, distributed, meta_train
from autometa.meta.training import SingleProcess
from autometa.tasks import EpisodeSampler, SinusoidTasks

from helpers import small_blobs

STEPS = 5
META_BATCH = 5  # two ranks take 3 and 2 tasks: checks the weighting of uneven shares
RANKS = 2


def _setup(name: str, seed: int = 0):
    """A learner, its task source and its outer optimiser (SGD: unlike Adam,
    it does not hide a wrongly scaled meta-gradient)."""
    torch.manual_seed(seed)
    sinusoid = {"name": "mlp", "in_features": 1, "out_features": 1, "hidden": [16, 16]}
    embedding = {"name": "mlp", "in_features": 6, "out_features": 8, "hidden": [16]}
    if name in ("maml", "fomaml"):
        learner = MAML(sinusoid, inner_lr=0.01, inner_steps=1, first_order=name == "fomaml", task_type="regression")
        tasks, lr = SinusoidTasks(k_shot=5, n_query=5, random_state=seed), 0.01
    elif name == "reptile":
        learner = Reptile(sinusoid, inner_lr=0.02, inner_steps=3, inner_optimizer="sgd", task_type="regression")
        tasks, lr = SinusoidTasks(k_shot=5, n_query=5, random_state=seed), 1.0
    elif name == "protonet_conv":  # channels-last convolution weights (MetaLearner.channels_last)
        learner = ProtoNet({"name": "conv4", "hidden": 8, "image_size": 16, "norm": False})
        _, y = small_blobs()
        images = torch.randn(len(y), 1, 16, 16, generator=torch.Generator().manual_seed(seed))
        images += torch.as_tensor(y, dtype=torch.float32)[:, None, None, None] * 0.3
        tasks, lr = EpisodeSampler(images, y, n_way=3, k_shot=2, n_query=2, random_state=seed), 0.1
    else:
        if name == "protonet":
            learner = ProtoNet(embedding)
        elif name == "protonet_bn":
            learner = ProtoNet({**embedding, "norm": True})
        else:
            learner = MatchingNet(embedding, fce=True, embedding_dim=8)
        tasks, lr = EpisodeSampler(*small_blobs(), n_way=3, k_shot=2, n_query=2, random_state=seed), 0.1
    return learner, tasks, torch.optim.SGD(learner.parameters(), lr=lr)


def _train(name: str, distributed_run: bool):
    learner, tasks, optimizer = _setup(name)
    history = meta_train(learner, tasks, steps=STEPS, meta_batch=META_BATCH, optimizer=optimizer,
                         distributed=distributed_run)
    return learner, history


class _DiesAt:
    """A task source that kills its process (SIGKILL) on its ``die_at``-th draw."""

    def __init__(self, sampler, die_at: int = 0):
        self.sampler, self.die_at, self.draws = sampler, die_at, 0

    def sample(self, meta_batch):
        self.draws += 1
        if self.draws == self.die_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.sampler.sample(meta_batch)


def _train_with_checkpoint(checkpoint, steps: int, die_at: int = 0, distributed_run: bool = True,
                           stop_at: int | None = None):
    learner, tasks, _ = _setup("maml", seed=0)
    torch.manual_seed(1234)  # a resumed run gets its weights from the checkpoint, not from here
    callbacks = [lambda state: state.step == stop_at] if stop_at else []
    meta_train(learner, _DiesAt(tasks, die_at), steps=steps, meta_batch=META_BATCH, lr=0.01, checkpoint=checkpoint,
               checkpoint_every=3, callbacks=callbacks, distributed=distributed_run)
    return learner


# -- the torchrun side ---------------------------------------------------------
def _worker(argv: list[str]) -> None:
    torch.set_num_threads(1)
    mode, out = argv[0], Path(argv[1])
    with distributed.session("cpu") as ctx:
        if mode == "equivalence":
            results = {}
            for name in argv[2:]:
                learner, history = _train(name, distributed_run=True)
                results[name] = {"state": learner.state_dict(), "loss": torch.tensor([h["loss"] for h in history])}
            torch.save(results, out / f"rank{ctx.rank}.pt")
        else:  # resume: train to argv[3] steps; rank 1 dies on draw argv[4] (0: never)
            die_at = int(argv[4]) if ctx.rank == 1 else 0
            learner = _train_with_checkpoint(argv[2], int(argv[3]), die_at)
            torch.save(learner.state_dict(), out / f"rank{ctx.rank}.pt")


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(RANKS),
               "--monitor-interval", "0.1", __file__, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)


def _assert_same_parameters(actual: dict, expected: dict):
    assert actual.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-5, atol=1e-6, msg=lambda m: f"{key}: {m}")


# -- the tests -----------------------------------------------------------------
def test_two_processes_equal_one_on_the_whole_meta_batch(tmp_path):
    names = ["maml", "fomaml", "reptile", "protonet", "matching", "protonet_bn", "protonet_conv"]
    result = _torchrun("equivalence", str(tmp_path), *names)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(RANKS)]
    for name in names:
        # every rank ends with the same parameters and batch-norm buffers
        _assert_same_parameters(ranks[1][name]["state"], ranks[0][name]["state"])
        if name == "protonet_bn":
            continue  # batch statistics over each rank's slice: not one process's (documented)
        learner, history = _train(name, distributed_run=False)
        start = dict(_setup(name)[0].state_dict())
        moved = max(float((learner.state_dict()[k] - start[k]).abs().max()) for k in start)
        assert moved > 1e-3, f"{name}: training did not move the parameters; the comparison would be vacuous"
        _assert_same_parameters(ranks[0][name]["state"], learner.state_dict())
        torch.testing.assert_close(ranks[0][name]["loss"], torch.tensor([h["loss"] for h in history]),
                                   rtol=1e-5, atol=1e-6)


def test_resume_after_a_rank_is_killed_matches_an_uninterrupted_run(tmp_path):
    checkpoint = tmp_path / "ckpt.pt"
    # rank 1 dies drawing the tasks of step 5, after the checkpoint of step 3
    killed = _torchrun("resume", str(tmp_path), str(checkpoint), "6", "5")
    assert killed.returncode != 0
    assert int(torch.load(checkpoint, weights_only=True)["step"]) == 3
    assert not (tmp_path / "rank0.pt").exists()
    resumed = _torchrun("resume", str(tmp_path), str(checkpoint), "6", "0")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert int(torch.load(checkpoint, weights_only=True)["step"]) == 6
    uninterrupted = _train_with_checkpoint(None, 6, distributed_run=False).state_dict()
    for r in range(RANKS):
        _assert_same_parameters(torch.load(tmp_path / f"rank{r}.pt", weights_only=True), uninterrupted)


def test_single_process_resume_continues_the_task_sequence(tmp_path):
    checkpoint = tmp_path / "ckpt.pt"
    _train_with_checkpoint(checkpoint, 6, distributed_run=False, stop_at=3)
    assert int(torch.load(checkpoint, weights_only=True)["step"]) == 3
    resumed = _train_with_checkpoint(checkpoint, 6, distributed_run=False)
    uninterrupted = _train_with_checkpoint(None, 6, distributed_run=False)
    for key, value in uninterrupted.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_distributed_without_a_process_group_says_to_use_torchrun(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    learner, tasks, _ = _setup("maml")
    with pytest.raises(RuntimeError, match="torchrun"):
        meta_train(learner, tasks, steps=1, meta_batch=2, distributed=True)
    with pytest.raises(RuntimeError, match="torchrun"):
        distributed.init_from_env("cpu")


@pytest.mark.parametrize("meta_batch,world", [(5, 2), (8, 2), (7, 3), (4, 4), (32, 5)])
def test_shards_are_contiguous_balanced_and_cover_the_meta_batch(meta_batch, world):
    shards = [distributed.shard(meta_batch, r, world) for r in range(world)]
    assert shards[0].start == 0 and shards[-1].stop == meta_batch
    assert all(a.stop == b.start for a, b in zip(shards, shards[1:]))
    sizes = [s.stop - s.start for s in shards]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_a_meta_batch_smaller_than_the_world_is_an_error():
    with pytest.raises(ValueError, match="meta_batch=1 is smaller than the 2 processes"):
        distributed.shard(1, 0, 2)


def test_both_coordinators_of_meta_train_have_the_same_methods():
    def methods(cls):
        return {name for name in vars(cls) if not name.startswith("_") and callable(getattr(cls, name))}

    assert methods(SingleProcess) == methods(distributed.DistributedCoordinator)
    assert methods(SingleProcess) == {"begin", "my_tasks", "average", "decide", "wait"}
    assert SingleProcess.is_main


def test_outside_a_launch_this_process_is_the_main_one():
    assert distributed.is_main_process() and distributed.rank() == 0 and distributed.world_size() == 1


if __name__ == "__main__":
    _worker(sys.argv[1:])
