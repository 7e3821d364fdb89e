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
    from autometa.apps.demo import run

    run(out=args.out, seed=args.seed, verbose=not args.quiet and sys.stderr.isatty())


def cmd_bench_omniglot_load(args) -> None:
    from benchmarks.omniglot_load import run

    run(_omniglot_sources(args.data), image_size=args.image_size)


def cmd_bench_episodes(args) -> None:
    from benchmarks.episode_sampling import run

    if args.data:
        from autometa.data import load_omniglot

        omniglot = load_omniglot(_omniglot_sources(args.data), rotations=args.rotations)
        X, y, groups = omniglot.images, omniglot.labels, omniglot.groups
    else:
        X = y = groups = None
    run(X, y, groups, n_way=args.n_way, k_shot=args.k_shot, n_query=args.n_query,
        n_episodes=args.episodes, meta_batch=args.meta_batch, random_state=args.seed)


def _device(name: str) -> str:
    """The ``--device`` option resolved (``auto``: CUDA when available), or a UserError."""
    from autometa._common import resolve_device

    try:
        return str(resolve_device(name))
    except ValueError as error:
        raise UserError(f"--device: {error}") from None


def _alphabets(text: str | None) -> list[str]:
    return [a for a in (text or "").split(",") if a]


def cmd_fewshot_train(args) -> None:
    from autometa.apps import omniglot_recipe as fewshot
    from autometa.data import load_omniglot
    from autometa.meta import distributed

    if args.distributed and not distributed.launched_with_torchrun():
        raise UserError("--distributed trains as one rank of a torchrun launch: run "
                        "`torchrun --standalone --nproc-per-node N -m autometa fewshot train --distributed ...`")
    with distributed.session(_device(args.device), enabled=args.distributed) as context:
        dataset = load_omniglot(_omniglot_sources(args.data), image_size=args.image_size,
                                rotations=not args.no_rotations)
        excluded = _alphabets(args.exclude_alphabets)
        if excluded:
            dataset = dataset.subset_alphabets([a for a in dataset.alphabet_names if a not in excluded])
        if context.is_main:
            print(f"training {args.algorithm} on {len(dataset.alphabet_names)} alphabets, {dataset.n_classes} classes, "
                  f"{len(dataset)} images" + (f", {context.world_size} processes" if args.distributed else ""))
        learner, summary = fewshot.train(
            dataset, args.algorithm, n_way=args.n_way, k_shot=args.k_shot, steps=args.steps,
            time_budget=args.time_budget, val_alphabets=_alphabets(args.val_alphabets) or None,
            device=context.device, seed=args.seed, augmentation=not args.no_augment,
            verbose=not args.quiet and context.is_main, distributed=args.distributed, meta_batch=args.meta_batch,
        )
        if context.is_main:  # only rank 0 validated, so only its learner is the selected one
            learner.save(args.out)
            print(", ".join(f"{k}: {v}" for k, v in summary.items()))
            print(f"saved {args.out}")


def cmd_fewshot_eval_lake(args) -> None:
    from autometa.data import load_lake_runs, pixel_distances, score_lake
    from autometa.apps.omniglot_recipe import LearnerClassifier
    from autometa.meta import MetaLearner

    device = _device(args.device)
    learner = MetaLearner.load(args.model).to(device)
    image_size = (learner.config.get("backbone") or {}).get("image_size", 28)
    runs = load_lake_runs(args.runs, image_size=image_size)
    baseline = score_lake(pixel_distances, runs)
    print(f"pixel 1-NN baseline, mean error: {100 * baseline.mean_error:.1f}%")
    print(score_lake(LearnerClassifier(learner, device), runs).format())


def cmd_fewshot_make_lake_runs(args) -> None:
    from autometa.data import make_lake_runs

    out = make_lake_runs(_omniglot_sources(args.data), args.out, alphabets=_alphabets(args.alphabets) or None,
                         n_runs=args.runs, seed=args.seed)
    print(f"wrote {args.runs} runs to {out}")


def cmd_bench_maml_speed(args) -> None:
    from benchmarks.maml_speed import run

    run(device=_device(args.device), meta_batch=args.meta_batch, repeats=args.repeats, seed=args.seed,
        tf32=not args.no_tf32, cudnn_benchmark=args.cudnn_benchmark)


