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
        return _trailing_mean(values, smooth)

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


def _trailing_mean(values, window: int):
    """The mean of each value and the ``window - 1`` before it (fewer at the start)."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(0, end - max(1, window))
    return (cumulative[end] - cumulative[start]) / (end - start)


def curve_table(history: list[dict[str, float]], at=None, window: int = 30, extra=()) -> list[str]:
    """The learning curve as Markdown table lines: at the iterations ``at``, the agent steps,
    seconds, the batch's mean trial reward and the baselines' on the same tasks (each a trailing
    mean over ``window`` iterations), the policy's entropy, and the trailing means of the
    ``extra`` metrics.

    Parameters
    ----------
    history : list of dict
        From :func:`~autometa.rl.ppo.train_rl2` (``autometa rl2 train --history``), one per iteration.
    at : sequence of int, optional
        Iterations to show (those past the end are left out); the last one is always shown.
        Default: 30, 100, 200, 400, then every 400.
    window : int, default=30
    extra : sequence of str, default=()
        More metrics of the history, e.g. ``"approx_kl"``, ``"epochs"`` (PPO passes after the KL stop),
        ``"explained_variance"``.
    """
    if not history:
        raise ValueError("history is empty: no curve")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    needed = ("iteration", "env_steps", "seconds", "mean_total", "entropy", *extra)
    lacking = [key for key in needed if any(key not in h for h in history)]
    if lacking:
        raise ValueError(f"history rows lack {', '.join(lacking)}: expected the rows of `autometa rl2 train --history`")
    last = int(history[-1]["iteration"])
    if at is None:
        at = [30, 100, 200, *range(400, last, 400)]
    wanted = sorted({int(i) for i in at if 1 <= int(i) <= last} | {last})
    row_of = {int(h["iteration"]): k for k, h in enumerate(history)}
    missing = [i for i in wanted if i not in row_of]
    if missing:
        raise ValueError(f"history has no iteration {missing[0]} (it holds {len(history)} iterations, up to {last})")
    baselines = [key for key in ("random", "greedy") if key in history[0]]
    series = {key: _trailing_mean([h[key] for h in history], window) for key in ["mean_total", *baselines, *extra]}
    lines = ["| iteration | agent steps | seconds | RL2 | " + "".join(f"{key} | " for key in baselines) + "entropy |"
             + "".join(f" {key} |" for key in extra),
             "| --- " * (5 + len(baselines) + len(extra)) + "|"]
    for iteration in wanted:
        k = row_of[iteration]
        h = history[k]
        steps = h["env_steps"]
        shown = f"{steps / 1e6:.1f}M" if steps >= 1e5 else f"{steps:,.0f}"
        values = "".join(f"{series[key][k]:.2f} | " for key in ["mean_total", *baselines])
        more = "".join(f" {series[key][k]:.4g} |" for key in extra)
        lines.append(f"| {iteration} | {shown} | {h['seconds']:.0f} | {values}{h['entropy']:.2f} |{more}")
    return lines
