"""The RL^2 task distributions as gymnasium environments (needs ``autometa[rl]``).

One gymnasium episode is one RL^2 *trial*: ``reset`` draws a new task, and
the episode terminates after the trial's last step. The end of each inner
episode (every pull of a bandit; every ``episode_length`` steps of an MDP) is
reported as ``info["episode_end"]``, the done flag an RL^2 agent reads. The
batched torch forms in :mod:`autometa.rl.bandits` and :mod:`autometa.rl.mdp`
draw from the same distributions and are what training uses.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from autometa.rl.bandits import BernoulliBandits
from autometa.rl.mdp import TabularMDPs


class BernoulliBanditEnv(gym.Env):
    """A trial of ``n_pulls`` pulls on a Bernoulli bandit with probabilities ~ U[0, 1].

    Parameters
    ----------
    n_arms : int, default=5
    n_pulls : int, default=10

    Examples
    --------
    >>> env = BernoulliBanditEnv(n_arms=5, n_pulls=10)
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(2)
    >>> reward in (0.0, 1.0), info["episode_end"]
    (True, True)
    """

    metadata = {"render_modes": []}

    def __init__(self, n_arms: int = 5, n_pulls: int = 10):
        self.tasks = BernoulliBandits(n_arms, n_pulls)  # validates
        self.observation_space = spaces.Discrete(1)
        self.action_space = spaces.Discrete(n_arms)
        self.probs = np.full(n_arms, 0.5)
        self._t = n_pulls

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.probs = self.np_random.random(self.tasks.n_arms)
        self._t = 0
        return 0, {"probs": self.probs.copy()}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an arm in 0..{self.tasks.n_arms - 1}, got {action!r}")
        if self._t >= self.tasks.n_pulls:
            raise RuntimeError("the trial is over; call reset()")
        reward = float(self.np_random.random() < self.probs[action])
        self._t += 1
        return 0, reward, self._t >= self.tasks.n_pulls, False, {"episode_end": True}


class TabularMDPEnv(gym.Env):
    """A trial of ``n_episodes`` episodes on a random tabular MDP (RL^2's section 4.2).

    Transition distributions from a flat Dirichlet, mean rewards from
    N(1, 1), rewards with N(0, 1) noise; each episode starts in a uniformly
    random state.

    Parameters
    ----------
    n_episodes : int, default=10
    n_states, n_actions, episode_length : int, default 10, 5, 10
    """

    metadata = {"render_modes": []}

    def __init__(self, n_episodes: int = 10, n_states: int = 10, n_actions: int = 5, episode_length: int = 10):
        self.tasks = TabularMDPs(n_episodes, n_states, n_actions, episode_length)  # validates
        self.observation_space = spaces.Discrete(n_states)
        self.action_space = spaces.Discrete(n_actions)
        self.transitions = np.full((n_states, n_actions, n_states), 1.0 / n_states)
        self.reward_means = np.ones((n_states, n_actions))
        self.state = 0
        self._t = self.tasks.trial_length

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        tasks = self.tasks
        self.transitions = self.np_random.dirichlet(np.ones(tasks.n_states), size=(tasks.n_states, tasks.n_actions))
        self.reward_means = 1.0 + self.np_random.standard_normal((tasks.n_states, tasks.n_actions))
        self.state = int(self.np_random.integers(tasks.n_states))
        self._t = 0
        return self.state, {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be in 0..{self.tasks.n_actions - 1}, got {action!r}")
        if self._t >= self.tasks.trial_length:
            raise RuntimeError("the trial is over; call reset()")
        reward = float(self.reward_means[self.state, action] + self.np_random.standard_normal())
        next_state = int(self.np_random.choice(self.tasks.n_states, p=self.transitions[self.state, action]))
        self._t += 1
        episode_end = self._t % self.tasks.episode_length == 0
        self.state = int(self.np_random.integers(self.tasks.n_states)) if episode_end else next_state
        terminated = self._t >= self.tasks.trial_length
        return self.state, reward, terminated, False, {"episode_end": episode_end}