def cmd_bench_sinusoid(args) -> None:
    from benchmarks.sinusoid import run

    run(shots=[int(k) for k in args.shots.split(",")], orders=args.orders.split(","), meta_steps=args.steps,
        n_test_tasks=args.test_tasks, schedule=args.schedule, seed=args.seed, verbose=not args.quiet)


def cmd_bench_omniglot(args) -> None:
    from benchmarks.omniglot_fewshot import run

    run(_omniglot_sources(args.data), test_alphabets=_alphabets(args.test_alphabets),
        algorithms=_alphabets(args.algorithms), steps=args.steps, n_episodes=args.episodes,
        device=_device(args.device), seed=args.seed, verbose=not args.quiet,
        ways=[int(w) for w in _alphabets(args.ways)])


HPO_SUITES = ("yahpo", "pmlb")


def cmd_hpo_bench(args) -> None:
    import importlib

    suite = importlib.import_module(f"benchmarks.hpo_{args.suite}")
    parser = argparse.ArgumentParser(prog=f"autometa hpo bench --suite {args.suite}", description=suite.__doc__.split("\n\n")[0])
    suite.add_arguments(parser)
    if args.help:
        parser.print_help()
        return
    suite.main(parser.parse_args(args.extra))


def cmd_bench_scaling(args) -> None:
    from benchmarks.scaling import run

    run(algorithm=args.algorithm, processes=[int(p) for p in _alphabets(args.processes)], device=args.device,
        meta_batch=args.meta_batch, hidden=args.hidden, steps=args.steps, repeats=args.repeats, warmup=args.warmup,
        threads=args.threads, seed=args.seed)


