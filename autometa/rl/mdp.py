"""Random tabular MDPs as a task distribution, batched in torch.

As in RL^2 (Duan et al., 2016, section 4.2): ``n_states = 10`` states,
``n_actions = 5`` actions, episodes of ``episode_length = 10`` steps. A task
draws each transition distribution ``P(. | s, a)`` from a flat Dirichlet and
each mean reward ``mu(s, a)`` from N(1, 1); a reward is ``mu(s, a)`` plus
N(0, 1) noise. Every episode starts in a state drawn uniformly at random. A
trial is ``n_episodes`` episodes of one task.
"""

from __future__ import annotations

import torch

from autometa._common import check_int


class TabularMDPs:
    """The distribution of random tabular MDPs, ``n_episodes`` episodes a trial.

    Parameters
    ----------
    n_episodes : int
        Episodes per trial, at least 1.
    n_states, n_actions, episode_length : int, default 10, 5, 10
        The paper's sizes.

    Attributes
    ----------
    n_observations : int
        ``n_states`` (observations are state indices, one-hot for the agent).
    trial_length : int
        Agent steps per trial: ``n_episodes * episode_length``.

    Examples
    --------
    >>> import torch
    >>> mdps = TabularMDPs(n_episodes=2)
    >>> batch = mdps.sample(3, generator=torch.Generator().manual_seed(0))
    >>> state = batch.reset()
    >>> state, reward, done = batch.step(torch.zeros(3, dtype=torch.long))
    >>> batch.transitions.shape
    torch.Size([3, 10, 5, 10])
    """

    kind = "mdp"

    def __init__(self, n_episodes: int, n_states: int = 10, n_actions: int = 5, episode_length: int = 10):
        check_int(n_episodes, "n_episodes", hint="a trial needs at least one episode")
        check_int(n_states, "n_states", 2)
        check_int(n_actions, "n_actions", 2)
        check_int(episode_length, "episode_length")
        self.n_episodes = n_episodes
        self.n_states = n_states
        self._n_actions = n_actions
        self.episode_length = episode_length

    @property
    def n_actions(self) -> int:
        return self._n_actions

    @property
    def n_observations(self) -> int:
        return self.n_states

    @property
    def trial_length(self) -> int:
        return self.n_episodes * self.episode_length

    @property
    def horizon(self) -> int:
        """The trial's length in the unit the CLI's ``--horizon`` uses: episodes."""
        return self.n_episodes

    def spec(self) -> dict:
        """JSON-able description, enough to rebuild this distribution."""
        return {"env": "mdp", "horizon": self.n_episodes, "n_states": self.n_states,
                "n_actions": self.n_actions, "episode_length": self.episode_length}

    def sample(self, n_trials: int, *, generator: torch.Generator | None = None, device="cpu") -> "MDPBatch":
        """Draw ``n_trials`` MDPs; ``generator`` must live on ``device``."""
        check_int(n_trials, "n_trials")
        shape = (n_trials, self.n_states, self.n_actions)
        # a flat Dirichlet is a normalised vector of Exp(1) draws
        exponentials = -torch.log1p(-torch.rand(*shape, self.n_states, generator=generator, device=device))
        transitions = exponentials / exponentials.sum(-1, keepdim=True)
        reward_means = 1.0 + torch.randn(*shape, generator=generator, device=device)
        return MDPBatch(transitions, reward_means, self.n_episodes, self.episode_length, generator=generator)

    def __repr__(self) -> str:
        return (f"TabularMDPs(n_episodes={self.n_episodes}, n_states={self.n_states}, "
                f"n_actions={self.n_actions}, episode_length={self.episode_length})")


class MDPBatch:
    """Trials in progress on a batch of tabular MDPs.

    Parameters
    ----------
    transitions : Tensor of shape (n_trials, n_states, n_actions, n_states)
        ``P(s' | s, a)``; rows sum to one.
    reward_means : Tensor of shape (n_trials, n_states, n_actions)
    n_episodes, episode_length : int
    generator : torch.Generator, optional
        Source of the randomness of rewards, transitions and start states.
    """

    def __init__(self, transitions: torch.Tensor, reward_means: torch.Tensor, n_episodes: int,
                 episode_length: int, generator: torch.Generator | None = None):
        if transitions.ndim != 4 or transitions.shape[1] != transitions.shape[3]:
            raise ValueError(f"transitions must have shape (n_trials, S, A, S), got {tuple(transitions.shape)}")
        if reward_means.shape != transitions.shape[:3]:
            raise ValueError(f"reward_means must have shape {tuple(transitions.shape[:3])}, "
                             f"got {tuple(reward_means.shape)}")
        self.transitions = transitions
        self.reward_means = reward_means
        self.n_episodes = n_episodes
        self.episode_length = episode_length
        self.generator = generator
        self._cumulative = transitions.cumsum(-1)
        self.t = 0
        self.state = torch.zeros(len(self), dtype=torch.long, device=self.device)

    def __len__(self) -> int:
        return self.transitions.shape[0]

    @property
    def device(self) -> torch.device:
        return self.transitions.device

    @property
    def n_states(self) -> int:
        return self.transitions.shape[1]

    def _start_states(self) -> torch.Tensor:
        return torch.randint(self.n_states, (len(self),), generator=self.generator, device=self.device)

    def reset(self) -> torch.Tensor:
        """Start the trials; return the first states."""
        self.t = 0
        self.state = self._start_states()
        return self.state

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Take ``actions``: next states, rewards, episode-end flags.

        After the last step of an episode the returned state is the first
        state of the next episode.
        """
        if self.t >= self.n_episodes * self.episode_length:
            raise RuntimeError("the trial is over; call reset()")
        rows = torch.arange(len(self), device=self.device)
        noise = torch.randn(len(self), generator=self.generator, device=self.device)
        rewards = self.reward_means[rows, self.state, actions] + noise
        u = torch.rand(len(self), 1, generator=self.generator, device=self.device)
        cumulative = self._cumulative[rows, self.state, actions]
        next_state = (cumulative < u).sum(-1).clamp_(max=self.n_states - 1)
        self.t += 1
        episode_over = self.t % self.episode_length == 0
        done = torch.full((len(self),), episode_over, dtype=torch.bool, device=self.device)
        self.state = self._start_states() if episode_over else next_state
        return self.state, rewards, done
