"""The ``autometa`` command.

Each command group is a module of this package with a ``register(commands)``
that adds its subcommands to the top-level subparsers, each subcommand with
``func``, the function that runs it; :data:`COMMANDS` lists them in the order
of ``autometa --help``. Building the parser imports no torch, Optuna or
scikit-learn: a command imports what it needs when it runs.

A command reports a mistake of its caller by raising :class:`UserError`
(options it checks itself, and the errors of a library call that rejects a
value the user gave, translated at that call); :func:`main` prints it as
``autometa: error: ...`` and exits with status 2. Any other exception is a
bug, and ends with its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from autometa.apps.cli import bench, demo, fewshot, hpo, kb, rl2
from autometa.apps.cli.options import UserError

__all__ = ["COMMANDS", "UserError", "build_parser", "main", "use_huge_pages_for_torch"]

COMMANDS = (demo, fewshot, rl2, kb, hpo, bench)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``autometa``, with every command of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="autometa", description="Meta-learning made practical: few-shot learning, warm-started "
                                     "hyperparameter search, RL^2. Each command has its own --help.")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(commands)
    return parser


def _version() -> str:
    from autometa import __version__

    return f"autometa {__version__}"


def use_huge_pages_for_torch() -> None:
    """Let torch's CPU allocator back large tensors with transparent huge pages (Linux).

    Without it, each large activation is a fresh mapping whose 4 KiB pages
    fault in again at every training step: on a 2-core machine half of a
    ProtoNet step's CPU time went to the kernel. torch reads
    ``THP_MEM_ALLOC_ENABLE`` at its first large allocation, so this must run
    before any; a value the user set is kept (``THP_MEM_ALLOC_ENABLE=0``
    turns it off).
    """
    if sys.platform.startswith("linux"):
        os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def main(argv: list[str] | None = None) -> int:
    """Run ``autometa`` with ``argv`` (default: the process's); return the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passes_options", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    use_huge_pages_for_torch()
    try:
        args.func(args)
    except UserError as error:
        print(f"autometa: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autometa: interrupted", file=sys.stderr)
        return 130
    return 0