def cmd_bench_tabular(args) -> None:
    from benchmarks import tabular

    regression = args.task == "regression"

    def given(value, classification, regression_default):
        return value if value is not None else (regression_default if regression else classification)

    common = dict(datasets=_alphabets(args.datasets) or None,
                  algorithms=_alphabets(given(args.algorithms, "protonet,matching,maml,reptile", "maml,reptile")),
                  shots=[int(k) for k in given(args.shots, "1,5", "5,10").split(",")], seed=args.seed,
                  data_dir=args.data, device=_device(args.device), verbose=not args.quiet and sys.stderr.isatty())
    if regression:
        tabular.run_regression(n_tasks=given(args.episodes, 200, 300), meta_steps=given(args.meta_steps, 500, 2000),
                               n_groups=args.groups, max_rows=args.max_rows, **common)
    else:
        tabular.run(n_way=args.n_way, n_episodes=given(args.episodes, 200, 300),
                    meta_steps=given(args.meta_steps, 500, 2000), max_per_class=args.max_per_class,
                    backbone=args.backbone, **common)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autometa", description=__doc__)
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser("demo", help="meta-learning end to end on built-in data (no files, no network)")
    demo.add_argument("--out", default="autometa-demo", help="folder for the plots (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)

    fewshot = commands.add_parser("fewshot", help="few-shot image classification").add_subparsers(
        dest="fewshot", metavar="ACTION", required=True
    )
    train = fewshot.add_parser("train", help="meta-train a few-shot learner on Omniglot-style images")
    train.add_argument("--algorithm", choices=("protonet", "matching", "maml", "fomaml", "reptile"), default="protonet")
    train.add_argument("--data", action="append", help="Omniglot zip or folder (repeatable; default: shared data)")
    train.add_argument("--out", required=True, help="where to save the model")
    train.add_argument("--n-way", type=int, help="ways per training episode (default: the algorithm's recipe)")
    train.add_argument("--k-shot", type=int, default=1)
    train.add_argument("--meta-batch", type=int,
                       help="episodes per meta-step (default: the algorithm's recipe; with --distributed, at least "
                            "one per process)")
    train.add_argument("--steps", type=int, help="meta-steps (default: until the time budget is spent)")
    train.add_argument("--time-budget", type=float, default=900.0, help="seconds (default: %(default)s)")
    train.add_argument("--exclude-alphabets", help="comma-separated alphabets to leave out entirely (for testing)")
    train.add_argument("--val-alphabets", help="comma-separated alphabets held out for model selection")
    train.add_argument("--image-size", type=int, default=28)
    train.add_argument("--no-rotations", action="store_true", help="do not add rotated characters as new classes")
    train.add_argument("--no-augment", action="store_true", help="no random affine distortions")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--distributed", action="store_true",
                       help="train as one rank of a torchrun launch (meta-gradients averaged across ranks)")
    train.set_defaults(func=cmd_fewshot_train)

    lake = fewshot.add_parser("eval-lake", help="score a model on a folder of Lake's 20 one-shot runs")
    lake.add_argument("--model", required=True)
    lake.add_argument("--runs", required=True, help="folder holding run01 .. run20")
    lake.add_argument("--device", default="auto")
    lake.set_defaults(func=cmd_fewshot_eval_lake)

    make_runs = fewshot.add_parser("make-lake-runs", help="build runs in the layout of Lake's benchmark from background images")
    make_runs.add_argument("--data", action="append", help="Omniglot zip or folder (repeatable; default: shared data)")
    make_runs.add_argument("--alphabets", help="comma-separated alphabets to draw from (default: all with >= 20 characters)")
    make_runs.add_argument("--out", required=True, help="an empty or new folder")
    make_runs.add_argument("--runs", type=int, default=20)
    make_runs.add_argument("--seed", type=int, default=0)
    make_runs.set_defaults(func=cmd_fewshot_make_lake_runs)

    from autometa.apps.cli.rl2 import add_parser as add_rl2_parser

    add_rl2_parser(commands)

    from autometa.apps.cli.kb import add_kb_parser

    add_kb_parser(commands)

    hpo = commands.add_parser("hpo", help="hyperparameter-optimisation benchmarks").add_subparsers(
        dest="hpo", metavar="ACTION", required=True)
    # each suite owns its options (benchmarks/hpo_<suite>.py), parsed once the suite is known
    hpo_bench = hpo.add_parser("bench", add_help=False, help="compare samplers on a benchmark suite",
                               usage="autometa hpo bench --suite {yahpo,pmlb} [options]  "
                                     "(see: autometa hpo bench --suite SUITE --help)")
    hpo_bench.add_argument("--suite", choices=HPO_SUITES, required=True)
    hpo_bench.add_argument("-h", "--help", action="store_true")
    hpo_bench.set_defaults(func=cmd_hpo_bench, suite_options=True)

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

    speed = bench.add_parser("maml-speed", help="seconds per MAML meta-step against higher and a plain loop")
    speed.add_argument("--device", default="auto")
    speed.add_argument("--meta-batch", type=int, default=32)
    speed.add_argument("--repeats", type=int, default=5)
    speed.add_argument("--seed", type=int, default=0)
    speed.add_argument("--no-tf32", action="store_true",
                       help="CUDA: full float32 convolutions and matmuls (TF32 off) for every contender")
    speed.add_argument("--cudnn-benchmark", action="store_true",
                       help="CUDA: let cuDNN pick the fastest convolution algorithms (for every contender)")
    speed.set_defaults(func=cmd_bench_maml_speed)

    sinusoid = bench.add_parser("sinusoid", help="MAML on sinusoids: MSE after 1 and 10 steps, K = 5 and 10")
    sinusoid.add_argument("--steps", type=int, default=70_000, help="meta-steps per model (default: %(default)s)")
    sinusoid.add_argument("--test-tasks", type=int, default=1000)
    sinusoid.add_argument("--shots", default="5,10", help="comma-separated K (default: %(default)s)")
    sinusoid.add_argument("--orders", default="second,first", help="comma-separated: second, first")
    sinusoid.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                          help="outer learning-rate schedule (default: %(default)s, the paper's)")
    sinusoid.add_argument("--seed", type=int, default=0)
    sinusoid.add_argument("--quiet", action="store_true")
    sinusoid.set_defaults(func=cmd_bench_sinusoid)

    omniglot = bench.add_parser("omniglot", help="5/20-way 1/5-shot accuracy on held-out Omniglot alphabets")
    omniglot.add_argument("--data", action="append", help="Omniglot zip or folder (repeatable; default: shared data)")
    omniglot.add_argument("--test-alphabets", default="Japanese_(katakana),Korean")
    omniglot.add_argument("--algorithms", default="protonet,matching,maml,reptile")
    omniglot.add_argument("--steps", type=int, default=2000, help="meta-steps per model (default: %(default)s)")
    omniglot.add_argument("--episodes", type=int, default=1000)
    omniglot.add_argument("--ways", default="5,20", help="comma-separated ways to score: 5, 20 (default: %(default)s)")
    omniglot.add_argument("--device", default="auto")
    omniglot.add_argument("--seed", type=int, default=0)
    omniglot.add_argument("--quiet", action="store_true")
    omniglot.set_defaults(func=cmd_bench_omniglot)

    scaling = bench.add_parser("scaling", help="meta-training tasks per second on 1 and more processes")
    scaling.add_argument("--algorithm", choices=("maml", "fomaml", "reptile", "protonet", "matching"), default="maml")
    scaling.add_argument("--processes", default="1,2", help="comma-separated numbers of processes (default: %(default)s)")
    scaling.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                         help="cuda: one GPU per process, at most the GPUs present (default: %(default)s)")
    scaling.add_argument("--meta-batch", type=int, default=16, help="tasks per meta-step (default: %(default)s)")
    scaling.add_argument("--hidden", type=int, default=32, help="Conv4 filters (default: %(default)s)")
    scaling.add_argument("--steps", type=int, default=5, help="meta-steps per timed segment (default: %(default)s)")
    scaling.add_argument("--repeats", type=int, default=5, help="timed segments per row (default: %(default)s)")
    scaling.add_argument("--warmup", type=int, default=2, help="untimed first steps (default: %(default)s)")
    scaling.add_argument("--threads", type=int, default=1, help="torch threads per process (default: %(default)s)")
    scaling.add_argument("--seed", type=int, default=0)
    scaling.set_defaults(func=cmd_bench_scaling)

    overhead = bench.add_parser("sampler-overhead", help="seconds per trial: MetaLearnedSampler against TPE")
    from benchmarks import sampler_overhead

    sampler_overhead.add_arguments(overhead)
    overhead.set_defaults(func=sampler_overhead.main)

    soak = bench.add_parser("soak", help="many workers on one Optuna storage with MetaLearnedSampler: throughput, errors")
    from benchmarks import soak as soak_bench

    soak_bench.add_arguments(soak)
    soak.set_defaults(func=soak_bench.main)

    tabular = bench.add_parser(
        "tabular", help="few-shot on PMLB data vs scikit-learn: 5-way 1/5-shot accuracy on new classes, or "
                        "(--task regression) K-shot MSE on new sinusoids and new groups of PMLB regression data")
    tabular.add_argument("--task", choices=("classification", "regression"), default="classification",
                         help="default: %(default)s")
    tabular.add_argument("--datasets", help="comma-separated PMLB names (default: local ones with >= 10 classes; "
                                            "regression: sinusoid and five PMLB regression data sets)")
    tabular.add_argument("--data", help="the PMLB cache folder (default: pmlb/ under the shared data)")
    tabular.add_argument("--algorithms", help="default: protonet,matching,maml,reptile; regression: maml,reptile")
    tabular.add_argument("--n-way", type=int, default=5, help="classification only (default: %(default)s)")
    tabular.add_argument("--shots", help="comma-separated K (default: 1,5; regression: 5,10)")
    tabular.add_argument("--episodes", type=int, help="episodes (new tasks) per data set and K (default: 200; "
                                                      "regression: 300)")
    tabular.add_argument("--meta-steps", type=int, help="meta-steps per model (default: 500; regression: 2000)")
    tabular.add_argument("--max-per-class", type=int, default=200,
                         help="classification: rows kept per class (default: %(default)s)")
    tabular.add_argument("--backbone", choices=("mlp", "skip_mlp"), default="mlp",
                         help="classification: embedding of protonet and matching (default: %(default)s)")
    tabular.add_argument("--groups", type=int, default=20,
                         help="regression: k-means groups (tasks) per PMLB data set (default: %(default)s)")
    tabular.add_argument("--max-rows", type=int, default=5000,
                         help="regression: rows kept per PMLB data set (default: %(default)s)")
    tabular.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    tabular.add_argument("--seed", type=int, default=0)
    tabular.add_argument("--quiet", action="store_true", help="no progress bars")
    tabular.set_defaults(func=cmd_bench_tabular)
    return parser


def _version() -> str:
    from autometa import __version__

    return f"autometa {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "suite_options", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
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
