"""Baselines for random tabular MDPs: exact values and vectorised posterior sampling.

All run on a whole batch of MDPs at once in numpy, with the prior the tasks
are drawn from: a flat Dirichlet on each transition distribution and N(1, 1)
on each mean reward (the reward noise, N(0, 1), is known).

References
----------
Osband, Russo and Van Roy (2013), (More) Efficient Reinforcement Learning via
Posterior Sampling (PSRL). Duan et al. (2016), RL^2, section 4.2.
"""

from __future__ import annotations

import numpy as np

from autometa._common import check_int
from autometa.rl.stats import PolicyResult


def plan(transitions: np.ndarray, reward_means: np.ndarray, episode_length: int) -> np.ndarray:
    """Optimal finite-horizon Q-values of a batch of MDPs.

    Parameters
    ----------
    transitions : ndarray of shape (n, S, A, S)
    reward_means : ndarray of shape (n, S, A)
    episode_length : int

    Returns
    -------
    ndarray of shape (n, episode_length, S, A)
        ``q[:, h]`` values taking each action at step ``h`` of the episode.
    """
    q = np.empty((transitions.shape[0], episode_length) + reward_means.shape[1:])
    value = np.zeros(reward_means.shape[:2])
    for h in range(episode_length - 1, -1, -1):
        q[:, h] = reward_means + np.einsum("nsat,nt->nsa", transitions, value)
        value = q[:, h].max(-1)
    return q


def policy_value(transitions: np.ndarray, reward_means: np.ndarray, episode_length: int,
                 policy: np.ndarray | None = None) -> np.ndarray:
    """Exact expected return of one episode from a uniformly random start state.

    ``policy`` of shape (n, episode_length, S, A) gives action probabilities;
    None means the optimal policy (the value an agent that knows the MDP earns).
    """
    if policy is None:
        return plan(transitions, reward_means, episode_length)[:, 0].max(-1).mean(-1)
    value = np.zeros(reward_means.shape[:2])
    for h in range(episode_length - 1, -1, -1):
        q = reward_means + np.einsum("nsat,nt->nsa", transitions, value)
        value = (policy[:, h] * q).sum(-1)
    return value.mean(-1)


def simulate_posterior_policy(transitions: np.ndarray, reward_means: np.ndarray, n_episodes: int,
                              episode_length: int, rng: np.random.Generator, sample: bool = True) -> np.ndarray:
    """Total reward per trial of PSRL (``sample=True``) or of certainty equivalence
    (``sample=False``: plan in the posterior-mean MDP, the greedy policy).

    Before each episode, draw one MDP from the posterior (or take its mean),
    plan in it, and follow that plan for the episode.
    """
    n, n_states, n_actions, _ = transitions.shape
    counts = np.zeros_like(transitions)
    reward_sums = np.zeros_like(reward_means)
    visits = np.zeros_like(reward_means)
    rows = np.arange(n)
    cumulative = transitions.cumsum(-1)
    totals = np.zeros(n)
    for _ in range(n_episodes):
        precision = 1.0 + visits  # prior N(1, 1), unit noise
        posterior_mean = (1.0 + reward_sums) / precision
        if sample:
            model_p = rng.gamma(1.0 + counts)
            model_p /= model_p.sum(-1, keepdims=True)
            model_r = posterior_mean + rng.standard_normal(posterior_mean.shape) / np.sqrt(precision)
        else:
            model_p = (1.0 + counts) / (n_states + counts.sum(-1, keepdims=True))
            model_r = posterior_mean
        q = plan(model_p, model_r, episode_length)
        state = rng.integers(n_states, size=n)
        for h in range(episode_length):
            action = q[rows, h, state].argmax(-1)
            reward = reward_means[rows, state, action] + rng.standard_normal(n)
            u = rng.random((n, 1))
            next_state = np.minimum((cumulative[rows, state, action] < u).sum(-1), n_states - 1)
            counts[rows, state, action, next_state] += 1
            reward_sums[rows, state, action] += reward
            visits[rows, state, action] += 1
            totals += reward
            state = next_state
    return totals


def mdp_baselines(transitions: np.ndarray, reward_means: np.ndarray, n_episodes: int, episode_length: int = 10,
                  seed: int = 0) -> list[PolicyResult]:
    """Baselines on a batch of MDPs, side by side.

    Random and the oracle (which knows the MDP) are exact for each MDP,
    averaged over the MDPs; greedy (certainty equivalence) and PSRL are
    simulated.

    Parameters
    ----------
    transitions : ndarray of shape (n_trials, S, A, S)
    reward_means : ndarray of shape (n_trials, S, A)
    n_episodes : int
        Episodes per trial.
    episode_length : int, default=10
    seed : int, default=0

    Returns
    -------
    list of PolicyResult
    """
    transitions = np.asarray(transitions, dtype=np.float64)
    reward_means = np.asarray(reward_means, dtype=np.float64)
    if transitions.ndim != 4 or reward_means.shape != transitions.shape[:3] or transitions.shape[0] < 2:
        raise ValueError(f"need transitions (n >= 2, S, A, S) and reward_means (n, S, A), got "
                         f"{transitions.shape} and {reward_means.shape}")
    check_int(n_episodes, "n_episodes")
    check_int(episode_length, "episode_length")
    rng = np.random.default_rng(seed)
    n, _, n_actions, _ = transitions.shape
    uniform = np.full((n, episode_length) + reward_means.shape[1:], 1.0 / n_actions)
    random_value = n_episodes * policy_value(transitions, reward_means, episode_length, uniform)
    oracle_value = n_episodes * policy_value(transitions, reward_means, episode_length)
    return [
        PolicyResult.from_totals("random", random_value, "exact per MDP"),
        PolicyResult.from_totals("greedy", simulate_posterior_policy(
            transitions, reward_means, n_episodes, episode_length, rng, sample=False), "posterior-mean MDP"),
        PolicyResult.from_totals("PSRL", simulate_posterior_policy(
            transitions, reward_means, n_episodes, episode_length, rng, sample=True), "posterior sampling"),
        PolicyResult.from_totals("oracle (MDP known)", oracle_value, "exact per MDP"),
    ]
