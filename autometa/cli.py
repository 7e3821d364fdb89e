"""The ``autometa`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class UserError(Exception):
    """A mistake in how the command was called: reported without a traceback."""


def _omniglot_sources(paths: list[str] | None) -> list[Path]:
    from autometa.data._paths import data_root

    if paths:
        return [Path(p) for p in paths]
    root = data_root()
    found = sorted((root / "omniglot").glob("images_background*.zip")) if root else []
    if not found:
        raise UserError("no Omniglot data: pass --data PATH (a zip or folder), or set AUTOMETA_DATA")
    return found


def cmd_demo(args) -> None:
    from autometa.demo import run

    run(seed=args.seed, verbose=not args.quiet and sys.stderr.isatty())


def cmd_bench_omniglot_load(args) -> None:
    from autometa.benchmarks.omniglot_load import run

    run(_omniglot_sources(args.data), image_size=args.image_size)


def cmd_bench_episodes(args) -> None:
    from autometa.benchmarks.episode_sampling import run

    if args.data:
        from autometa.data import load_omniglot

        omniglot = load_omniglot(_omniglot_sources(args.data), rotations=args.rotations)
        X, y, groups = omniglot.images, omniglot.labels, omniglot.groups
    else:
        X = y = groups = None
    run(X, y, groups, n_way=args.n_way, k_shot=args.k_shot, n_query=args.n_query,
        n_episodes=args.episodes, meta_batch=args.meta_batch, random_state=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autometa", description=__doc__)
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser("demo", help="meta-learning end to end on built-in data (no files, no network)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)

    bench = commands.add_parser("bench", help="reproducible benchmarks").add_subparsers(
        dest="benchmark", metavar="BENCHMARK", required=True
    )
    load = bench.add_parser("omniglot-load", help="time a cold and a cached Omniglot load")
    load.add_argument("--data", action="append", help="Omniglot zip or folder (repeatable; default: shared data)")
    load.add_argument("--image-size", type=int, default=28)
    load.set_defaults(func=cmd_bench_omniglot_load)

    episodes = bench.add_parser("episodes", help="time episode sampling on one core")
    episodes.add_argument("--data", action="append", help="Omniglot zip or folder (default: synthetic data of Omniglot's shape)")
    episodes.add_argument("--rotations", action="store_true", help="rotations as new classes")
    episodes.add_argument("--n-way", type=int, default=20)
    episodes.add_argument("--k-shot", type=int, default=5)
    episodes.add_argument("--n-query", type=int, default=15)
    episodes.add_argument("--episodes", type=int, default=1000)
    episodes.add_argument("--meta-batch", type=int, default=32)
    episodes.add_argument("--seed", type=int, default=0)
    episodes.set_defaults(func=cmd_bench_episodes)
    return parser


def _version() -> str:
    from autometa import __version__

    return f"autometa {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (UserError, FileNotFoundError, ValueError) as error:
        print(f"autometa: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autometa: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
