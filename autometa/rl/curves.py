"""Learning curves of RL^2 training, from ``train_rl2``'s history (matplotlib, imported on use)."""

from __future__ import annotations

import os


def plot_learning_curve(history: list[dict[str, float]], path: str | os.PathLike, title: str = "",
                        smooth: int = 10) -> None:
    """Write a PNG: the batch's mean trial reward beside the baselines' on the same tasks
    (top), and the policy's entropy and the value function's explained variance (bottom),
    against agent steps.

    Parameters
    ----------
    history : list of dict
        From :func:`~autometa.rl.ppo.train_rl2`.
    path : str or PathLike
    title : str, optional
    smooth : int, default=10
        Width of the trailing moving average drawn over the noisy per-batch rewards.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if not history:
        raise ValueError("history is empty: nothing to plot")
    steps = np.array([h["env_steps"] for h in history])

    def trailing_mean(values):
        values = np.asarray(values, dtype=float)
        cumulative = np.concatenate([[0.0], np.cumsum(values)])
        end = np.arange(1, len(values) + 1)
        start = np.maximum(0, end - max(1, smooth))
        return (cumulative[end] - cumulative[start]) / (end - start)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=(2, 1))
    rewards = [h["mean_total"] for h in history]
    top.plot(steps, rewards, color="tab:blue", alpha=0.25, linewidth=0.8)
    top.plot(steps, trailing_mean(rewards), color="tab:blue", label="RL2 (batch mean)")
    for key, color in (("greedy", "tab:green"), ("oracle", "tab:gray"), ("random", "tab:red")):
        if key in history[0]:
            top.plot(steps, trailing_mean([h[key] for h in history]), color=color, linestyle="--", label=key)
    top.set_ylabel("mean total reward per trial")
    top.legend(loc="lower right")
    top.grid(alpha=0.3)
    if title:
        top.set_title(title)
    bottom.plot(steps, [h["entropy"] for h in history], label="policy entropy")
    if "explained_variance" in history[0]:
        bottom.plot(steps, [h["explained_variance"] for h in history], label="value explained variance")
    bottom.set_xlabel("agent steps")
    bottom.legend(loc="best")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
