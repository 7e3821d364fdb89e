"""Results of evaluated policies: means with 95% confidence intervals."""

from __future__ import annotations

from dataclasses import dataclass


from autometa._common import mean_ci


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
