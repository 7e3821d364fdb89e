"""Training an RL^2 agent with PPO and GAE on batches of trials.

One iteration draws ``trials_per_batch`` new tasks, plays one trial of each
(the GRU's hidden state runs through all its episodes), estimates advantages
with GAE over the whole trial, and takes ``epochs`` passes of clipped-PPO
minibatch updates, each minibatch a set of whole trials re-run from a zero
hidden state (exact backpropagation through time). Written top to bottom in
the manner of cleanrl's ``ppo.py``; every hyperparameter is in
:class:`RL2Config`, whose :meth:`~RL2Config.for_setting` gives the recipe per
task family and trial length (after Duan et al., 2016, and the PyTorch
reproductions: a separate value GRU on normalised returns, GAE lambda 0.3
across episodes, batch-wide advantage standardisation, clip with a KL stop,
Huber value loss).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from autometa._common import check_int
from autometa.rl.agent import RL2Agent
from autometa.rl.config import RL2Config
from autometa.rl.tasks import TaskDistribution


@dataclass
class Trials:
    """A batch of played trials, tensors of shape (n_trials, steps[, ...])."""

    inputs: torch.Tensor  # the GRU's inputs
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor

    @property
    def totals(self) -> torch.Tensor:
        """Total reward of each trial."""
        return self.rewards.sum(1)


def rollout(agent: RL2Agent, batch, generator: torch.Generator | None = None, greedy: bool = False) -> Trials:
    """Play one trial on each task of ``batch`` (from ``tasks.sample``), without gradients.

    ``greedy`` takes the most probable action instead of sampling.
    """
    n, device = len(batch), batch.device
    obs = batch.reset()
    prev_action = torch.full((n,), -1, dtype=torch.long, device=device)
    prev_reward = torch.zeros(n, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    hidden = None
    inputs, actions, log_probs, values, rewards = [], [], [], [], []
    with torch.no_grad():
        for t in range(agent.trial_length):
            x = agent.encode(obs, prev_action, prev_reward, done, t)
            logits, value, hidden = agent(x[:, None], hidden)
            log_p = torch.log_softmax(logits[:, 0], -1)
            if greedy:
                action = log_p.argmax(-1)
            else:
                action = torch.multinomial(log_p.exp(), 1, generator=generator).squeeze(1)
            obs, reward, done = batch.step(action)
            inputs.append(x)
            actions.append(action)
            log_probs.append(log_p.gather(1, action[:, None]).squeeze(1))
            values.append(value[:, 0])
            rewards.append(reward)
            prev_action, prev_reward = action, reward
    stack = lambda xs: torch.stack(xs, dim=1)  # noqa: E731
    return Trials(stack(inputs), stack(actions), stack(log_probs), stack(values), stack(rewards))


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates for whole trials (Schulman et al., 2016).

    The trial ends after the last step (its value there is zero); episode
    ends inside a trial do not cut the sums, since RL^2's return is the
    trial's total reward.

    Parameters
    ----------
    rewards, values : Tensor of shape (n_trials, steps)
    gamma, lam : float

    Returns
    -------
    advantages, returns : Tensor of shape (n_trials, steps)
        ``returns = advantages + values``, the value targets.
    """
    if rewards.shape != values.shape or rewards.ndim != 2:
        raise ValueError(f"rewards and values must both have shape (n_trials, steps), "
                         f"got {tuple(rewards.shape)} and {tuple(values.shape)}")
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    running = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
        next_value = values[:, t]
    return advantages, advantages + values


def explained_variance(predictions: torch.Tensor, targets: torch.Tensor) -> float:
    """``1 - Var(targets - predictions) / Var(targets)``: 1 for a perfect value function,
    0 for one no better than a constant, negative when worse; nan when the targets are constant."""
    variance = float(targets.var())
    if not variance > 0:
        return float("nan")
    return 1.0 - float((targets - predictions).var()) / variance


