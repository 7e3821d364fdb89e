"""Helpers every layer of autometa shares: device resolution, argument checks,
confidence intervals, safe archives, and the machine line benchmarks print.

Each lives here once; no module imports anything of autometa's from here back.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import platform
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np


# -- devices -------------------------------------------------------------------
def resolve_device(device="auto", *, fallback: bool = False):
    """``device`` as a :class:`torch.device`; ``"auto"`` means CUDA when available, else the CPU.

    A CUDA device on a machine without CUDA is a ValueError that says to use
    the CPU, or, with ``fallback`` (loading a saved model), the CPU with a
    warning.
    """
    import torch

    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto' or a torch device such as 'cpu' or 'cuda:0', got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        if not fallback:
            raise ValueError(f"device {device!r}: CUDA is not available on this machine; use 'cpu'")
        warnings.warn(f"device={device!r} is not available here; it is loaded on the CPU", UserWarning, stacklevel=2)
        return torch.device("cpu")
    return resolved


# -- argument checks -----------------------------------------------------------
def is_int(value, low: int = 1) -> bool:
    """True for an integer (not a bool) of at least ``low``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low


def is_positive(value) -> bool:
    """True for a real number (not a bool) above zero."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0


def check_int(value, name: str, low: int = 1, *, allow_none: bool = False, hint: str = "") -> None:
    """ValueError unless ``value`` is an integer >= ``low`` (or None where allowed);
    ``hint`` says why, in the message."""
    if value is None and allow_none:
        return
    if not is_int(value, low):
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        why = f" ({hint})" if hint else ""
        raise ValueError(f"{name} must be {what}{' or None' if allow_none else ''}, got {value!r}{why}")


def check_positive(value, name: str, *, allow_none: bool = False) -> None:
    """ValueError unless ``value`` is a positive real number (or None where allowed)."""
    if value is None and allow_none:
        return
    if not is_positive(value):
        raise ValueError(f"{name} must be a positive number{' or None' if allow_none else ''}, got {value!r}")


def check_fraction(value, name: str, low: float = 0.0, high: float = 1.0) -> None:
    """ValueError unless ``value`` is a real number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")


# -- statistics ----------------------------------------------------------------
def mean_ci(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean of ``values`` and the half-width of its Student-t confidence interval
    (the one convention of every interval autometa prints); NaN half-width for
    a single value."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size < 1:
        raise ValueError(f"a mean needs a 1-d array of at least one value, got shape {values.shape}")
    if values.size == 1:
        return float(values[0]), math.nan
    from scipy.stats import t

    quantile = float(t.ppf(0.5 + confidence / 2, values.size - 1))
    return float(values.mean()), float(quantile * values.std(ddof=1) / math.sqrt(values.size))


# -- archives ------------------------------------------------------------------
@contextlib.contextmanager
def _atomic_file(path: Path, mode: str):
    """A file opened on a temporary name beside ``path`` and renamed to ``path`` once the
    block ends without error; on any error the temporary file is removed and ``path`` is
    left as it was."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as file:
            yield file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename: a crash
    mid-write leaves any earlier file intact."""
    with _atomic_file(Path(path), "w") as file:
        file.write(text)


def atomic_torch_save(payload: dict, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a crash
    mid-write leaves any earlier file intact."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_file(path, "wb") as file:
        torch.save(payload, file)
        file.flush()
        os.fsync(file.fileno())


def read_payload(path: str | os.PathLike, map_location, *, format: str, version: int, kind: str,
                 how_to_make: str = "") -> dict:
    """Read an autometa archive safely (no code is unpickled) and check its header.

    ``format`` and ``version`` are the header an archive of this ``kind``
    (e.g. "model") must carry; ``how_to_make`` (e.g. "train one with
    `autometa fewshot train`") ends the errors for a missing or foreign file.
    """
    import torch

    path = Path(path)
    hint = f"; {how_to_make}" if how_to_make else ""
    if not path.is_file():
        raise FileNotFoundError(f"no {kind} file at {path}{hint}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        raise ValueError(
            f"{path} is not a readable autometa {kind} file (corrupt, truncated, or not "
            f"written by autometa): {type(error).__name__}: {str(error).splitlines()[0][:200]}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != format:
        raise ValueError(f"{path} is not an autometa {kind} file{hint}")
    if payload.get("version") != version:
        raise ValueError(
            f"{path} has format version {payload.get('version')}; this autometa reads "
            f"version {version}: upgrade autometa or re-train the {kind}"
        )
    return payload


# -- the machine ---------------------------------------------------------------
PRETRAINED_PREFIX = "pretrained:"


def shipped_names(directory: Path) -> list[str]:
    """The names of the ``.pt`` files shipped in ``directory`` (a package folder), sorted."""
    return sorted(p.stem for p in directory.glob("*.pt"))


def shipped_file(directory: Path, name: str, kind: str) -> Path:
    """The shipped ``.pt`` file ``name`` (with or without ``"pretrained:"``) of ``directory``;
    ValueError naming the available ones for an unknown name."""
    name = name.removeprefix(PRETRAINED_PREFIX)
    names = shipped_names(directory)
    if name not in names:
        raise ValueError(f"no pretrained {kind} named {name!r}; available: {', '.join(names) or 'none'}")
    return directory / f"{name}.pt"


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` (with Python's), ``"-"`` for a missing one."""
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "-"
    return found


def describe(device: str = "cpu", packages=("autometa", "torch", "numpy")) -> str:
    """One line naming the machine (CPU model and cores, or the GPU) and the versions."""
    where = f"{cpu_name()}, {os.cpu_count()} cores"
    if device.startswith("cuda"):
        import torch

        where = f"{torch.cuda.get_device_name(device)}; host {where}"
    return f"{where}; " + ", ".join(f"{k} {v}" for k, v in versions(*packages).items())
