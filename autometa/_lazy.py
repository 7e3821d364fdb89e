"""Public names of a package that import their module on first use (PEP 562)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping


def lazy_attributes(package: str, modules: Mapping[str, str],
                    also: Iterable[str] = ()) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: name -> module that defines it.

    A module name starting with ``"."`` is relative to ``package``. ``also``
    lists names the package defines itself, for ``dir()``.
    """
    listed = sorted({*modules, *also})

    def __getattr__(name: str):
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    def __dir__() -> list[str]:
        return listed

    return __getattr__, __dir__
