"""Where autometa looks for data sets and keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path | None:
    """The root of the data folders (``omniglot/``, ``pmlb/``, ``yahpo/``).

    ``$AUTOMETA_DATA`` when set, else ``../shared/data`` beside a source
    checkout of autometa when that folder exists, else ``None``.
    """
    env = os.environ.get("AUTOMETA_DATA")
    if env:
        return Path(env).expanduser()
    shared = _REPO_ROOT.parent / "shared" / "data"
    return shared if shared.is_dir() else None


def cache_dir() -> Path:
    """autometa's cache folder: ``$AUTOMETA_CACHE``, else ``$XDG_CACHE_HOME/autometa``
    (``~/.cache/autometa``)."""
    env = os.environ.get("AUTOMETA_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "autometa"
