"""Baselines for RL^2: exact dynamic programming, Gittins indices, Monte Carlo policies."""

import math

import numpy as np
import pytest
import torch

from autometa.rl import TabularMDPs, bandit_baselines, bayes_optimal_value, gittins_indices, mdp_baselines, mean_ci
from autometa.rl.baselines import (_multiset_value, epsilon_greedy_policy, gittins_policy, greedy_policy,
                                   random_policy, reward_table, simulate, thompson_policy, ucb1_policy)
from autometa.rl.mdp_planning import plan, policy_value, simulate_posterior_policy


def test_bayes_optimal_values_of_the_rl2_paper():
    assert round(bayes_optimal_value(5, 10), 3) == 6.660
    assert round(bayes_optimal_value(2, 100), 2) == 64.92


def test_two_dp_implementations_agree():
    for n in (1, 2, 5, 12):
        assert bayes_optimal_value(2, n) == pytest.approx(_multiset_value(2, n), abs=1e-12)


def test_bayes_optimal_small_cases_by_hand():
    # one pull: any arm pays 1/2. Two pulls of two arms: 1/2, then the same arm (2/3) after a
    # success, the other arm (1/2) after a failure
    assert bayes_optimal_value(3, 1) == pytest.approx(0.5)
    assert bayes_optimal_value(2, 2) == pytest.approx(0.5 + 0.5 * 2 / 3 + 0.5 * 0.5)


def test_dp_refuses_huge_state_spaces_and_bad_input():
    with pytest.raises(ValueError, match="too many"):
        bayes_optimal_value(10, 100)
    with pytest.raises(ValueError, match="at least 2 arms"):
        bayes_optimal_value(1, 10)
    with pytest.raises(ValueError, match="n_pulls"):
        bayes_optimal_value(2, 0)


def _gittins_by_bisection(s, f, gamma, depth):
    """One state's index, by bisection on a scalar stopping problem (independent of the table code)."""
    def play_value(lam):
        retire = lam / (1 - gamma)
        value = {k: max(lam, (s + k + 1) / (s + f + depth + 2)) / (1 - gamma) for k in range(depth + 1)}
        for d in range(depth - 1, -1, -1):
            new = {}
            for k in range(d + 1):
                p = (s + k + 1) / (s + f + d + 2)
                new[k] = p * (1 + gamma * value[k + 1]) + (1 - p) * gamma * value[k]
                if d > 0:
                    new[k] = max(retire, new[k])
            value = new
        return value[0] - retire

    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if play_value(mid) > 0 else (lo, mid)
    return lo


def test_gittins_indices_match_published_values_and_a_bisection():
    # Gittins (1979) tables, Beta(1, 1) prior: 0.7029 at gamma 0.9, 0.8699 at gamma 0.99
    assert gittins_indices(5, 0.9)[0, 0] == pytest.approx(0.7029, abs=2e-4)
    assert gittins_indices(5, 0.99)[0, 0] == pytest.approx(0.8699, abs=2e-4)
    table = gittins_indices(6, 0.8, lookahead=60)
    for s, f in [(0, 0), (2, 1), (0, 4), (3, 2)]:
        assert table[s, f] == pytest.approx(_gittins_by_bisection(s, f, 0.8, 60 + 6 - s - f), abs=2e-4)
    assert np.isnan(table[3, 3])
    # an index exceeds the posterior mean and grows with successes
    s, f = np.meshgrid(np.arange(6), np.arange(6), indexing="ij")
    valid = s + f < 6
    assert np.all(table[valid] >= ((s + 1) / (s + f + 2))[valid] - 1e-9)
    assert np.all(np.diff(table[:3, 0]) > 0)
    with pytest.raises(ValueError, match="gamma"):
        gittins_indices(5, 1.0)


