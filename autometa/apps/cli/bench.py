"""``autometa bench``: the reproducible benchmarks of the top-level ``benchmarks`` package.

Each subcommand imports its runner when it runs, so building the parser
imports no torch; ``sampler-overhead`` and ``soak`` take their options from
their runner's ``add_arguments``.
"""

from __future__ import annotations

import sys

from autometa.apps.cli.fewshot import (DISTORTIONS, EVAL_VIEWS, FINE_TUNE_LR, LOSS_HELP, LOSSES, PRECISION_HELP,
                                       PRECISIONS, PROTONET_DISTORTION, PROTONET_PRECISION, SCORINGS, TRAIN_SECONDS)
from autometa.apps.cli.options import (DEVICE_HELP, OMNIGLOT_HELP, UserError, benchmark, comma_ints, comma_list,
                                       comma_non_negative_ints, device, non_negative_int, omniglot_sources,
                                       positive_float, positive_int)


def register(commands) -> None:
    """Add ``bench`` and its benchmarks to ``commands``, the subparsers of ``autometa``."""
    from benchmarks import sampler_overhead, search_cv_pmlb
    from benchmarks import soak as soak_bench

    bench = commands.add_parser("bench", help="reproducible benchmarks").add_subparsers(
        dest="benchmark", metavar="BENCHMARK", required=True
    )
    load = bench.add_parser("omniglot-load", help="time a cold and a cached Omniglot load")
    load.add_argument("--data", action="append", help=OMNIGLOT_HELP)
    load.add_argument("--image-size", type=int, default=28)
    load.set_defaults(func=omniglot_load)

    episodes = bench.add_parser("episodes", help="time episode sampling on one core")
    episodes.add_argument("--data", action="append", help="Omniglot zip or folder (default: synthetic data of Omniglot's shape)")
    episodes.add_argument("--rotations", action="store_true", help="rotations as new classes")
    episodes.add_argument("--n-way", type=int, default=20)
    episodes.add_argument("--k-shot", type=int, default=5)
    episodes.add_argument("--n-query", type=int, default=15)
    episodes.add_argument("--episodes", type=int, default=1000)
    episodes.add_argument("--meta-batch", type=int, default=32)
    episodes.add_argument("--seed", type=non_negative_int, default=0)
    episodes.set_defaults(func=episode_sampling)

    speed = bench.add_parser("maml-speed", help="seconds per MAML meta-step against higher and a plain loop")
    speed.add_argument("--device", default="auto")
    speed.add_argument("--meta-batch", type=int, default=32)
    speed.add_argument("--repeats", type=int, default=5)
    speed.add_argument("--seed", type=non_negative_int, default=0)
    speed.add_argument("--no-tf32", action="store_true",
                       help="CUDA: full float32 convolutions and matmuls (TF32 off) for every contender")
    speed.add_argument("--cudnn-benchmark", action="store_true",
                       help="CUDA: let cuDNN pick the fastest convolution algorithms (for every contender)")
    speed.set_defaults(func=maml_speed)

    sinusoid = bench.add_parser("sinusoid", help="MAML on sinusoids: MSE after 1 and 10 steps, K = 5 and 10")
    sinusoid.add_argument("--steps", type=int, default=70_000, help="meta-steps per model (default: %(default)s)")
    sinusoid.add_argument("--test-tasks", type=int, default=1000)
    sinusoid.add_argument("--shots", type=comma_ints, default="5,10", help="comma-separated K (default: %(default)s)")
    sinusoid.add_argument("--orders", type=comma_list, default="second,first", help="comma-separated: second, first")
    sinusoid.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                          help="outer learning-rate schedule (default: %(default)s, the paper's)")
    sinusoid.add_argument("--seed", type=non_negative_int, default=0)
    sinusoid.add_argument("--quiet", action="store_true")
    sinusoid.set_defaults(func=sinusoid_maml)

    omniglot = bench.add_parser("omniglot", help="5/20-way 1/5-shot accuracy on held-out Omniglot alphabets")
    omniglot.add_argument("--data", action="append", help=OMNIGLOT_HELP)
    omniglot.add_argument("--test-alphabets", type=comma_list, default="Japanese_(katakana),Korean")
    omniglot.add_argument("--algorithms", type=comma_list, default="protonet,matching,maml,reptile")
    omniglot.add_argument("--steps", type=int, default=2000, help="meta-steps per model (default: %(default)s)")
    omniglot.add_argument("--episodes", type=int, default=1000)
    omniglot.add_argument("--ways", type=comma_ints, default="5,20",
                          help="comma-separated ways to score: 5, 20 (default: %(default)s)")
    omniglot.add_argument("--fce", action="store_true",
                          help="Matching Nets with full-context embeddings (the paper's appendix)")
    omniglot.add_argument("--device", default="auto")
    omniglot.add_argument("--seed", type=non_negative_int, default=0)
    omniglot.add_argument("--quiet", action="store_true")
    omniglot.set_defaults(func=omniglot_fewshot)

    lake = bench.add_parser("lake-cv", help="Lake's 20-way one-shot runs cross-validated over four folds of two "
                                            "alphabets of the small background sets, one model per fold")
    lake.add_argument("--data", action="append", help=OMNIGLOT_HELP)
    lake.add_argument("--out", required=True,
                      help="folder keeping each fold's model and runs; a fold whose model is there is scored, "
                           "not retrained")
    lake.add_argument("--time-budget", type=float,
                      help=f"training seconds per fold, as `fewshot train` (default: {TRAIN_SECONDS:.0f} without "
                           f"--steps, none with it)")
    lake.add_argument("--steps", type=int, help="meta-steps per fold (default: until the time budget is spent)")
    lake.add_argument("--scoring", type=comma_list, default="nearest",
                      help=f"comma-separated ways to match queries to classes, each scored on the same models: "
                           f"{', '.join(SCORINGS)} (see `fewshot eval-lake --help`; default: %(default)s)")
    lake.add_argument("--no-validation", action="store_true",
                      help="train each fold's model on all its alphabets and keep the final model, as `fewshot "
                           "train --no-validation`")
    lake.add_argument("--distortion", choices=DISTORTIONS, default=PROTONET_DISTORTION,
                      help="training distortions, as `fewshot train --distortion` (default: ProtoNet's recipe, "
                           "%(default)s)")
    lake.add_argument("--loss", choices=LOSSES, default="prototypes", help=LOSS_HELP + " (default: %(default)s)")
    lake.add_argument("--precision", choices=PRECISIONS, default=PROTONET_PRECISION,
                      help=PRECISION_HELP + " (default: %(default)s)")
    lake.add_argument("--image-size", type=positive_int, default=28,
                      help="the side images are decoded at, for training and scoring, as `fewshot train "
                           "--image-size` (default: %(default)s)")
    lake.add_argument("--ensemble", type=positive_int, default=1,
                      help="ProtoNets per fold, each trained on an equal share of the budget, as `fewshot train "
                           "--ensemble` (default: %(default)s)")
    lake.add_argument("--against",
                      help="the --out folder of an earlier lake-cv run with the same folds and --seed: each scoring "
                           "both have is compared with it run by run (a training choice against another)")
    lake.add_argument("--views", type=comma_ints, default=str(EVAL_VIEWS),
                      help="comma-separated test-time augmentations, as `fewshot eval-lake --views`, each combined "
                           "with each --scoring; the first combination is the reference (default: %(default)s)")
    lake.add_argument("--fine-tune-steps", type=comma_non_negative_ints, default="0",
                      help="comma-separated test-time fine-tuning steps, as `fewshot eval-lake --fine-tune-steps`, "
                           "each combined with each --scoring and --views; 0 for none (default: %(default)s)")
    lake.add_argument("--fine-tune-lr", type=positive_float, default=FINE_TUNE_LR,
                      help="the fine-tuning's learning rate (default: %(default)s)")
    lake.add_argument("--score-on", choices=("test", "validation"), default="test",
                      help="test: the fold's own alphabets; validation: 20 runs from the alphabet each fold's model "
                           "held out for checkpoint selection, to choose test-time settings without looking at the "
                           "test runs (default: %(default)s)")
    lake.add_argument("--device", default="auto", help=DEVICE_HELP)
    lake.add_argument("--seed", type=non_negative_int, default=0)
    lake.add_argument("--quiet", action="store_true", help="no progress bars")
    lake.set_defaults(func=lake_cv)

    scaling = bench.add_parser("scaling", help="meta-training tasks per second on 1 and more processes")
    scaling.add_argument("--algorithm", choices=("maml", "fomaml", "reptile", "protonet", "matching"), default="maml")
    scaling.add_argument("--processes", type=comma_ints, default="1,2",
                         help="comma-separated numbers of processes (default: %(default)s)")
    scaling.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                         help="cuda: one GPU per process, at most the GPUs present (default: %(default)s)")
    scaling.add_argument("--meta-batch", type=int, default=16, help="tasks per meta-step (default: %(default)s)")
    scaling.add_argument("--hidden", type=int, default=32, help="Conv4 filters (default: %(default)s)")
    scaling.add_argument("--steps", type=int, default=5, help="meta-steps per timed segment (default: %(default)s)")
    scaling.add_argument("--repeats", type=int, default=5, help="timed segments per row (default: %(default)s)")
    scaling.add_argument("--warmup", type=int, default=2, help="untimed first steps (default: %(default)s)")
    scaling.add_argument("--threads", type=int, default=1, help="torch threads per process (default: %(default)s)")
    scaling.add_argument("--seed", type=non_negative_int, default=0)
    scaling.set_defaults(func=scaling_throughput)

    overhead = bench.add_parser("sampler-overhead", help="seconds per trial: MetaLearnedSampler against TPE")
    sampler_overhead.add_arguments(overhead)
    overhead.set_defaults(func=benchmark(sampler_overhead.main))

    search_cv = bench.add_parser("search-cv", help="MetaSearchCV against OptunaSearchCV, LightGBMTunerCV and the "
                                                   "untuned default on held-out PMLB data sets")
    search_cv_pmlb.add_arguments(search_cv)
    search_cv.set_defaults(func=benchmark(search_cv_pmlb.main))

    soak = bench.add_parser("soak", help="many workers on one Optuna storage with MetaLearnedSampler: throughput, errors")
    soak_bench.add_arguments(soak)
    soak.set_defaults(func=benchmark(soak_bench.main))

    tabular = bench.add_parser(
        "tabular", help="few-shot on PMLB data vs scikit-learn: 5-way 1/5-shot accuracy on new classes, or "
                        "(--task regression) K-shot MSE on new sinusoids and new groups of PMLB regression data")
    tabular.add_argument("--task", choices=("classification", "regression"), default="classification",
                         help="default: %(default)s")
    tabular.add_argument("--datasets", type=comma_list,
                         help="comma-separated PMLB names (default: local ones with >= 10 classes; "
                              "regression: sinusoid and five PMLB regression data sets)")
    tabular.add_argument("--data", help="the PMLB cache folder (default: pmlb/ under the shared data)")
    tabular.add_argument("--algorithms", type=comma_list,
                         help="default: protonet,matching,maml,reptile; regression: maml,reptile")
    tabular.add_argument("--n-way", type=int, default=5, help="classification only (default: %(default)s)")
    tabular.add_argument("--shots", type=comma_ints, help="comma-separated K (default: 1,5; regression: 5,10)")
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
    tabular.add_argument("--device", default="auto", help=DEVICE_HELP)
    tabular.add_argument("--seed", type=non_negative_int, default=0)
    tabular.add_argument("--quiet", action="store_true", help="no progress bars")
    tabular.set_defaults(func=tabular_fewshot)

    fewshot = bench.add_parser(
        "fewshot-tabular", help="the default FewShotClassifier/-Regressor vs the baselines: design and held-out "
                                "groups of data sets reported separately, meta_fit timing, regression")
    fewshot.add_argument("--part", choices=("classification", "timing", "regression", "all"), default="all",
                         help="default: %(default)s")
    fewshot.add_argument("--group", choices=("design", "heldout", "both"), default="both",
                         help="classification: which group of data sets (default: %(default)s)")
    fewshot.add_argument("--datasets", type=comma_list, help="comma-separated names instead of the group's")
    fewshot.add_argument("--episodes", type=int, default=200,
                         help="episodes per data set and K; regression: tasks per K (default: %(default)s)")
    fewshot.add_argument("--cache", help="folder keeping the baselines' per-episode accuracies between runs")
    fewshot.add_argument("--data", help="the PMLB cache folder (default: pmlb/ under the shared data)")
    fewshot.add_argument("--no-figure", action="store_true", help="do not write docs/figures/fewshot_tabular_*.png")
    fewshot.add_argument("--seed", type=non_negative_int, default=0)
    fewshot.set_defaults(func=fewshot_tabular)


