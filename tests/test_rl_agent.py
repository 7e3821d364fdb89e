"""The RL^2 agent, GAE, PPO updates, persistence and the CLI's checks."""

import argparse
import pickle
import re

import pytest
import torch

from autometa.rl import (BernoulliBandits, RL2Agent, RL2Config, TabularMDPs, evaluate_agent, gae, ppo_update,
                         rollout, train_rl2)
from autometa.apps.cli import main


def _agent(tasks=None, **kwargs):
    torch.manual_seed(0)
    return RL2Agent((tasks or BernoulliBandits(3, 4)).spec(), hidden_size=16, **kwargs)


def test_gae_against_a_hand_computation():
    rewards = torch.tensor([[1.0, 0.0, 2.0]])
    values = torch.tensor([[0.5, 1.0, 1.5]])
    gamma, lam = 0.9, 0.8
    d2 = 2.0 - 1.5                       # last step: the trial ends, no bootstrap
    d1 = 0.0 + gamma * 1.5 - 1.0
    d0 = 1.0 + gamma * 1.0 - 0.5
    a2 = d2
    a1 = d1 + gamma * lam * a2
    a0 = d0 + gamma * lam * a1
    advantages, returns = gae(rewards, values, gamma, lam)
    torch.testing.assert_close(advantages, torch.tensor([[a0, a1, a2]]))
    torch.testing.assert_close(returns, advantages + values)
    # lambda = 1, gamma = 1: advantages are rewards-to-go minus values
    advantages, returns = gae(rewards, values, 1.0, 1.0)
    torch.testing.assert_close(returns, torch.tensor([[3.0, 2.0, 2.0]]))
    with pytest.raises(ValueError, match="shape"):
        gae(rewards, values[:, :2], 0.9, 0.8)


def test_encode_layout():
    agent = _agent(TabularMDPs(2, n_states=3, n_actions=2, episode_length=2))
    x = agent.encode(torch.tensor([2, 0]), torch.tensor([-1, 1]), torch.tensor([0.0, 1.5]),
                     torch.tensor([False, True]), 1)
    # one-hot state (3), one-hot previous action (2, none at the start), reward, done, time
    torch.testing.assert_close(x, torch.tensor([[0, 0, 1, 0, 0, 0.0, 0, 0.25], [1, 0, 0, 0, 1, 1.5, 1, 0.25]]))
    assert agent.input_size == 8


def test_hidden_state_carries_across_episodes_within_a_trial():
    agent = _agent(TabularMDPs(2, n_states=3, n_actions=2, episode_length=2))
    trials = rollout(agent, agent.tasks.sample(2, generator=torch.Generator().manual_seed(0)))
    inputs = trials.inputs.clone()
    logits, _, _ = agent(inputs)
    inputs[:, 1, 5] += 3.0  # change one reward of the first episode
    changed, _, _ = agent(inputs)
    assert not torch.allclose(logits[:, 3], changed[:, 3])  # still remembered in the second episode
    torch.testing.assert_close(logits[:, 0], changed[:, 0])


def test_rollout_shapes_and_recomputation():
    agent = _agent()
    trials = rollout(agent, agent.tasks.sample(5, generator=torch.Generator().manual_seed(1)),
                     torch.Generator().manual_seed(2))
    assert trials.inputs.shape == (5, 4, agent.input_size) and trials.rewards.shape == (5, 4)
    # re-running the stored inputs from a zero state reproduces the rollout's log-probabilities
    logits, values, _ = agent(trials.inputs)
    log_p = torch.log_softmax(logits, -1).gather(2, trials.actions[..., None]).squeeze(-1)
    torch.testing.assert_close(log_p, trials.log_probs)
    torch.testing.assert_close(values, trials.values)


def test_ppo_update_moves_the_policy():
    agent = _agent()
    trials = rollout(agent, agent.tasks.sample(32, generator=torch.Generator().manual_seed(1)))
    before = [p.detach().clone() for p in agent.parameters()]
    optimizer = torch.optim.Adam(agent.parameters(), lr=1e-2)
    metrics = ppo_update(agent, optimizer, trials, RL2Config(epochs=2, minibatches=2), 0.01)
    assert set(metrics) == {"policy_loss", "value_loss", "entropy", "clip_fraction", "approx_kl",
                            "explained_variance", "epochs"}
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.parameters()))


def test_config_validation():
    for bad in (dict(gamma=1.5), dict(trials_per_batch=0), dict(minibatches=10, trials_per_batch=4), dict(lr=0),
                dict(entropy_coef=-1)):
        with pytest.raises(ValueError):
            RL2Config(**bad).validate()
    with pytest.raises(ValueError, match="iterations, time_budget"):
        train_rl2(BernoulliBandits(2, 2))
    with pytest.raises(TypeError):
        RL2Agent(BernoulliBandits(2, 2))


