"""An RL^2 agent against the baselines, on the same tasks."""

from __future__ import annotations

import torch

from autometa._common import check_int
from autometa.rl.agent import RL2Agent
from autometa.rl.bandits import BernoulliBandits
from autometa.rl.baselines import bandit_baselines
from autometa.rl.mdp_planning import mdp_baselines
from autometa.rl.ppo import evaluate_agent
from autometa.rl.stats import PolicyResult


def compare(agent: RL2Agent, n_trials: int = 10_000, seed: int = 0, greedy: bool = False,
            baselines: bool = True) -> list[PolicyResult]:
    """Score ``agent`` and the baselines of its task distribution on ``n_trials`` tasks.

    The tasks are drawn once (on the CPU, from ``seed``), so every policy
    faces the same bandits or MDPs. The agent plays on its own device.

    Parameters
    ----------
    agent : RL2Agent
    n_trials : int, default=10000
    seed : int, default=0
    greedy : bool, default=False
        Let the agent take its most probable action rather than sample.
    baselines : bool, default=True
        False scores the agent alone.

    Returns
    -------
    list of PolicyResult
        The baselines, then ``"RL2"`` last.
    """
    check_int(n_trials, "n_trials", 2, hint="a confidence interval needs at least 2 trials")
    tasks = agent.tasks
    batch = tasks.sample(n_trials, generator=torch.Generator().manual_seed(seed))
    results: list[PolicyResult] = []
    if baselines and isinstance(tasks, BernoulliBandits):
        results = bandit_baselines(batch.probs.numpy(), tasks.n_pulls, seed=seed)
    elif baselines:
        results = mdp_baselines(batch.transitions.numpy(), batch.reward_means.numpy(), tasks.n_episodes,
                                tasks.episode_length, seed=seed)
    with torch.no_grad():
        totals = evaluate_agent(agent, batch, seed=seed, greedy=greedy)
    results.append(PolicyResult.from_totals("RL2", totals.double().numpy(),
                                            "greedy actions" if greedy else "sampled actions"))
    return results


def format_results(results: list[PolicyResult]) -> str:
    """The results as an aligned table, one policy a line."""
    width = max(len(r.name) for r in results) + 2
    header = f"{'policy':<{width}} {'mean':>9} {'95% CI':>9}  notes"
    return "\n".join([header] + [r.format(width) for r in results])