@benchmark
def omniglot_load(args) -> None:
    """Run ``autometa bench omniglot-load``."""
    from benchmarks.omniglot_load import run

    run(omniglot_sources(args.data), image_size=args.image_size)


@benchmark
def episode_sampling(args) -> None:
    """Run ``autometa bench episodes``: on the Omniglot of ``--data``, else on synthetic data of its shape."""
    from benchmarks.episode_sampling import run

    if args.data:
        from autometa.data import load_omniglot

        omniglot = load_omniglot(omniglot_sources(args.data), rotations=args.rotations)
        X, y, groups = omniglot.images, omniglot.labels, omniglot.groups
    else:
        X = y = groups = None
    run(X, y, groups, n_way=args.n_way, k_shot=args.k_shot, n_query=args.n_query,
        n_episodes=args.episodes, meta_batch=args.meta_batch, random_state=args.seed)


@benchmark
def maml_speed(args) -> None:
    """Run ``autometa bench maml-speed``."""
    from benchmarks.maml_speed import run

    run(device=device(args.device), meta_batch=args.meta_batch, repeats=args.repeats, seed=args.seed,
        tf32=not args.no_tf32, cudnn_benchmark=args.cudnn_benchmark)


@benchmark
def sinusoid_maml(args) -> None:
    """Run ``autometa bench sinusoid``."""
    from benchmarks.sinusoid import run

    run(shots=args.shots, orders=args.orders, meta_steps=args.steps, n_test_tasks=args.test_tasks,
        schedule=args.schedule, seed=args.seed, verbose=not args.quiet)


