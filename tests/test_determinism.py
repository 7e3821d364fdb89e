"""The same seed gives the same result, bit for bit, on CPU.

Meta-training each algorithm of :mod:`autometa.meta` twice from the same seed
gives bitwise-equal parameters, in this process and in a fresh one (another
``PYTHONHASHSEED``, so nothing may hang on set or dict-of-object order).
``MetaLearnedSampler`` with the same seed suggests the same parameters on two
fresh studies, also from a fresh process (where its meta-trained surrogate is
not cached but trained anew). Both sides use one torch thread: reductions
split over threads may round differently (see ``tests/conftest.py``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import torch

from autometa.meta import MAML, MatchingNet, ProtoNet, Reptile, meta_train
from autometa.tasks import EpisodeSampler, SinusoidTasks

from helpers import small_blobs

optuna.logging.set_verbosity(optuna.logging.WARNING)

ALGORITHMS = ["maml-loop", "maml-vmap", "maml-batched", "fomaml", "reptile", "protonet", "matching"]
STEPS = 3


def train(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny learner meta-trained for a few steps from ``seed``; its state dict."""
    torch.manual_seed(seed)
    sinusoid = {"name": "mlp", "in_features": 1, "out_features": 1, "hidden": [16, 16]}
    embedding = {"name": "mlp", "in_features": 6, "out_features": 8, "hidden": [16]}
    if name.startswith("maml") or name == "fomaml":
        strategy = name.split("-")[1] if "-" in name else "auto"
        learner = MAML(sinusoid, inner_lr=0.01, inner_steps=1, first_order=name == "fomaml", task_type="regression",
                       strategy=strategy)
    elif name == "reptile":
        learner = Reptile(sinusoid, inner_lr=0.02, inner_steps=3, inner_optimizer="adam", task_type="regression")
    elif name == "protonet":
        learner = ProtoNet(embedding)
    else:
        learner = MatchingNet(embedding, fce=True, embedding_dim=8)
    if name in ("protonet", "matching"):
        tasks = EpisodeSampler(*small_blobs(), n_way=3, k_shot=2, n_query=2, random_state=seed)
    else:
        tasks = SinusoidTasks(k_shot=5, n_query=5, random_state=seed)
    meta_train(learner, tasks, steps=STEPS, meta_batch=4, lr=0.01)
    return {key: value.detach().clone() for key, value in learner.state_dict().items()}


def assert_bitwise_equal(first: dict, second: dict, what: str):
    assert first.keys() == second.keys(), what
    for key in first:
        a, b = first[key], second[key]
        assert a.dtype == b.dtype and a.shape == b.shape, f"{what}: {key}"
        # bitwise, NaN included: compare the raw bytes
        assert a.reshape(-1).view(torch.uint8).equal(b.reshape(-1).view(torch.uint8)), (
            f"{what}: {key} differs (max |diff| {float((a.double() - b.double()).abs().max()):.3g})"
        )


@pytest.mark.parametrize("name", ALGORITHMS)
def test_meta_training_twice_from_one_seed_is_bitwise_equal(name):
    first, second = train(name), train(name)
    assert_bitwise_equal(first, second, name)
    other_seed = train(name, seed=1)
    assert any(not first[k].equal(other_seed[k]) for k in first), f"{name}: the seed changes nothing"


FRESH = textwrap.dedent(
    """
    import json, sys, torch
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[1])
    import test_determinism as t
    out = {name: {k: v.double().flatten().tolist() for k, v in t.train(name).items()} for name in t.ALGORITHMS}
    out["sampler"] = t.sampler_params(*t.SAMPLER_RUN)
    print(json.dumps(out))
    """
)


# -- the sampler ---------------------------------------------------------------
SAMPLER_RUN = (0, 20)  # seed, trials


def _objective(trial, shift):
    x = trial.suggest_float("x", -5.0, 5.0)
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    depth = trial.suggest_int("depth", 1, 8)
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    return (x - shift) ** 2 + math.log10(lr) ** 2 / 10 + abs(depth - 4) / 4 + (kind != "b")


def _knowledge_base():
    from autometa.hpo import KnowledgeBase

    studies = []
    for seed in range(4):
        study = optuna.create_study(study_name=f"earlier-{seed}", sampler=optuna.samplers.RandomSampler(seed=seed))
        study.optimize(lambda trial: _objective(trial, 0.5 * seed), n_trials=15)
        studies.append(study)
    return KnowledgeBase.from_studies(studies)


def sampler_params(seed: int, n_trials: int) -> list[dict]:
    """The parameters a fresh study gets from a fresh ``MetaLearnedSampler(seed=seed)``."""
    from autometa.hpo import MetaLearnedSampler

    sampler = MetaLearnedSampler(_knowledge_base(), n_warm_start=5, seed=seed, meta_train_steps=20, n_candidates=64)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda trial: _objective(trial, 1.2), n_trials=n_trials)
    return [trial.params for trial in study.trials]


def test_sampler_with_one_seed_suggests_the_same_parameters_in_two_fresh_studies():
    first, second = sampler_params(*SAMPLER_RUN), sampler_params(*SAMPLER_RUN)
    assert len(first) == SAMPLER_RUN[1]
    assert first == second
    assert sampler_params(1, SAMPLER_RUN[1]) != first, "the seed changes nothing"


def test_a_fresh_process_with_another_hash_seed_gets_the_same_results():
    """Also trains the sampler's surrogate anew: this process has it cached."""
    env = {**os.environ, "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", FRESH, str(Path(__file__).parent)], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ALGORITHMS:
        here = train(name)
        for key, value in here.items():
            # float64 holds every float32 exactly: equal lists mean equal bits (NaN aside)
            assert value.double().flatten().tolist() == fresh[name][key], f"{name}: {key} differs in a fresh process"
    assert fresh["sampler"] == sampler_params(*SAMPLER_RUN)
