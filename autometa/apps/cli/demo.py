"""``autometa demo``: meta-learning end to end on built-in data (no files, no network)."""

from __future__ import annotations

import sys

from autometa.apps.cli.options import non_negative_int


def register(commands) -> None:
    """Add ``demo`` to ``commands``, the subparsers of ``autometa``."""
    demo = commands.add_parser("demo", help="meta-learning end to end on built-in data (no files, no network)")
    demo.add_argument("--out", default="autometa-demo", help="folder for the plots (default: %(default)s)")
    demo.add_argument("--seed", type=non_negative_int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=run_demo)


def run_demo(args) -> None:
    """Run ``autometa demo``."""
    from autometa.apps.demo import run

    run(out=args.out, seed=args.seed, verbose=not args.quiet and sys.stderr.isatty())
