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
from pathlib import Path

import torch
from torch import nn

from autometa._common import PRETRAINED_PREFIX, atomic_torch_save, check_int, read_payload, shipped_file, shipped_names
from autometa.rl.tasks import tasks_from_spec

FORMAT = "autometa.rl2"
FORMAT_VERSION = 1
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def available_pretrained() -> list[str]:
    """Names of the agents shipped with the package (``RL2Agent.load("pretrained:NAME")``)."""
    return shipped_names(PRETRAINED_DIR)


def pretrained_path(name: str) -> Path:
    """The file of the shipped agent ``name`` (e.g. ``"bandit-k5-n10"``); ValueError for an unknown name."""
    return shipped_file(PRETRAINED_DIR, name, "RL^2 agent")


class LayerNormGRU(nn.Module):
    """A GRU whose gates see layer-normalised inputs and recurrent parts (Ba et al., 2016).

    Same interface as ``nn.GRU(input_size, hidden_size, batch_first=True)``
    (one layer, gate order reset, update, candidate), with the update gate's
    bias towards keeping the state set by ``forget_bias``. The input side of
    every step is computed at once; the recurrence is a loop over time steps.

    Parameters
    ----------
    input_size, hidden_size : int
    forget_bias : float, default=1.0
    """

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0):
        super().__init__()
        check_int(input_size, "input_size")
        check_int(hidden_size, "hidden_size")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.input_proj = nn.Linear(input_size, 3 * hidden_size, bias=False)
        self.hidden_proj = nn.Linear(hidden_size, 3 * hidden_size, bias=False)
        # per gate: a gain after normalising each of the input and recurrent parts, and one bias
        self.input_gain = nn.Parameter(torch.ones(3, hidden_size))
        self.hidden_gain = nn.Parameter(torch.ones(3, hidden_size))
        self.bias = nn.Parameter(torch.zeros(3, hidden_size))
        with torch.no_grad():
            self.bias[1].fill_(forget_bias)
        nn.init.xavier_uniform_(self.input_proj.weight)
        with torch.no_grad():
            for gate in range(3):
                nn.init.orthogonal_(self.hidden_proj.weight[gate * hidden_size:(gate + 1) * hidden_size])

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unflatten(-1, (3, self.hidden_size))
        return nn.functional.layer_norm(x, (self.hidden_size,))

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor | None = None):
        """``inputs`` (n, steps, input_size), ``hidden`` (1, n, hidden_size) or None:
        outputs (n, steps, hidden_size) and the last hidden state (1, n, hidden_size)."""
        n, steps, _ = inputs.shape
        h = inputs.new_zeros(n, self.hidden_size) if hidden is None else hidden[0]
        x_parts = self._normalise(self.input_proj(inputs)) * self.input_gain + self.bias
        outputs = []
        for t in range(steps):
            h_parts = self._normalise(self.hidden_proj(h)) * self.hidden_gain
            x_t = x_parts[:, t]
            reset = torch.sigmoid(x_t[:, 0] + h_parts[:, 0])
            keep = torch.sigmoid(x_t[:, 1] + h_parts[:, 1])
            candidate = torch.tanh(x_t[:, 2] + reset * h_parts[:, 2])
            h = keep * h + (1.0 - keep) * candidate
            outputs.append(h)
        return torch.stack(outputs, dim=1), h[None]


