"""Bernoulli multi-armed bandits as a task distribution, batched in torch.

A task is a bandit with ``n_arms`` arms whose success probabilities are drawn
from U[0, 1]; a trial is ``n_pulls`` pulls of one task. Each pull is one
episode (the agent's ``done`` flag is set after every pull), as in RL^2
(Duan et al., 2016, section 4.1).
"""

from __future__ import annotations

import torch

from autometa._common import check_int


class BernoulliBandits:
    """The distribution of ``n_arms``-armed Bernoulli bandits, ``n_pulls`` pulls a trial.

    Parameters
    ----------
    n_arms : int
        Number of arms, at least 2.
    n_pulls : int
        Pulls per trial, at least 1.

    Attributes
    ----------
    n_observations : int
        Size of the (one-hot) observation: 1, a bandit has one state.
    n_actions : int
        ``n_arms``.
    trial_length : int
        Agent steps per trial: ``n_pulls``.

    Examples
    --------
    >>> import torch
    >>> bandits = BernoulliBandits(n_arms=5, n_pulls=10)
    >>> batch = bandits.sample(4, generator=torch.Generator().manual_seed(0))
    >>> obs = batch.reset()
    >>> obs, reward, done = batch.step(torch.zeros(4, dtype=torch.long))
    >>> reward.shape
    torch.Size([4])
    """

    kind = "bandit"
    n_observations = 1

    def __init__(self, n_arms: int, n_pulls: int):
        check_int(n_arms, "n_arms", 2, hint="a bandit needs at least 2 arms")
        check_int(n_pulls, "n_pulls", hint="a trial needs at least one pull")
        self.n_arms = n_arms
        self.n_pulls = n_pulls

    @property
    def n_actions(self) -> int:
        return self.n_arms

    @property
    def trial_length(self) -> int:
        return self.n_pulls

    @property
    def horizon(self) -> int:
        """The trial's length in the unit the CLI's ``--horizon`` uses: pulls."""
        return self.n_pulls

    def spec(self) -> dict:
        """JSON-able description, enough to rebuild this distribution."""
        return {"env": "bandit", "n_arms": self.n_arms, "horizon": self.n_pulls}

    def sample(self, n_trials: int, *, generator: torch.Generator | None = None, device="cpu") -> "BanditBatch":
        """Draw ``n_trials`` bandits; ``generator`` must live on ``device``."""
        check_int(n_trials, "n_trials")
        probs = torch.rand(n_trials, self.n_arms, generator=generator, device=device)
        return BanditBatch(probs, self.n_pulls, generator=generator)

    def __repr__(self) -> str:
        return f"BernoulliBandits(n_arms={self.n_arms}, n_pulls={self.n_pulls})"


class BanditBatch:
    """Trials in progress on a batch of bandits with success probabilities ``probs``.

    Parameters
    ----------
    probs : Tensor of shape (n_trials, n_arms)
    n_pulls : int
    generator : torch.Generator, optional
        Source of the rewards' randomness, on ``probs``' device.
    """

    def __init__(self, probs: torch.Tensor, n_pulls: int, generator: torch.Generator | None = None):
        if probs.ndim != 2 or probs.shape[1] < 2:
            raise ValueError(f"probs must have shape (n_trials, n_arms >= 2), got {tuple(probs.shape)}")
        self.probs = probs
        self.n_pulls = n_pulls
        self.generator = generator
        self.t = 0

    def __len__(self) -> int:
        return self.probs.shape[0]

    @property
    def device(self) -> torch.device:
        return self.probs.device

    def reset(self) -> torch.Tensor:
        """Start the trials; return the observations (all state 0)."""
        self.t = 0
        return torch.zeros(len(self), dtype=torch.long, device=self.device)

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pull arm ``actions[i]`` of bandit ``i``: observations, rewards (0/1), episode-end flags."""
        if self.t >= self.n_pulls:
            raise RuntimeError("the trial is over; call reset()")
        u = torch.rand(len(self), generator=self.generator, device=self.device)
        rewards = (u < self.probs.gather(1, actions[:, None]).squeeze(1)).float()
        self.t += 1
        done = torch.ones(len(self), dtype=torch.bool, device=self.device)
        return torch.zeros_like(actions), rewards, done