def _value_error(errors: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "huber":
        return torch.nn.functional.huber_loss(errors, torch.zeros_like(errors), delta=1.0)
    return 0.5 * (errors ** 2).mean()


def ppo_update(agent: RL2Agent, optimizer: torch.optim.Optimizer, trials: Trials, config: RL2Config,
               entropy_coef: float, generator: torch.Generator | None = None) -> dict[str, float]:
    """Up to ``config.epochs`` passes of clipped-PPO minibatch steps on ``trials``.

    GAE runs over each whole trial; with ``config.normalize_returns`` the
    value targets first update the agent's running return statistics. Each
    minibatch is a set of whole trials re-run from a zero hidden state.

    Returns
    -------
    dict
        Means over the minibatch steps taken: ``policy_loss``, ``value_loss``,
        ``entropy``, ``clip_fraction``, ``approx_kl`` (``E[(r - 1) - log r]``
        of the ratio ``r``); ``explained_variance`` of the rollout's values;
        ``epochs`` run (fewer than ``config.epochs`` after a KL stop).
    """
    advantages, returns = gae(trials.rewards, trials.values, config.gamma, config.gae_lambda)
    ev = explained_variance(trials.values, returns)
    if config.normalize_returns:
        agent.update_return_statistics(returns)
    if config.advantage_norm == "batch":
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    n = trials.actions.shape[0]
    size = math.ceil(n / config.minibatches)
    groups = [agent.policy_parameters(), agent.value_parameters()] if agent.separate_value else [list(agent.parameters())]
    sums = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "clip_fraction": 0.0, "approx_kl": 0.0}
    updates, epochs_run, stop = 0, 0, False
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator, device=generator.device if generator else "cpu")
        for start in range(0, n, size):
            idx = order[start:start + size].to(trials.actions.device)
            logits, values, _ = agent(trials.inputs[idx])
            log_p = torch.log_softmax(logits, -1)
            new_log_probs = log_p.gather(2, trials.actions[idx][..., None]).squeeze(-1)
            entropy = -(log_p.exp() * log_p).sum(-1).mean()
            adv = advantages[idx]
            if config.advantage_norm == "minibatch":
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            log_ratio = new_log_probs - trials.log_probs[idx]
            ratio = log_ratio.exp()
            policy_loss = -torch.min(ratio * adv, ratio.clamp(1 - config.clip, 1 + config.clip) * adv).mean()
            value_loss = _value_error((values - returns[idx]) / agent.value_scale, config.value_loss)
            loss = policy_loss + config.value_coef * value_loss - entropy_coef * entropy
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for group in groups:
                torch.nn.utils.clip_grad_norm_(group, config.max_grad_norm)
            optimizer.step()
            updates += 1
            with torch.no_grad():
                approx_kl = float(((ratio - 1) - log_ratio).mean())
            sums["policy_loss"] += float(policy_loss.detach())
            sums["value_loss"] += float(value_loss.detach())
            sums["entropy"] += float(entropy.detach())
            sums["clip_fraction"] += float(((ratio.detach() - 1).abs() > config.clip).float().mean())
            sums["approx_kl"] += approx_kl
            if config.target_kl is not None and approx_kl > 1.5 * config.target_kl:
                stop = True
                break
        epochs_run += 1
        if stop:
            break
    metrics = {k: v / updates for k, v in sums.items()}
    metrics.update(explained_variance=ev, epochs=float(epochs_run))
    return metrics


def batch_baselines(batch, n_trials: int, seed: int = 0) -> dict[str, float]:
    """Cheap reference scores on the first ``n_trials`` tasks of ``batch``: the exact
    expected total reward of random play, and of a greedy player (posterior-mean
    arm, simulated) on bandits or of a player that knows the MDP (exact) on MDPs."""
    import numpy as np

    from autometa.rl.bandits import BanditBatch
    from autometa.rl.baselines import greedy_policy, reward_table, simulate
    from autometa.rl.mdp_planning import policy_value

    if isinstance(batch, BanditBatch):
        probs = batch.probs[:n_trials].double().cpu().numpy()
        rng = np.random.default_rng(seed)
        greedy = simulate(greedy_policy, reward_table(probs, batch.n_pulls, rng), rng)
        return {"random": float(probs.mean(1).mean() * batch.n_pulls), "greedy": float(greedy.mean())}
    transitions = batch.transitions[:n_trials].double().cpu().numpy()
    means = batch.reward_means[:n_trials].double().cpu().numpy()
    uniform = np.full(means.shape[:1] + (batch.episode_length,) + means.shape[1:], 1.0 / means.shape[-1])
    random = policy_value(transitions, means, batch.episode_length, uniform).mean() * batch.n_episodes
    oracle = policy_value(transitions, means, batch.episode_length).mean() * batch.n_episodes
    return {"random": float(random), "oracle": float(oracle)}


def learning_rate_factor(progress: float, hold: float) -> float:
    """The learning rate's multiplier at ``progress`` (0 to 1) through training: 1 up to ``hold``, then
    falling linearly to 0 at the end."""
    return 1.0 if progress <= hold else (1.0 - progress) / (1.0 - hold)


