"""The hyperparameters of RL^2 training, in one place (imports no torch, so the
command line can show their defaults cheaply)."""

from __future__ import annotations

from dataclasses import dataclass

from autometa._common import check_fraction, check_int


@dataclass
class RL2Config:
    """Every hyperparameter of RL^2 training.

    Attributes
    ----------
    hidden_size : int
        GRU width.
    time_input : bool
        Feed the fraction of the trial elapsed (see :class:`RL2Agent`).
    trials_per_batch : int
        Trials played per PPO iteration.
    lr : float
        Adam learning rate, decayed linearly to zero over training.
    gamma : float
        Discount per step; 1 optimises the trial's total reward itself.
    gae_lambda : float
        GAE's lambda; a low value (the value function's estimates rather than
        the noisy rewards of the rest of the trial) learns much faster on
        bandits.
    clip : float
        PPO's ratio clip.
    epochs : int
        Passes over each batch.
    minibatches : int
        Minibatches per pass (of whole trials).
    entropy_coef : float
        Entropy bonus at the start, decayed linearly to ``entropy_coef_final``.
    entropy_coef_final : float
    value_coef : float
        Weight of the value loss (measured in units of the trial length).
    max_grad_norm : float
        Gradient clipping.
    """

    hidden_size: int = 128
    time_input: bool = True
    trials_per_batch: int = 256
    lr: float = 3e-3
    gamma: float = 1.0
    gae_lambda: float = 0.3
    clip: float = 0.2
    epochs: int = 4
    minibatches: int = 4
    entropy_coef: float = 0.005
    entropy_coef_final: float = 0.0
    value_coef: float = 0.5
    max_grad_norm: float = 0.5

    def validate(self) -> None:
        """Raise ValueError on a hyperparameter out of range."""
        for name in ("hidden_size", "trials_per_batch", "epochs", "minibatches"):
            check_int(getattr(self, name), name)
        if self.minibatches > self.trials_per_batch:
            raise ValueError(f"minibatches ({self.minibatches}) cannot exceed trials_per_batch "
                             f"({self.trials_per_batch})")
        check_fraction(self.gamma, "gamma")
        check_fraction(self.gae_lambda, "gae_lambda")
        for name in ("lr", "clip", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("entropy_coef", "entropy_coef_final", "value_coef"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
