"""The RL^2 agent: a GRU whose hidden state is the agent's memory of a trial.

Duan et al. (2016), RL^2: Fast Reinforcement Learning via Slow Reinforcement
Learning, arXiv:1611.02779. At every step the GRU reads the observation, the
previous action, the previous reward and the flag that the previous step
ended an episode; its hidden state is carried across the episodes of a trial
and reset between trials, so learning within the trial happens in the
activations, and PPO trains the weights across trials.

Example
-------
>>> import torch
>>> from autometa.rl import BernoulliBandits, RL2Agent, rollout
>>> agent = RL2Agent(BernoulliBandits(n_arms=5, n_pulls=10).spec(), hidden_size=32)
>>> trials = rollout(agent, BernoulliBandits(5, 10).sample(8))
>>> trials.rewards.shape
torch.Size([8, 10])
"""

from __future__ import annotations

import json
import os

import torch
from torch import nn

from autometa._common import atomic_torch_save, read_payload
from autometa._common import check_int
from autometa.rl.tasks import tasks_from_spec

FORMAT = "autometa.rl2"
FORMAT_VERSION = 1


class RL2Agent(nn.Module):
    """GRU policy and value function over (observation, previous action,
    previous reward, done flag, fraction of the trial elapsed).

    Parameters
    ----------
    tasks : dict
        The task distribution's spec (``BernoulliBandits(...).spec()`` or
        ``TabularMDPs(...).spec()``); fixes the input and action sizes.
    hidden_size : int, default=128
        Width of the GRU.
    time_input : bool, default=True
        Also feed ``t / trial_length``: the Bayes-optimal trade-off between
        exploring and exploiting depends on the time left, which the GRU could
        only learn to count otherwise.

    Attributes
    ----------
    config : dict
        The constructor's arguments (JSON-able), saved with the weights.
    tasks : BernoulliBandits or TabularMDPs
    """

    def __init__(self, tasks: dict, hidden_size: int = 128, time_input: bool = True):
        super().__init__()
        if not isinstance(tasks, dict):
            raise TypeError(f"tasks must be a task distribution's spec() dict, got {type(tasks).__name__}")
        check_int(hidden_size, "hidden_size")
        self.config = {"tasks": dict(tasks), "hidden_size": hidden_size, "time_input": bool(time_input)}
        self.tasks = tasks_from_spec(tasks)
        self.n_observations = self.tasks.n_observations
        self.n_actions = self.tasks.n_actions
        self.trial_length = self.tasks.trial_length
        self.time_input = bool(time_input)
        self.input_size = self.n_observations + self.n_actions + 2 + int(self.time_input)
        self.gru = nn.GRU(self.input_size, hidden_size, batch_first=True)
        self.policy_head = nn.Linear(hidden_size, self.n_actions)
        self.value_head = nn.Linear(hidden_size, 1)
        nn.init.orthogonal_(self.policy_head.weight, gain=0.01)
        nn.init.zeros_(self.policy_head.bias)
        nn.init.orthogonal_(self.value_head.weight, gain=1.0)
        nn.init.zeros_(self.value_head.bias)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode(self, obs: torch.Tensor, prev_action: torch.Tensor, prev_reward: torch.Tensor,
               done: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """The GRU's input for one step of a batch of trials, shape (n_trials, input_size).

        ``prev_action`` is -1 at the start of a trial (no previous action);
        ``done`` says the previous step ended an episode.
        """
        parts = [nn.functional.one_hot(obs, self.n_observations).float(),
                 nn.functional.one_hot(prev_action.clamp(min=0), self.n_actions).float()
                 * (prev_action >= 0).float()[:, None],
                 prev_reward.float()[:, None], done.float()[:, None]]
        if self.time_input:
            parts.append(torch.full_like(parts[2], float(t) / self.trial_length))
        return torch.cat(parts, dim=1)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor | None = None):
        """Policy logits and values for input sequences.

        Parameters
        ----------
        inputs : Tensor of shape (n_trials, steps, input_size)
        hidden : Tensor of shape (1, n_trials, hidden_size), optional
            Carried state; None (zeros) at the start of a trial.

        Returns
        -------
        logits : Tensor of shape (n_trials, steps, n_actions)
        values : Tensor of shape (n_trials, steps)
            Expected reward still to come in the trial.
        hidden : Tensor of shape (1, n_trials, hidden_size)
        """
        features, hidden = self.gru(inputs, hidden)
        # the value head works in units of the trial's length, so that one
        # learning rate suits short and long trials
        values = self.value_head(features).squeeze(-1) * self.trial_length
        return self.policy_head(features), values, hidden

    def play_gym(self, env, seed: int | None = None, greedy: bool = False) -> float:
        """Play one trial of a gymnasium environment from :mod:`autometa.rl.envs`; its total reward."""
        obs, _ = env.reset(seed=seed)
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
        prev_action, prev_reward, done, hidden, total = -1, 0.0, False, None, 0.0
        device = self.device
        with torch.no_grad():
            for t in range(self.trial_length):
                x = self.encode(torch.tensor([int(obs)], device=device), torch.tensor([prev_action], device=device),
                                torch.tensor([prev_reward], device=device), torch.tensor([done], device=device), t)
                logits, _, hidden = self(x[:, None], hidden)
                probs = torch.softmax(logits[0, 0].cpu(), -1)
                action = int(probs.argmax()) if greedy else int(torch.multinomial(probs, 1, generator=generator))
                obs, reward, terminated, truncated, info = env.step(action)
                total += float(reward)
                prev_action, prev_reward, done = action, float(reward), bool(info["episode_end"])
                if terminated or truncated:
                    break
        return total

    # -- persistence ----------------------------------------------------
    def save(self, path: str | os.PathLike, training: dict | None = None) -> None:
        """Write the agent to ``path`` atomically: plain data only (tensors and a
        JSON config), readable with ``torch.load(weights_only=True)``.

        ``training`` is an optional JSON-able summary of how it was trained.
        """
        payload = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "class": type(self).__name__,
            "config": json.dumps(self.config),
            "training": json.dumps(training or {}),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }
        atomic_torch_save(payload, path)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location="cpu") -> "RL2Agent":
        """Load an agent written by :meth:`save`; its training summary is in ``agent.training_summary``."""
        payload = _read_agent_payload(path, map_location)
        try:
            config = json.loads(payload["config"])
            agent = cls(config.pop("tasks"), **config)
            agent.load_state_dict(payload["state_dict"])
            agent.training_summary = json.loads(payload.get("training", "{}"))
        except (KeyError, TypeError, RuntimeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: the agent's config or weights are inconsistent: "
                             f"{type(error).__name__}: {str(error).splitlines()[0][:200]}") from None
        return agent.to(map_location)


def _read_agent_payload(path, map_location) -> dict:
    payload = read_payload(path, map_location, format=FORMAT, version=FORMAT_VERSION, kind="RL^2 agent",
                           how_to_make=f"train one with `autometa rl2 train --out {path}`")
    if payload.get("class") != "RL2Agent":
        raise ValueError(f"{path} holds a {payload.get('class')!r}, not an RL2Agent")
    return payload