@benchmark
def omniglot_fewshot(args) -> None:
    """Run ``autometa bench omniglot``."""
    from benchmarks.omniglot_fewshot import run

    run(omniglot_sources(args.data), test_alphabets=args.test_alphabets, algorithms=args.algorithms,
        steps=args.steps, n_episodes=args.episodes, device=device(args.device), seed=args.seed,
        verbose=not args.quiet, ways=args.ways, learner_options={"matching": {"fce": True}} if args.fce else None)


@benchmark
def lake_cv(args) -> None:
    """Run ``autometa bench lake-cv``."""
    from benchmarks.lake_cv import run

    unknown = [name for name in args.scoring if name not in SCORINGS]
    if unknown:
        raise UserError(f"--scoring: unknown scoring {unknown[0]!r}; expected {', '.join(SCORINGS)}")
    run(omniglot_sources(args.data), args.out, time_budget=args.time_budget, steps=args.steps, seed=args.seed,
        device=device(args.device), scorings=args.scoring, views=args.views, validation=not args.no_validation,
        distortion=args.distortion, loss=args.loss, against=args.against, fine_tune_steps=args.fine_tune_steps,
        fine_tune_lr=args.fine_tune_lr, score_on=args.score_on, precision=args.precision,
        image_size=args.image_size, ensemble=args.ensemble, verbose=not args.quiet and sys.stderr.isatty())


