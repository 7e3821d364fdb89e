"""Baselines for Bernoulli bandits: exact values and vectorised Monte Carlo.

Every Monte Carlo policy here runs on a whole batch of bandits at once in
numpy, with a Beta(1, 1) prior on each arm where it uses one. Rewards come
from a table drawn once per evaluation (``reward_table``): the j-th pull of
arm a of trial i always pays ``table[i, j, a]``, whichever policy pulls it,
so policies are compared on common random numbers.

References
----------
Duan et al. (2016), RL^2: Fast Reinforcement Learning via Slow Reinforcement
Learning, section 4.1 and table 1, lists the same baselines.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from autometa._common import check_fraction, check_int
from autometa.rl.stats import PolicyResult

# (successes, pulls, t, rng) -> actions, all arrays of shape (n_trials, n_arms) or (n_trials,)
BanditPolicy = Callable[[np.ndarray, np.ndarray, int, np.random.Generator], np.ndarray]

UCB_GRID = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
EPSILON_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)
GITTINS_GAMMA_GRID = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
MAX_DP_STATES = 3_000_000


def reward_table(probs: np.ndarray, n_pulls: int, rng: np.random.Generator) -> np.ndarray:
    """Bernoulli rewards of shape (n_trials, n_pulls, n_arms): the j-th pull of each arm."""
    probs = np.asarray(probs)
    return rng.random((probs.shape[0], n_pulls, probs.shape[1]), dtype=np.float32) < probs[:, None, :]


def simulate(policy: BanditPolicy, rewards: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Run ``policy`` on every trial of ``rewards`` (from :func:`reward_table`); total reward per trial."""
    n_trials, n_pulls, n_arms = rewards.shape
    successes = np.zeros((n_trials, n_arms), dtype=np.int64)
    pulls = np.zeros((n_trials, n_arms), dtype=np.int64)
    rows = np.arange(n_trials)
    for t in range(n_pulls):
        arms = policy(successes, pulls, t, rng)
        paid = rewards[rows, pulls[rows, arms], arms]
        successes[rows, arms] += paid
        pulls[rows, arms] += 1
    return successes.sum(1).astype(np.float64)