def _recurrent(input_size: int, hidden_size: int, layer_norm: bool, forget_bias: float) -> nn.Module:
    if layer_norm:
        return LayerNormGRU(input_size, hidden_size, forget_bias)
    gru = nn.GRU(input_size, hidden_size, batch_first=True)
    if forget_bias:
        with torch.no_grad():  # nn.GRU's gates: reset, update, candidate; update weighs the old state
            gru.bias_ih_l0[hidden_size:2 * hidden_size].fill_(forget_bias)
            gru.bias_hh_l0[hidden_size:2 * hidden_size].zero_()
    return gru


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
    layer_norm : bool, default=False
        Use :class:`LayerNormGRU` rather than ``nn.GRU``.
    forget_bias : float, default=0.0
        Initial bias of the update gate towards keeping the state.
    separate_value : bool, default=False
        Give the value function its own GRU (its state is carried beside the
        policy's, in the second half of ``hidden``).

    Attributes
    ----------
    config : dict
        The constructor's arguments (JSON-able), saved with the weights.
    tasks : BernoulliBandits or TabularMDPs
    value_shift, value_scale : Tensor (buffers)
        The value head's output is ``value_shift + value_scale * head``;
        ``(0, trial_length)`` unless training normalises returns.
    """

    def __init__(self, tasks: dict, hidden_size: int = 128, time_input: bool = True, layer_norm: bool = False,
                 forget_bias: float = 0.0, separate_value: bool = False):
        super().__init__()
        if not isinstance(tasks, dict):
            raise TypeError(f"tasks must be a task distribution's spec() dict, got {type(tasks).__name__}")
        check_int(hidden_size, "hidden_size")
        self.config = {"tasks": dict(tasks), "hidden_size": hidden_size, "time_input": bool(time_input),
                       "layer_norm": bool(layer_norm), "forget_bias": float(forget_bias),
                       "separate_value": bool(separate_value)}
        self.tasks = tasks_from_spec(tasks)
        self.n_observations = self.tasks.n_observations
        self.n_actions = self.tasks.n_actions
        self.trial_length = self.tasks.trial_length
        self.time_input = bool(time_input)
        self.hidden_size = hidden_size
        self.separate_value = bool(separate_value)
        self.input_size = self.n_observations + self.n_actions + 2 + int(self.time_input)
        self.gru = _recurrent(self.input_size, hidden_size, layer_norm, forget_bias)
        self.value_gru = _recurrent(self.input_size, hidden_size, layer_norm, forget_bias) if separate_value else None
        self.policy_head = nn.Linear(hidden_size, self.n_actions)
        self.value_head = nn.Linear(hidden_size, 1)
        nn.init.orthogonal_(self.policy_head.weight, gain=0.01)
        nn.init.zeros_(self.policy_head.bias)
        nn.init.orthogonal_(self.value_head.weight, gain=1.0)
        nn.init.zeros_(self.value_head.bias)
        # the value head works in units of the trial's length by default, so
        # that one learning rate suits short and long trials
        self.register_buffer("value_shift", torch.zeros(()))
        self.register_buffer("value_scale", torch.tensor(float(self.trial_length)))
        self.register_buffer("return_count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("return_mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("return_m2", torch.zeros((), dtype=torch.float64))

    def policy_parameters(self) -> list[nn.Parameter]:
        """The parameters the policy's outputs depend on."""
        return list(self.gru.parameters()) + list(self.policy_head.parameters())

    def value_parameters(self) -> list[nn.Parameter]:
        """The value network's own parameters (none without ``separate_value``)."""
        if self.value_gru is None:
            return []
        return list(self.value_gru.parameters()) + list(self.value_head.parameters())

    def update_return_statistics(self, returns: torch.Tensor) -> None:
        """Fold ``returns`` into the running mean and variance of returns and rescale
        the value head to them, keeping its predictions unchanged (as PopArt does,
        van Hasselt et al., 2016)."""
        returns = returns.detach().double().flatten()
        count, mean, m2 = self.return_count, self.return_mean, self.return_m2
        n, batch_mean = returns.numel(), returns.mean()
        batch_m2 = ((returns - batch_mean) ** 2).sum()
        total = count + n
        delta = batch_mean - mean
        new_mean = mean + delta * n / total
        new_m2 = m2 + batch_m2 + delta ** 2 * count * n / total
        self.return_count.copy_(total)
        self.return_mean.copy_(new_mean)
        self.return_m2.copy_(new_m2)
        shift = new_mean.float()
        scale = (new_m2 / total).sqrt().float().clamp(min=1e-2)
        with torch.no_grad():
            # old_shift + old_scale * (w x + b) == shift + scale * (w' x + b')
            ratio = self.value_scale / scale
            self.value_head.weight.mul_(ratio)
            self.value_head.bias.mul_(ratio).add_((self.value_shift - shift) / scale)
        self.value_shift.copy_(shift)
        self.value_scale.copy_(scale)

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
        hidden : Tensor of shape (1, n_trials, hidden_size or 2 * hidden_size), optional
            Carried state (the value GRU's in the second half when separate);
            None (zeros) at the start of a trial.

        Returns
        -------
        logits : Tensor of shape (n_trials, steps, n_actions)
        values : Tensor of shape (n_trials, steps)
            Expected (discounted) reward still to come in the trial.
        hidden : Tensor, the state after the last step
        """
        if self.value_gru is None:
            features, hidden = self.gru(inputs, hidden)
            value_features = features
        else:
            h_policy = h_value = None
            if hidden is not None:
                h_policy, h_value = hidden[..., :self.hidden_size].contiguous(), hidden[..., self.hidden_size:].contiguous()
            features, h_policy = self.gru(inputs, h_policy)
            value_features, h_value = self.value_gru(inputs, h_value)
            hidden = torch.cat([h_policy, h_value], dim=-1)
        values = self.value_shift + self.value_scale * self.value_head(value_features).squeeze(-1)
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
        """Load an agent written by :meth:`save`, or a shipped one as ``"pretrained:NAME"``
        (see :func:`available_pretrained`); its training summary is in ``agent.training_summary``."""
        if str(path).startswith(PRETRAINED_PREFIX):
            path = pretrained_path(str(path))
        payload = _read_agent_payload(path, map_location)
        try:
            config = json.loads(payload["config"])
            agent = cls(config.pop("tasks"), **config)
            state = dict(payload["state_dict"])
            for name, default in agent.state_dict().items():
                if name.startswith(("value_shift", "value_scale", "return_")):
                    state.setdefault(name, default)  # files written before these buffers existed
            agent.load_state_dict(state)
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

