"""Building a task distribution from its JSON spec (as saved with an agent)."""

from __future__ import annotations

from autometa.rl.bandits import BernoulliBandits
from autometa.rl.mdp import TabularMDPs

TaskDistribution = BernoulliBandits | TabularMDPs


def make_tasks(env: str, horizon: int, n_arms: int | None = None, **mdp_sizes) -> TaskDistribution:
    """The task distribution ``env`` (``"bandit"`` or ``"mdp"``).

    Parameters
    ----------
    env : {"bandit", "mdp"}
    horizon : int
        Pulls per trial for bandits, episodes per trial for MDPs.
    n_arms : int, optional
        Bandits only (required there).
    **mdp_sizes
        MDPs only: ``n_states``, ``n_actions``, ``episode_length``.
    """
    if env == "bandit":
        if n_arms is None:
            raise ValueError("bandits need n_arms (--arms K)")
        if mdp_sizes:
            raise ValueError(f"bandits take no {', '.join(sorted(mdp_sizes))}")
        return BernoulliBandits(n_arms, horizon)
    if env == "mdp":
        if n_arms is not None:
            raise ValueError("n_arms (--arms) applies to bandits only; MDPs have 5 actions")
        return TabularMDPs(horizon, **mdp_sizes)
    raise ValueError(f"env must be 'bandit' or 'mdp', got {env!r}")


def tasks_from_spec(spec: dict) -> TaskDistribution:
    """Inverse of ``tasks.spec()``."""
    spec = dict(spec)
    return make_tasks(spec.pop("env"), spec.pop("horizon"), **spec)