@benchmark
def scaling_throughput(args) -> None:
    """Run ``autometa bench scaling``."""
    from benchmarks.scaling import run

    run(algorithm=args.algorithm, processes=args.processes, device=args.device, meta_batch=args.meta_batch,
        hidden=args.hidden, steps=args.steps, repeats=args.repeats, warmup=args.warmup, threads=args.threads,
        seed=args.seed)


@benchmark
def fewshot_tabular(args) -> None:
    """Run ``autometa bench fewshot-tabular``."""
    from benchmarks import fewshot_tabular as bench

    if args.part in ("classification", "all"):
        for group in (("design", "heldout") if args.group == "both" else (args.group,)):
            bench.run(group, n_episodes=args.episodes, seed=args.seed, datasets=args.datasets or None,
                      data_dir=args.data, cache_dir=args.cache, figure=not args.no_figure)
    if args.part in ("timing", "all"):
        bench.meta_fit_timing(seed=args.seed)
    if args.part in ("regression", "all"):
        bench.run_regression(n_tasks=args.episodes, seed=args.seed, data_dir=args.data)


@benchmark
def tabular_fewshot(args) -> None:
    """Run ``autometa bench tabular``: classification, or with ``--task regression`` regression; the
    options left out take the defaults of the task."""
    from benchmarks import tabular

    regression = args.task == "regression"

    def given(value, classification, regression_default):
        return value if value is not None else (regression_default if regression else classification)

    common = dict(datasets=args.datasets or None,
                  algorithms=given(args.algorithms, ["protonet", "matching", "maml", "reptile"], ["maml", "reptile"]),
                  shots=given(args.shots, [1, 5], [5, 10]), seed=args.seed, data_dir=args.data,
                  device=device(args.device), verbose=not args.quiet and sys.stderr.isatty())
    if regression:
        tabular.run_regression(n_tasks=given(args.episodes, 200, 300), meta_steps=given(args.meta_steps, 500, 2000),
                               n_groups=args.groups, max_rows=args.max_rows, **common)
    else:
        tabular.run(n_way=args.n_way, n_episodes=given(args.episodes, 200, 300),
                    meta_steps=given(args.meta_steps, 500, 2000), max_per_class=args.max_per_class,
                    backbone=args.backbone, **common)
