"""The machine and library versions every benchmark prints beside its numbers."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path


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
