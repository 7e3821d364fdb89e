"""What the commands of ``autometa`` share: :class:`UserError`, the argparse
types of their options, and the readers of the options that several commands
take (``--device``, ``--threads``, ``--data`` for Omniglot).

Importing this module imports nothing heavy; torch is imported by the helpers
that need it, when a command runs.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path

DEVICE_HELP = "auto, cpu, cuda or cuda:N (default: %(default)s)"
OMNIGLOT_HELP = "Omniglot zip or folder (repeatable; default: shared data)"


class UserError(Exception):
    """A mistake in how the command was called: reported as ``autometa: error: ...``, exit status 2."""


@contextmanager
def as_user_error(*errors: type[BaseException]):
    """Re-raise ``errors`` from the enclosed call as :class:`UserError`, message unchanged.

    For a library call that rejects a value the user gave (a missing or
    foreign file, an option value it validates): wrap that call alone.
    Usable as a decorator too.
    """
    try:
        yield
    except errors as error:
        raise UserError(str(error)) from None


def benchmark(command):
    """``command``, which calls a runner of the top-level ``benchmarks`` package,
    with that runner's ValueError / FileNotFoundError (how the runners reject an
    option value or a data path) reported as a :class:`UserError`."""
    return as_user_error(ValueError, FileNotFoundError)(command)


# -- argparse types ------------------------------------------------------------
def integer(low: int = 1, why: str = ""):
    """An argparse type: an integer of at least ``low``; ``why`` explains the bound in the error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            what = "a positive integer" if low == 1 else f"an integer >= {low}"
            raise argparse.ArgumentTypeError(f"must be {what}{f' ({why})' if why else ''}, got {text!r}")
        return value

    return parse


positive_int = integer(1)
non_negative_int = integer(0)  # seeds: NumPy's generators take no negative seed


def positive_float(text: str) -> float:
    """An argparse type: a real number above zero."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def comma_list(text: str | None) -> list[str]:
    """The items of a comma-separated option, spaces trimmed, empty ones left out (none for None or "")."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def comma_ints(text: str, minimum: int = 1) -> list[int]:
    """An argparse type: comma-separated integers of at least ``minimum`` (positive by default), such as ``5,10``."""
    try:
        values = [int(item) for item in comma_list(text)]
    except ValueError:
        values = []
    if not values or min(values) < minimum:
        kind = "positive" if minimum == 1 else f"at least {minimum}" if minimum else "non-negative"
        raise argparse.ArgumentTypeError(f"expected comma-separated {kind} integers, got {text!r}")
    return values


def comma_non_negative_ints(text: str) -> list[int]:
    """An argparse type: comma-separated integers >= 0, such as ``0,20``."""
    return comma_ints(text, minimum=0)


# -- readers of shared options -------------------------------------------------
def device(name: str) -> str:
    """The ``--device`` option resolved (``auto``: CUDA when available), or a UserError."""
    from autometa._common import resolve_device

    try:
        return str(resolve_device(name))
    except ValueError as error:
        raise UserError(f"--device: {error}") from None


def set_threads(threads: int | None) -> None:
    """Apply ``--threads``: ``torch.set_num_threads(threads)`` unless None (torch's choice)."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)


def omniglot_sources(paths: list[str] | None) -> list[Path]:
    """The ``--data`` option of the Omniglot commands: the paths given, else the
    background zips in the shared data folder, else a UserError."""
    from autometa.data._paths import data_root

    if paths:
        return [Path(p) for p in paths]
    root = data_root()
    found = sorted((root / "omniglot").glob("images_background*.zip")) if root else []
    if not found:
        raise UserError("no Omniglot data: pass --data PATH (a zip or folder), or set AUTOMETA_DATA")
    return found