def _argmax_random_ties(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # scores of distinct arms differ by far more than 1e-9 when they differ at all
    return np.argmax(scores + 1e-9 * rng.random(scores.shape), axis=1)


def random_policy(successes, pulls, t, rng):
    """Pull an arm uniformly at random."""
    return rng.integers(successes.shape[1], size=successes.shape[0])


def greedy_policy(successes, pulls, t, rng):
    """Pull the arm of highest posterior mean ``(s + 1) / (n + 2)``, ties at random."""
    return _argmax_random_ties((successes + 1) / (pulls + 2), rng)


def epsilon_greedy_policy(epsilon: float) -> BanditPolicy:
    """With probability ``epsilon`` a random arm, else the greedy one."""
    check_fraction(epsilon, "epsilon")

    def policy(successes, pulls, t, rng):
        explore = rng.random(successes.shape[0]) < epsilon
        return np.where(explore, random_policy(successes, pulls, t, rng), greedy_policy(successes, pulls, t, rng))

    return policy


def thompson_policy(successes, pulls, t, rng):
    """Thompson sampling: pull the arm whose Beta posterior draw is highest."""
    return np.argmax(rng.beta(successes + 1, pulls - successes + 1), axis=1)


def ucb1_policy(c: float) -> BanditPolicy:
    """UCB1 with exploration scale ``c``: each arm once (in random order), then the
    arm maximising ``mean + c * sqrt(2 ln t / n)`` (Auer et al., 2002, is c = 1)."""
    if isinstance(c, bool) or not isinstance(c, (int, float)) or c < 0:
        raise ValueError(f"c must be a non-negative number, got {c!r}")

    def policy(successes, pulls, t, rng):
        tried = np.maximum(pulls, 1)
        scores = successes / tried + c * np.sqrt(2.0 * math.log(max(t, 1)) / tried)
        return _argmax_random_ties(np.where(pulls == 0, np.inf, scores), rng)

    return policy


def gittins_policy(indices: np.ndarray) -> BanditPolicy:
    """Pull the arm of highest Gittins index, looked up in a :func:`gittins_indices` table."""

    def policy(successes, pulls, t, rng):
        return _argmax_random_ties(indices[successes, pulls - successes], rng)

    return policy


def gittins_indices(n_pulls: int, gamma: float, lookahead: int = 300, grid_size: int = 401) -> np.ndarray:
    """Gittins indices of a Bernoulli arm with a Beta(1, 1) prior, discount ``gamma``.

    The index of the arm after ``s`` successes and ``f`` failures is the
    retirement reward ``lam`` (per step) at which retiring at once and playing
    on are equally good. For each ``lam`` on a grid, one backward induction
    over the posterior states gives the value of playing on in every state;
    the index is where that value crosses ``lam / (1 - gamma)``, linearly
    interpolated between grid points. Play is looked ahead ``lookahead`` pulls
    beyond the table, where the posterior is taken as frozen.

    Parameters
    ----------
    n_pulls : int
        The table covers the states with ``s + f < n_pulls``.
    gamma : float
        Discount factor in (0, 1).
    lookahead : int, default=300
    grid_size : int, default=401

    Returns
    -------
    ndarray of shape (n_pulls, n_pulls)
        ``indices[s, f]``; NaN where ``s + f >= n_pulls``.
    """
    check_int(n_pulls, "n_pulls")
    if not 0 < gamma < 1:
        raise ValueError(f"gamma must be in (0, 1), got {gamma!r}")
    check_int(grid_size, "grid_size", 3)
    depth = n_pulls + max(0, int(lookahead))
    lam = np.linspace(0.0, 1.0, grid_size)[:, None]
    retire = lam / (1 - gamma)
    s = np.arange(depth + 1)
    p = (s + 1) / (depth + 2)
    value = np.maximum(lam, p) / (1 - gamma)  # frozen posterior beyond the lookahead
    table = np.full((n_pulls, n_pulls), np.nan)
    for layer in range(depth - 1, -1, -1):
        s = np.arange(layer + 1)
        p = (s + 1) / (layer + 2)
        play = p * (1 + gamma * value[:, 1:layer + 2]) + (1 - p) * gamma * value[:, :layer + 1]
        if layer < n_pulls:
            gap = play - retire  # decreasing in lam; the index is its root
            above = (gap > 0).sum(0)  # grid points below the root
            i = np.clip(above - 1, 0, grid_size - 2)
            g0, g1 = gap[i, s], gap[i + 1, s]
            root = lam[i, 0] + (lam[i + 1, 0] - lam[i, 0]) * g0 / np.where(g0 - g1 == 0, 1, g0 - g1)
            table[s, layer - s] = np.clip(root, 0.0, 1.0)
        value = np.maximum(retire, play)
    return table


def bayes_optimal_value(n_arms: int, n_pulls: int) -> float:
    """Expected total reward of the Bayes-optimal policy, by dynamic programming.

    Arms have independent Beta(1, 1) priors (probabilities U[0, 1]). For two
    arms the induction runs on dense arrays; otherwise on the multisets of arm
    posteriors (arms are exchangeable), which is feasible for small problems
    only (k = 5, n = 10 takes about a second).

    Raises
    ------
    ValueError
        When the state space is too large to enumerate.
    """
    check_int(n_arms, "n_arms", 2, hint="a bandit needs at least 2 arms")
    check_int(n_pulls, "n_pulls", hint="a trial needs at least one pull")
    if n_arms == 2:
        return _two_arm_value(n_pulls)
    states = math.comb(n_pulls + 2 * n_arms, 2 * n_arms) / math.factorial(n_arms)
    if states > MAX_DP_STATES:
        raise ValueError(f"the Bayes-optimal DP for k={n_arms}, n={n_pulls} has ~{states:.1e} states, too many "
                         f"to enumerate; it is exact for k=2 or small k*n (e.g. k=5, n=10)")
    return _multiset_value(n_arms, n_pulls)


def _two_arm_value(n_pulls: int) -> float:
    # value[n1, s1, s2] after t pulls, n1 of them of arm 1 (arm 2 pulled t - n1 times)
    value = np.zeros((n_pulls + 1,) * 3)
    for t in range(n_pulls - 1, -1, -1):
        n1 = np.arange(t + 1)[:, None, None]
        s1 = np.arange(t + 1)[None, :, None]
        s2 = np.arange(t + 1)[None, None, :]
        p1 = (s1 + 1) / (n1 + 2)
        p2 = (s2 + 1) / (t - n1 + 2)
        arm1 = p1 * (1 + value[1:t + 2, 1:t + 2, :t + 1]) + (1 - p1) * value[1:t + 2, :t + 1, :t + 1]
        arm2 = p2 * (1 + value[:t + 1, :t + 1, 1:t + 2]) + (1 - p2) * value[:t + 1, :t + 1, :t + 1]
        value = np.maximum(arm1, arm2)
    return float(value[0, 0, 0])


def _multiset_value(n_arms: int, n_pulls: int) -> float:
    @lru_cache(maxsize=None)
    def value(arms: tuple[tuple[int, int], ...], left: int) -> float:
        if left == 0:
            return 0.0
        best = 0.0
        for i, (s, f) in enumerate(arms):
            if i and arms[i - 1] == (s, f):
                continue  # an identical arm was just evaluated
            p = (s + 1) / (s + f + 2)
            win = tuple(sorted(arms[:i] + ((s + 1, f),) + arms[i + 1:]))
            lose = tuple(sorted(arms[:i] + ((s, f + 1),) + arms[i + 1:]))
            best = max(best, p * (1 + value(win, left - 1)) + (1 - p) * value(lose, left - 1))
        return best

    result = value(((0, 0),) * n_arms, n_pulls)
    value.cache_clear()
    return result


def _tune(make_policy, grid, rewards, rng) -> tuple[float, float]:
    """The grid value whose policy earns the most on ``rewards``, and that mean."""
    means = [simulate(make_policy(x), rewards, np.random.default_rng(rng.integers(2**63))).mean() for x in grid]
    best = int(np.argmax(means))
    return grid[best], float(means[best])


def bandit_baselines(probs: np.ndarray, n_pulls: int, seed: int = 0, tune_trials: int = 2000,
                     exact: bool = True) -> list[PolicyResult]:
    """Every bandit baseline on the bandits ``probs``, side by side.

    Parameters of epsilon-greedy, UCB1 and Gittins are tuned on
    ``tune_trials`` other bandits, then scored on ``probs``.

    Parameters
    ----------
    probs : ndarray of shape (n_trials, n_arms)
        The evaluation bandits' success probabilities.
    n_pulls : int
    seed : int, default=0
    tune_trials : int, default=2000
    exact : bool, default=True
        Add the Bayes-optimal value by DP where the state space allows.

    Returns
    -------
    list of PolicyResult
        Random (exact), greedy, epsilon-greedy, Thompson sampling, UCB1 with
        c = 1 and tuned, Gittins, Bayes-optimal (exact), and the oracle that
        knows the best arm (exact, ``n k / (k + 1)``).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2 or probs.shape[0] < 2:
        raise ValueError(f"probs must have shape (n_trials >= 2, n_arms >= 2), got {probs.shape}")
    check_int(n_pulls, "n_pulls")
    check_int(tune_trials, "tune_trials", 2)
    n_arms = probs.shape[1]
    rng = np.random.default_rng(seed)
    rewards = reward_table(probs, n_pulls, rng)
    tune_rewards = reward_table(rng.random((tune_trials, n_arms)), n_pulls, rng)

    def run(policy):
        return simulate(policy, rewards, np.random.default_rng(rng.integers(2**63)))

    epsilon, _ = _tune(epsilon_greedy_policy, EPSILON_GRID, tune_rewards, rng)
    c, _ = _tune(ucb1_policy, UCB_GRID, tune_rewards, rng)
    gittins_tables = {}

    def gittins_for(gamma):
        if gamma not in gittins_tables:
            gittins_tables[gamma] = gittins_indices(n_pulls, gamma)
        return gittins_policy(gittins_tables[gamma])

    gamma, _ = _tune(gittins_for, GITTINS_GAMMA_GRID, tune_rewards, rng)
    results = [
        PolicyResult("random", n_pulls / 2, None, "n/2"),
        PolicyResult.from_totals("greedy", run(greedy_policy), "posterior mean"),
        PolicyResult.from_totals("epsilon-greedy", run(epsilon_greedy_policy(epsilon)), f"epsilon={epsilon:g} (tuned)"),
        PolicyResult.from_totals("Thompson sampling", run(thompson_policy), "Beta(1,1) prior"),
        PolicyResult.from_totals("UCB1", run(ucb1_policy(1.0)), "c=1"),
        PolicyResult.from_totals("UCB1 (tuned)", run(ucb1_policy(c)), f"c={c:g} (tuned)"),
        PolicyResult.from_totals("Gittins index", run(gittins_for(gamma)), f"gamma={gamma:g} (tuned)"),
    ]
    if exact:
        try:
            results.append(PolicyResult("Bayes-optimal", bayes_optimal_value(n_arms, n_pulls), None, "exact DP"))
        except ValueError:
            pass
    results.append(PolicyResult("oracle (best arm known)", n_pulls * n_arms / (n_arms + 1), None, "n k/(k+1)"))
    return results