def test_monte_carlo_policies_rank_sensibly():
    rng = np.random.default_rng(0)
    probs = rng.random((3000, 5))
    rewards = reward_table(probs, 10, rng)
    mean = {name: simulate(policy, rewards, np.random.default_rng(1)).mean() for name, policy in [
        ("random", random_policy), ("greedy", greedy_policy), ("thompson", thompson_policy),
        ("ucb1", ucb1_policy(1.0)), ("eps", epsilon_greedy_policy(0.1)),
        ("gittins", gittins_policy(gittins_indices(10, 0.7)))]}
    assert abs(mean["random"] - 5.0) < 0.15
    assert mean["random"] < mean["ucb1"] < mean["thompson"] < mean["greedy"]
    assert mean["eps"] < mean["greedy"]
    assert mean["gittins"] > mean["thompson"]
    # no policy beats the Bayes-optimal value beyond Monte Carlo noise
    assert max(mean.values()) < bayes_optimal_value(5, 10) + 0.1


def test_bandit_baselines_table():
    probs = np.random.default_rng(3).random((2000, 5))
    results = {r.name: r for r in bandit_baselines(probs, 10, seed=0, tune_trials=500)}
    assert set(results) == {"random", "greedy", "epsilon-greedy", "Thompson sampling", "UCB1", "UCB1 (tuned)",
                            "Gittins index", "Bayes-optimal", "oracle (best arm known)"}
    assert results["Bayes-optimal"].half_width is None
    assert results["Bayes-optimal"].mean == pytest.approx(6.660, abs=5e-4)
    assert results["oracle (best arm known)"].mean == pytest.approx(10 * 5 / 6)
    assert results["UCB1"].detail == "c=1"
    assert results["Thompson sampling"].mean < results["Gittins index"].mean < results["oracle (best arm known)"].mean
    # no exact DP for a large problem: the line is left out, not an error
    names = [r.name for r in bandit_baselines(np.random.default_rng(0).random((50, 10)), 100, tune_trials=20)]
    assert "Bayes-optimal" not in names and "Gittins index" in names
    with pytest.raises(ValueError, match="probs"):
        bandit_baselines(np.ones(5), 10)


def test_mean_ci():
    mean, half = mean_ci([1.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(12.7062047 * math.sqrt(2) / math.sqrt(2))  # Student t, 1 dof
    mean, half = mean_ci([1.0])
    assert mean == 1.0 and math.isnan(half)
    with pytest.raises(ValueError):
        mean_ci([])


def _random_mdps(n, seed=0, states=4, actions=3):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(states), size=(n, states, actions)), 1 + rng.standard_normal((n, states, actions))


def test_planning_matches_brute_force_over_deterministic_policies():
    p, r = _random_mdps(1, states=2, actions=2)
    best = -np.inf
    for bits in range(2 ** 6):  # every policy over 3 steps x 2 states
        policy = np.zeros((1, 3, 2, 2))
        for h in range(3):
            for s in range(2):
                policy[0, h, s, (bits >> (2 * h + s)) & 1] = 1
        best = max(best, policy_value(p, r, 3, policy)[0])
    assert plan(p, r, 3)[0, 0].max(-1).mean() == pytest.approx(best)
    assert policy_value(p, r, 3)[0] == pytest.approx(best)


def test_mdp_baselines_rank_sensibly():
    batch = TabularMDPs(5).sample(600, generator=torch.Generator().manual_seed(0))
    results = {r.name: r for r in mdp_baselines(batch.transitions.numpy(), batch.reward_means.numpy(), 5)}
    assert abs(results["random"].mean - 50) < 2.5
    assert results["random"].mean < results["PSRL"].mean < results["oracle (MDP known)"].mean
    assert results["random"].mean < results["greedy"].mean < results["oracle (MDP known)"].mean


def test_psrl_simulation_is_exact_for_a_known_mdp():
    # with one action, every policy is the same: the simulated mean matches the exact value
    p, r = _random_mdps(4000, states=3, actions=1)
    totals = simulate_posterior_policy(p, r, 2, 4, np.random.default_rng(0))
    exact = 2 * policy_value(p, r, 4)
    assert abs(totals.mean() - exact.mean()) < 3 * totals.std() / np.sqrt(4000)
