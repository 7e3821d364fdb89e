"""``autometa hpo bench``: compare samplers on a suite of the top-level ``benchmarks`` package.

Each suite owns its options (``add_arguments`` of ``benchmarks/hpo_<suite>.py``),
parsed once the suite is known: the top-level parser passes the options it
does not know on (``passes_options``), and the suite is imported only then.
"""

from __future__ import annotations

import argparse

from autometa.apps.cli.options import benchmark

SUITES = ("yahpo", "pmlb")


def register(commands) -> None:
    """Add ``hpo bench`` to ``commands``, the subparsers of ``autometa``."""
    hpo = commands.add_parser("hpo", help="hyperparameter-optimisation benchmarks").add_subparsers(
        dest="hpo", metavar="ACTION", required=True)
    bench = hpo.add_parser("bench", add_help=False, help="compare samplers on a benchmark suite",
                           usage="autometa hpo bench --suite {yahpo,pmlb} [options]  "
                                 "(see: autometa hpo bench --suite SUITE --help)")
    bench.add_argument("--suite", choices=SUITES, required=True)
    bench.add_argument("-h", "--help", action="store_true")
    bench.set_defaults(func=run_bench, passes_options=True)


@benchmark
def run_bench(args) -> None:
    """Run ``autometa hpo bench``: parse ``args.extra`` with the suite's options, then run the suite
    (or print its options for ``--help``)."""
    import importlib

    suite = importlib.import_module(f"benchmarks.hpo_{args.suite}")
    parser = argparse.ArgumentParser(prog=f"autometa hpo bench --suite {args.suite}",
                                     description=suite.__doc__.split("\n\n")[0])
    suite.add_arguments(parser)
    if args.help:
        parser.print_help()
        return
    suite.main(parser.parse_args(args.extra))
