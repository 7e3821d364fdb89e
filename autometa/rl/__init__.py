"""RL^2: reinforcement learning to reinforcement-learn (Duan et al., 2016).

Task distributions (Bernoulli bandits, random tabular MDPs) in a batched
torch form for training and as gymnasium environments (``BernoulliBanditEnv``,
``TabularMDPEnv``, imported lazily: gymnasium is the optional extra
``autometa[rl]``); the GRU agent; PPO training; and the classic baselines.

Example
-------
>>> from autometa.rl import BernoulliBandits, RL2Config, train_rl2, evaluate_agent
>>> bandits = BernoulliBandits(n_arms=5, n_pulls=10)
>>> agent, history = train_rl2(bandits, RL2Config(trials_per_batch=32), iterations=2)
>>> float(evaluate_agent(agent, bandits.sample(100)).mean()) > 0
True
"""

from autometa._lazy import lazy_attributes

# public name -> module; resolved on first use so that ``import autometa.rl``
# (and the ``autometa`` command, which reads RL2Config's defaults) imports no
# torch, and the gymnasium environments need gymnasium only when used.
_LAZY = {
    "RL2Agent": "agent", "LayerNormGRU": "agent", "available_pretrained": "agent", "pretrained_path": "agent",
    "plot_learning_curve": "curves", "batch_baselines": "ppo", "explained_variance": "ppo", "BanditBatch": "bandits", "BernoulliBandits": "bandits",
    "bandit_baselines": "baselines", "bayes_optimal_value": "baselines", "gittins_indices": "baselines",
    "compare": "evaluation", "MDPBatch": "mdp", "TabularMDPs": "mdp", "mdp_baselines": "mdp_planning",
    "RL2Config": "config", "Trials": "ppo", "evaluate_agent": "ppo", "gae": "ppo", "ppo_update": "ppo",
    "rollout": "ppo", "train_rl2": "ppo", "PolicyResult": "stats", "mean_ci": "stats",
    "make_tasks": "tasks", "tasks_from_spec": "tasks", "BernoulliBanditEnv": "envs", "TabularMDPEnv": "envs",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, {name: f".{module}" for name, module in _LAZY.items()})
