"""Results of evaluated policies: means with 95% confidence intervals."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def mean_ci(totals) -> tuple[float, float]:
    """Mean of per-trial totals and the half-width of its normal 95% confidence interval."""
    totals = np.asarray(totals, dtype=np.float64)
    if totals.ndim != 1 or totals.size < 2:
        raise ValueError(f"need a 1-d array of at least 2 trial totals, got shape {totals.shape}")
    return float(totals.mean()), float(1.96 * totals.std(ddof=1) / math.sqrt(totals.size))


@dataclass(frozen=True)
class PolicyResult:
    """One line of a comparison: a policy's mean total reward per trial.

    Attributes
    ----------
    name : str
        The policy, e.g. ``"UCB1"``.
    mean : float
        Mean total reward per trial.
    half_width : float or None
        95% confidence half-width; None for a value computed exactly.
    detail : str
        Its parameters or how the number was obtained (``"c=0.30"``, ``"exact DP"``).
    """

    name: str
    mean: float
    half_width: float | None = None
    detail: str = ""

    @classmethod
    def from_totals(cls, name: str, totals, detail: str = "") -> "PolicyResult":
        mean, half_width = mean_ci(totals)
        return cls(name, mean, half_width, detail)

    def format(self, name_width: int = 24) -> str:
        spread = f"+- {self.half_width:.3f}" if self.half_width is not None else "(exact)  "
        return f"{self.name:<{name_width}} {self.mean:9.3f} {spread:>9}  {self.detail}".rstrip()
