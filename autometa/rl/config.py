"""The hyperparameters of RL^2 training, in one place (imports no torch, so the
command line can show their defaults cheaply)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from autometa._common import check_fraction, check_int

ADVANTAGE_NORMS = ("minibatch", "batch")
VALUE_LOSSES = ("mse", "huber")


@dataclass
class RL2Config:
    """Every hyperparameter of RL^2 training.

    ``RL2Config()`` is the small recipe that suits short bandit trials;
    :meth:`for_setting` gives the recipe for a task family and trial length
    (what the ``autometa rl2 train`` command uses).

    Attributes
    ----------
    hidden_size : int
        GRU width.
    time_input : bool
        Feed the fraction of the trial elapsed (see :class:`RL2Agent`).
    layer_norm : bool
        A layer-normalised GRU (each gate's input and recurrent parts
        normalised) instead of ``nn.GRU``; slower on CPU (a Python loop over
        time steps) but steadier on long trials.
    forget_bias : float
        Initial bias of the GRU's update gate towards keeping its state
        (the "forget-gate bias" of LSTMs); 1.0 lets memories survive long
        trials from the start.
    separate_value : bool
        A second GRU for the value function, so that value errors never move
        the policy's weights (Duan et al., 2016).
    normalize_returns : bool
        Learn the value function on returns normalised by their running mean
        and standard deviation (the head is rescaled when the statistics move,
        so its predictions stay put); otherwise in units of the trial length.
    trials_per_batch : int
        Trials played per PPO iteration.
    lr : float
        Adam learning rate, held for the first ``lr_hold`` of training and
        then decayed linearly to zero.
    lr_hold : float
        Fraction of training (of ``iterations``, or of the time budget) at
        the full learning rate before the decay starts; 0 decays from the
        start, 1 never decays.
    weight_decay : float
        AdamW's decoupled weight decay (0: Adam).
    gamma : float
        Discount per step; 1 optimises the trial's total reward itself.
    gae_lambda : float
        GAE's lambda, run across episode boundaries within a trial; a low
        value (the value function's estimates rather than the noisy rewards of
        the rest of the trial) learns much faster on long trials.
    advantage_norm : {"minibatch", "batch"}
        Standardise advantages within each minibatch or once over the whole
        batch and all time steps.
    clip : float
        PPO's ratio clip.
    target_kl : float or None
        Stop an iteration's passes early once a minibatch's approximate KL
        from the rollout policy exceeds ``1.5 * target_kl``; None never stops.
    epochs : int
        Passes over each batch.
    minibatches : int
        Minibatches per pass (of whole trials).
    entropy_coef : float
        Entropy bonus at the start, decayed linearly to ``entropy_coef_final``.
    entropy_coef_final : float
    value_coef : float
        Weight of the value loss.
    value_loss : {"mse", "huber"}
        Half squared error, or Huber (delta 1) on the scaled errors.
    max_grad_norm : float
        Gradient clipping (of the policy and the value network separately
        when they are separate).
    baseline_trials : int
        Per iteration, score random play and a greedy (bandits) or
        MDP-knowing (MDPs) policy on this many of the batch's tasks, as
        diagnostics beside the agent's reward; 0 (the default) skips them;
        :meth:`for_setting` uses 256.
    """

    hidden_size: int = 128
    time_input: bool = True
    layer_norm: bool = False
    forget_bias: float = 0.0
    separate_value: bool = False
    normalize_returns: bool = False
    trials_per_batch: int = 256
    lr: float = 3e-3
    lr_hold: float = 0.0
    weight_decay: float = 0.0
    gamma: float = 1.0
    gae_lambda: float = 0.3
    advantage_norm: str = "minibatch"
    clip: float = 0.2
    target_kl: float | None = None
    epochs: int = 4
    minibatches: int = 4
    entropy_coef: float = 0.005
    entropy_coef_final: float = 0.0
    value_coef: float = 0.5
    value_loss: str = "mse"
    max_grad_norm: float = 0.5
    baseline_trials: int = 0

    @classmethod
    def for_setting(cls, env: str, horizon: int, n_arms: int | None = None, **overrides) -> "RL2Config":
        """The recipe for a task family and trial length.

        Short bandit trials (at most 20 pulls) keep the small recipe of
        ``RL2Config()``, with a separate value network. Long trials
        (bandits with more pulls, tabular MDPs) follow what Duan et al. (2016)
        and the PyTorch reproductions needed: a separate value GRU on returns
        normalised by running statistics, gamma 0.99 with GAE lambda 0.3 across
        episode boundaries, advantages standardised over the whole batch,
        clip 0.1 with a KL stop, Huber value loss, a small entropy bonus and an
        update-gate bias of 1, at the batch size one CPU core can afford
        (the paper used 2,500 trials an iteration; raise ``trials_per_batch``
        on a GPU). Learning rate 3e-3 for bandits, 6e-3 for MDPs: at lower
        rates the updates stayed far inside the KL limit and learned more
        slowly (bandits at 1e-3, MDPs at 1e-3 and 3e-3). MDPs hold the rate
        for the first 75% of training before its linear decay: with the
        decay from the start their curve stalled as the rate fell.

        Parameters
        ----------
        env : {"bandit", "mdp"}
        horizon : int
            Pulls per trial (bandit) or episodes per trial (mdp).
        n_arms : int, optional
            Arms of the bandits (unused for MDPs).
        **overrides
            Fields to set on top of the recipe.

        Examples
        --------
        >>> RL2Config.for_setting("bandit", 100, n_arms=10).gae_lambda
        0.3
        """
        if env not in ("bandit", "mdp"):
            raise ValueError(f"env must be 'bandit' or 'mdp', got {env!r}")
        check_int(horizon, "horizon")
        if env == "bandit" and horizon <= 20:
            config = cls(separate_value=True, baseline_trials=256)
        else:
            config = cls(separate_value=True, baseline_trials=256, normalize_returns=True, forget_bias=1.0,
                         trials_per_batch=256, lr=6e-3 if env == "mdp" else 3e-3,
                         lr_hold=0.75 if env == "mdp" else 0.0,
                         gamma=0.99, gae_lambda=0.3, advantage_norm="batch", clip=0.1, target_kl=0.01,
                         epochs=4, minibatches=4, entropy_coef=0.01, entropy_coef_final=0.0, value_coef=1.0,
                         value_loss="huber", max_grad_norm=1.0)
        return replace(config, **overrides)

    def validate(self) -> None:
        """Raise ValueError on a hyperparameter out of range."""
        for name in ("hidden_size", "trials_per_batch", "epochs", "minibatches"):
            check_int(getattr(self, name), name)
        check_int(self.baseline_trials, "baseline_trials", 0)
        if self.minibatches > self.trials_per_batch:
            raise ValueError(f"minibatches ({self.minibatches}) cannot exceed trials_per_batch "
                             f"({self.trials_per_batch})")
        check_fraction(self.gamma, "gamma")
        check_fraction(self.gae_lambda, "gae_lambda")
        check_fraction(self.lr_hold, "lr_hold")
        for name in ("lr", "clip", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("entropy_coef", "entropy_coef_final", "value_coef", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.target_kl is not None and not self.target_kl > 0:
            raise ValueError(f"target_kl must be positive or None, got {self.target_kl!r}")
        if self.advantage_norm not in ADVANTAGE_NORMS:
            raise ValueError(f"advantage_norm must be one of {ADVANTAGE_NORMS}, got {self.advantage_norm!r}")
        if self.value_loss not in VALUE_LOSSES:
            raise ValueError(f"value_loss must be one of {VALUE_LOSSES}, got {self.value_loss!r}")

    def agent_kwargs(self) -> dict:
        """The :class:`RL2Agent` constructor's arguments that this config fixes."""
        return {"hidden_size": self.hidden_size, "time_input": self.time_input, "layer_norm": self.layer_norm,
                "forget_bias": self.forget_bias, "separate_value": self.separate_value}
