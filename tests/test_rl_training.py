"""RL^2 end to end: a trained agent beats Thompson sampling and UCB1; the CLI runs."""

import re

import numpy as np
import torch

from autometa.rl import BernoulliBandits, RL2Config, TabularMDPs, evaluate_agent, train_rl2
from autometa.rl.baselines import reward_table, simulate, thompson_policy, ucb1_policy
from autometa.apps.cli import main


def test_rl2_beats_thompson_sampling_and_ucb1_on_5_armed_bandits():
    bandits = BernoulliBandits(n_arms=5, n_pulls=10)
    agent, history = train_rl2(bandits, RL2Config(), iterations=200, seed=0)
    assert history[-1]["entropy"] < history[0]["entropy"]
    batch = bandits.sample(5000, generator=torch.Generator().manual_seed(123))
    rl2 = evaluate_agent(agent, batch, seed=0).double().numpy()
    rewards = reward_table(batch.probs.numpy(), 10, np.random.default_rng(0))
    thompson = simulate(thompson_policy, rewards, np.random.default_rng(1))
    ucb1 = simulate(ucb1_policy(1.0), rewards, np.random.default_rng(2))
    # paired on the same bandits: the gap must exceed ~3 standard errors of the differences
    for baseline in (thompson, ucb1):
        diff = rl2 - baseline
        assert diff.mean() > 3 * diff.std() / np.sqrt(diff.size), (rl2.mean(), baseline.mean())
    assert rl2.mean() > 6.2


def test_mdp_training_runs():
    tasks = TabularMDPs(n_episodes=2)
    agent, history = train_rl2(tasks, RL2Config(hidden_size=32, trials_per_batch=64), iterations=5, seed=0)
    assert len(history) == 5 and all(np.isfinite(list(h.values())).all() for h in history)
    assert agent.training_summary["env_steps"] == 5 * 64 * 20
    totals = evaluate_agent(agent, tasks.sample(500, generator=torch.Generator().manual_seed(1)))
    assert totals.shape == (500,)
    # random play earns 20 on average; nothing can earn much more than an agent that knows the MDP (~27)
    assert 15.0 < float(totals.mean()) < 30.0


def test_cli_train_then_eval(tmp_path, capsys):
    out = tmp_path / "agent.pt"
    assert main(f"rl2 train --env bandit --arms 3 --horizon 5 --out {out} --steps 2 "
                "--trials-per-batch 16 --hidden-size 16 --quiet".split()) == 0
    assert out.is_file() and "saved" in capsys.readouterr().out
    assert main(f"rl2 eval --agent {out} --trials 300 --seed 1 --device cpu".split()) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"RL2 mean total reward: \d+\.\d{3} \+- \d+\.\d{3}", lines[-1])
    assert any(line.startswith("Thompson sampling") for line in lines)
    assert any(line.startswith("Bayes-optimal") for line in lines)