def test_save_load_roundtrip(tmp_path):
    agent, _ = train_rl2(BernoulliBandits(3, 4), RL2Config(hidden_size=8, trials_per_batch=8, minibatches=2),
                         iterations=2, seed=1)
    agent.save(tmp_path / "agent.pt", training=agent.training_summary)
    loaded = RL2Agent.load(tmp_path / "agent.pt")
    assert loaded.config == agent.config and loaded.training_summary["iterations"] == 2
    for (k, v), (k2, v2) in zip(agent.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    batch = agent.tasks.sample(50, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(evaluate_agent(agent, batch, seed=3), evaluate_agent(loaded, batch, seed=3))
    # plain data only: the file loads with weights_only=True, and no temporary file is left behind
    assert torch.load(tmp_path / "agent.pt", weights_only=True)["format"] == "autometa.rl2"
    assert [p.name for p in tmp_path.iterdir()] == ["agent.pt"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="rl2 train"):
        RL2Agent.load(tmp_path / "missing.pt")
    good = tmp_path / "good.pt"
    _agent().save(good)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable autometa RL.2 agent file"):
        RL2Agent.load(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="not an autometa RL.2 agent file"):
        RL2Agent.load(foreign)
    unsafe = tmp_path / "unsafe.pt"
    unsafe.write_bytes(pickle.dumps(argparse.Namespace(a=1)))
    with pytest.raises(ValueError, match="not a readable"):
        RL2Agent.load(unsafe)
    payload = torch.load(good, weights_only=True)
    payload["version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="format version 99"):
        RL2Agent.load(tmp_path / "future.pt")
    payload["version"] = 1
    payload["state_dict"] = {"gru.weight_ih_l0": torch.zeros(1)}
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="inconsistent"):
        RL2Agent.load(tmp_path / "mismatch.pt")


def test_play_gym_env():
    pytest.importorskip("gymnasium")
    from autometa.rl.envs import BernoulliBanditEnv, TabularMDPEnv

    total = _agent().play_gym(BernoulliBanditEnv(3, 4), seed=0)
    assert total in (0, 1, 2, 3, 4)
    mdp_agent = _agent(TabularMDPs(2, episode_length=3))
    assert isinstance(mdp_agent.play_gym(TabularMDPEnv(2, episode_length=3), seed=0, greedy=True), float)


def _exit_status(argv: str) -> int:
    """The exit status of ``autometa argv``, whether argparse or the command rejects it."""
    try:
        return main(argv.split())
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize("argv, match", [
    ("rl2 train --env bandit --out x.pt --steps 1", "--arms K"),
    ("rl2 train --env bandit --arms 1 --out x.pt --steps 1", "at least 2 arms"),
    ("rl2 train --env bandit --arms 3 --horizon 0 --out x.pt --steps 1", "n_pulls"),
    ("rl2 train --env mdp --arms 3 --out x.pt --steps 1", "bandits only"),
    ("rl2 train --env bandit --arms 3 --out x.pt --steps 0", "--steps"),
    ("rl2 train --env bandit --arms 3 --out x.pt --steps 1 --gamma 2", "gamma"),
    ("rl2 train --env bandit --arms 3 --out x.pt --steps 1 --device tpu", "--device"),
    ("rl2 train --env bandit --arms 3 --out x.pt --steps 1 --threads 0", "--threads"),
    ("rl2 eval --agent missing.pt", "no RL\\^2 agent file"),
    ("rl2 eval --agent missing.pt --trials 1", "--trials"),
])
def test_cli_user_errors(argv, match, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _exit_status(argv) == 2
    err = capsys.readouterr().err
    assert re.search(match, err) and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cli_cuda_missing_is_a_clear_error(tmp_path, capsys):
    assert _exit_status(f"rl2 train --env bandit --arms 3 --out {tmp_path}/a.pt --device cuda") == 2
    err = capsys.readouterr().err
    assert err.startswith("autometa: error: --device: ") and "CUDA is not available" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_and_evaluation_on_cuda():
    agent, _ = train_rl2(TabularMDPs(2), RL2Config(hidden_size=16, trials_per_batch=16), iterations=2, device="cuda")
    assert agent.device.type == "cuda"
    totals = evaluate_agent(agent, agent.tasks.sample(20))
    assert totals.device.type == "cpu" and totals.shape == (20,)


def test_batched_training_does_not_import_gymnasium():
    import subprocess
    import sys

    code = ("import sys, torch; import autometa.rl as rl; "
            "rl.train_rl2(rl.BernoulliBandits(2, 2), rl.RL2Config(hidden_size=4, trials_per_batch=4, minibatches=1), "
            "iterations=1); assert 'gymnasium' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
