"""Validation helpers shared by the RL^2 modules."""

from __future__ import annotations

import numbers


def check_positive_int(name: str, value, minimum: int = 1, hint: str = "") -> None:
    """Raise ValueError unless ``value`` is an int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        extra = f" ({hint})" if hint else ""
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}{extra}")


def check_fraction(name: str, value, low: float = 0.0, high: float = 1.0) -> None:
    """Raise ValueError unless ``low <= value <= high``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