def train_rl2(tasks: TaskDistribution, config: RL2Config | None = None, *, iterations: int | None = None,
              time_budget: float | None = None, device: str | torch.device = "cpu", seed: int = 0,
              verbose: bool = False, callback: Callable[[int, dict], bool | None] | None = None,
              agent: RL2Agent | None = None) -> tuple[RL2Agent, list[dict[str, float]]]:
    """Train an RL^2 agent on ``tasks`` with PPO.

    Parameters
    ----------
    tasks : BernoulliBandits or TabularMDPs
    config : RL2Config, optional
        Hyperparameters (defaults: ``RL2Config()``; see
        :meth:`RL2Config.for_setting` for the recipe per setting).
    iterations : int, optional
        PPO iterations (each plays ``config.trials_per_batch`` trials). None
        runs until ``time_budget`` is spent.
    time_budget : float, optional
        Seconds; checked after each iteration.
    device : str or torch.device, default="cpu"
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; tasks, rollouts and updates
        all run there.
    seed : int, default=0
        Seeds the initial weights, the tasks and every random choice.
    verbose : bool, default=False
        Show a progress bar with the batch's reward beside the baselines',
        the policy's entropy, the value function's explained variance and KL.
    callback : callable, optional
        Called as ``callback(iteration, metrics)`` after each iteration; a
        true return stops training.
    agent : RL2Agent, optional
        Train this agent (built for ``tasks``) rather than a new one built from
        ``config``; e.g. to save checkpoints from ``callback``.

    Returns
    -------
    agent : RL2Agent
        On ``device``, in eval mode.
    history : list of dict
        Per iteration: ``mean_total`` (mean trial reward of the batch), the
        baselines' scores on the same tasks (:func:`batch_baselines`; when
        ``config.baseline_trials`` > 0), the metrics of :func:`ppo_update`,
        ``env_steps`` and ``seconds`` so far.
    """
    config = config or RL2Config()
    config.validate()
    if iterations is None and time_budget is None:
        raise ValueError("give iterations, time_budget, or both")
    if iterations is not None:
        check_int(iterations, "iterations")
    if time_budget is not None and not time_budget > 0:
        raise ValueError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
    device = torch.device(device)
    torch.manual_seed(seed)
    if agent is None:
        agent = RL2Agent(tasks.spec(), **config.agent_kwargs())
    elif agent.config["tasks"] != tasks.spec():
        raise ValueError(f"the agent was built for {agent.tasks!r}, not {tasks!r}")
    agent = agent.to(device)
    optimizer = torch.optim.AdamW(agent.parameters(), lr=config.lr, eps=1e-5, weight_decay=config.weight_decay)
    generator = torch.Generator(device=device).manual_seed(seed)
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    bar = tqdm(total=iterations, disable=None if verbose else True, desc="RL2", unit="it")
    iteration = 0
    while iterations is None or iteration < iterations:
        progress = iteration / iterations if iterations is not None else 0.0
        if time_budget is not None:
            progress = max(progress, (time.perf_counter() - t0) / time_budget)
        progress = min(progress, 1.0)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * learning_rate_factor(progress, config.lr_hold)
        entropy_coef = config.entropy_coef + (config.entropy_coef_final - config.entropy_coef) * progress
        agent.eval()
        batch = tasks.sample(config.trials_per_batch, generator=generator, device=device)
        metrics = {}
        if config.baseline_trials:
            metrics.update(batch_baselines(batch, config.baseline_trials, seed=seed + iteration))
        trials = rollout(agent, batch, generator)
        agent.train()
        metrics["mean_total"] = float(trials.totals.mean())
        metrics.update(ppo_update(agent, optimizer, trials, config, entropy_coef, generator))
        iteration += 1
        metrics["env_steps"] = float(iteration * config.trials_per_batch * tasks.trial_length)
        metrics["seconds"] = time.perf_counter() - t0
        history.append(metrics)
        bar.update(1)
        postfix = {"reward": f"{metrics['mean_total']:.3f}"}
        postfix.update({k: f"{metrics[k]:.3f}" for k in ("random", "greedy", "oracle") if k in metrics})
        postfix.update({"entropy": f"{metrics['entropy']:.3f}", "EV": f"{metrics['explained_variance']:.2f}",
                        "KL": f"{metrics['approx_kl']:.4f}"})
        bar.set_postfix(postfix, refresh=False)
        stop = callback is not None and bool(callback(iteration, metrics))
        if stop or (time_budget is not None and time.perf_counter() - t0 >= time_budget):
            break
    bar.close()
    agent.eval()
    agent.training_summary = {"iterations": iteration, "env_steps": iteration * config.trials_per_batch
                              * tasks.trial_length, "seconds": round(time.perf_counter() - t0, 1),
                              "seed": seed, "device": str(device), "config": asdict(config)}
    return agent, history


def evaluate_agent(agent: RL2Agent, batch, seed: int = 0, greedy: bool = False,
                   chunk: int = 4096) -> torch.Tensor:
    """Total reward of one trial of ``agent`` on each task of ``batch``, played in chunks.

    ``batch`` is a :class:`~autometa.rl.bandits.BanditBatch` or
    :class:`~autometa.rl.mdp.MDPBatch` on any device; it is played on the
    agent's device.
    """
    from autometa.rl.bandits import BanditBatch
    from autometa.rl.mdp import MDPBatch

    device = agent.device
    generator = torch.Generator(device=device).manual_seed(seed)
    totals = []
    for start in range(0, len(batch), chunk):
        part = slice(start, start + chunk)
        if isinstance(batch, BanditBatch):
            sub = BanditBatch(batch.probs[part].to(device), batch.n_pulls, generator)
        elif isinstance(batch, MDPBatch):
            sub = MDPBatch(batch.transitions[part].to(device), batch.reward_means[part].to(device),
                           batch.n_episodes, batch.episode_length, generator)
        else:
            raise TypeError(f"batch must be a BanditBatch or MDPBatch, got {type(batch).__name__}")
        totals.append(rollout(agent, sub, generator, greedy=greedy).totals.cpu())
    return torch.cat(totals)
