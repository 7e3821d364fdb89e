"""``autometa fewshot``: few-shot image classification on Omniglot-style images.

``train`` meta-trains a learner with the Omniglot recipe
(:mod:`autometa.apps.omniglot_recipe`), ``eval-lake`` scores a saved one on
Lake's 20 one-shot runs, ``make-lake-runs`` builds runs in that layout.
"""

from __future__ import annotations

from autometa.apps.cli.options import (DEVICE_HELP, OMNIGLOT_HELP, UserError, as_user_error, comma_list, device,
                                       non_negative_int, omniglot_sources, positive_float, positive_int)

ALGORITHMS = ("protonet", "matching", "maml", "fomaml", "reptile")
# omniglot_recipe.SCORINGS, without importing torch to build the parser
SCORINGS = ("nearest", "two-way", "two-way-inductive")
DISTORTIONS = ("affine", "shear", "elastic")  # the names of omniglot_recipe.DISTORTIONS, likewise
PROTONET_DISTORTION = "shear"  # omniglot_recipe.RECIPES["protonet"].distortion, likewise
PRECISIONS = ("auto", "float32", "bfloat16")  # omniglot_recipe.PRECISIONS, likewise
PROTONET_PRECISION = "auto"  # omniglot_recipe.RECIPES["protonet"].precision, likewise
PRECISION_HELP = ("the precision the backbone trains in: bfloat16 (under autocast; parameters, losses and evaluation "
                  "stay float32), float32, or auto (bfloat16 where the device has it in hardware: a CPU with "
                  "AVX512-BF16 or AMX, a GPU from Ampere on; protonet and matching only)")
LOSSES = ("prototypes", "nca")  # autometa.meta.protonet.LOSSES, likewise
LOSS_HELP = ("ProtoNet's training loss: prototypes (queries against the support set's class means, the paper's) or "
             "nca (every image of an episode against all the others); both classify by prototypes")
TRAIN_SECONDS = 900.0  # omniglot_recipe.TIME_BUDGET, the budget without --steps (for the help)
EVAL_VIEWS = 8  # eval-lake's test-time augmentation (and bench lake-cv's)
FINE_TUNE_LR = 1e-4  # LearnerClassifier's fine_tune_lr default, likewise
FINE_TUNE_HELP = ("test-time fine-tuning: before classifying, train a copy of the model on the run's 20 training "
                  "images alone for this many steps (each image its own class, random distortions as queries; "
                  "uses no test image); 0 for none")


def register(commands) -> None:
    """Add ``fewshot train``, ``fewshot eval-lake`` and ``fewshot make-lake-runs`` to
    ``commands``, the subparsers of ``autometa``."""
    fewshot = commands.add_parser("fewshot", help="few-shot image classification").add_subparsers(
        dest="fewshot", metavar="ACTION", required=True
    )
    train = fewshot.add_parser("train", help="meta-train a few-shot learner on Omniglot-style images")
    train.add_argument("--algorithm", choices=ALGORITHMS, default="protonet")
    train.add_argument("--data", action="append", help=OMNIGLOT_HELP)
    train.add_argument("--out", required=True, help="where to save the model")
    train.add_argument("--n-way", type=positive_int, help="ways per training episode (default: the algorithm's recipe)")
    train.add_argument("--k-shot", type=positive_int, default=1)
    train.add_argument("--meta-batch", type=positive_int,
                       help="episodes per meta-step (default: the algorithm's recipe; with --distributed, at least "
                            "one per process)")
    train.add_argument("--steps", type=positive_int, help="meta-steps (default: until the time budget is spent)")
    train.add_argument("--time-budget", type=positive_float,
                       help=f"seconds (default: {TRAIN_SECONDS:.0f} without --steps, none with it)")
    train.add_argument("--exclude-alphabets", type=comma_list,
                       help="comma-separated alphabets to leave out entirely (for testing)")
    validation = train.add_mutually_exclusive_group()
    validation.add_argument("--val-alphabets", type=comma_list,
                            help="comma-separated alphabets held out for model selection (default: the largest "
                                 "alphabet, with three or more)")
    validation.add_argument("--no-validation", action="store_true",
                            help="train on every alphabet and keep the final model (no checkpoint selection)")
    train.add_argument("--image-size", type=positive_int, default=28)
    train.add_argument("--no-rotations", action="store_true", help="do not add rotated characters as new classes")
    train.add_argument("--no-augment", action="store_true", help="no random affine distortions")
    train.add_argument("--distortion", choices=DISTORTIONS,
                       help="the random distortions of training images: affine (rotation, scale, shift), shear "
                            "(also a shear and a scale per axis, as Koch et al. 2015) or elastic (also a smooth "
                            "displacement of every pixel, as Simard et al. 2003) (default: the algorithm's "
                            f"recipe, {PROTONET_DISTORTION} for protonet and affine for the others)")
    train.add_argument("--loss", choices=LOSSES, help=LOSS_HELP + " (default: prototypes; protonet only)")
    train.add_argument("--precision", choices=PRECISIONS,
                       help=PRECISION_HELP + f" (default: the algorithm's recipe, {PROTONET_PRECISION} for protonet)")
    train.add_argument("--ensemble", type=positive_int, default=1,
                       help="protonet only: train this many models one after the other (seeds --seed, --seed + 1, "
                            "...), each on an equal share of --steps and the time budget, and save them as one "
                            "ProtoNet whose logits are the sum of theirs (default: %(default)s)")
    train.add_argument("--device", default="auto", help=DEVICE_HELP)
    train.add_argument("--seed", type=non_negative_int, default=0)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--distributed", action="store_true",
                       help="train as one rank of a torchrun launch (meta-gradients averaged across ranks)")
    train.set_defaults(func=run_train)

    lake = fewshot.add_parser("eval-lake", help="score a model on a folder of Lake's 20 one-shot runs")
    lake.add_argument("--model", required=True,
                      help="a model saved by `autometa fewshot train`, or pretrained:NAME for one shipped with the "
                           "package (autometa.meta.available_pretrained())")
    lake.add_argument("--runs", required=True, help="folder holding run01 .. run20")
    lake.add_argument("--scoring", choices=SCORINGS, default="nearest",
                      help="nearest: each query alone; two-way: also normalised over the run's queries, which "
                           "discounts a class close to every query (transductive); two-way-inductive: normalised "
                           "instead over random distortions of the other classes' training images, each query "
                           "alone (default: %(default)s)")
    lake.add_argument("--views", type=positive_int, default=EVAL_VIEWS,
                      help="test-time augmentation: each image and VIEWS - 1 random distortions of it, logits "
                           "averaged over a query's views; 1 for none (default: %(default)s)")
    lake.add_argument("--fine-tune-steps", type=non_negative_int, default=0,
                      help=FINE_TUNE_HELP + " (default: %(default)s)")
    lake.add_argument("--fine-tune-lr", type=positive_float, default=FINE_TUNE_LR,
                      help="the fine-tuning's Adam learning rate (default: %(default)s)")
    lake.add_argument("--device", default="auto")
    lake.set_defaults(func=run_eval_lake)

    make_runs = fewshot.add_parser("make-lake-runs", help="build runs in the layout of Lake's benchmark from background images")
    make_runs.add_argument("--data", action="append", help=OMNIGLOT_HELP)
    make_runs.add_argument("--alphabets", type=comma_list,
                           help="comma-separated alphabets to draw from (default: all with >= 20 characters)")
    make_runs.add_argument("--out", required=True, help="an empty or new folder")
    make_runs.add_argument("--runs", type=positive_int, default=20)
    make_runs.add_argument("--seed", type=non_negative_int, default=0)
    make_runs.set_defaults(func=run_make_lake_runs)


def _check_alphabets(option: str, names: list[str], dataset) -> None:
    """UserError unless every name of ``option`` is an alphabet of ``dataset``."""
    unknown = [name for name in names if name not in dataset.alphabet_names]
    if unknown:
        raise UserError(f"{option}: unknown alphabet {unknown[0]!r}; valid alphabets: "
                        f"{', '.join(dataset.alphabet_names)}")


def _check_k_shot(k_shot: int, algorithm: str, dataset) -> None:
    """UserError unless every class has the images of an episode: ``k_shot`` support + the recipe's queries."""
    import numpy as np

    from autometa.apps.omniglot_recipe import RECIPES

    needed = k_shot + RECIPES[algorithm].n_query
    fewest = int(np.bincount(dataset.labels).min())
    if needed > fewest:
        raise UserError(f"--k-shot {k_shot}: an episode needs {needed} images of a class ({k_shot} support, "
                        f"{needed - k_shot} query); the smallest class has {fewest}")


def run_train(args) -> None:
    """Run ``autometa fewshot train``."""
    from autometa.apps import omniglot_recipe
    from autometa.data import load_omniglot
    from autometa.meta import distributed

    if args.distributed and not distributed.launched_with_torchrun():
        raise UserError("--distributed trains as one rank of a torchrun launch: run "
                        "`torchrun --standalone --nproc-per-node N -m autometa fewshot train --distributed ...`")
    if args.loss and args.algorithm != "protonet":
        raise UserError(f"--loss is ProtoNet's training loss; --algorithm {args.algorithm} has its own")
    if args.ensemble > 1 and args.algorithm != "protonet":
        raise UserError(f"--ensemble is of ProtoNets, whose logits add up; --algorithm {args.algorithm} is not "
                        "protonet")
    if args.steps is not None and args.steps < args.ensemble:
        raise UserError(f"--steps {args.steps} cannot be shared by --ensemble {args.ensemble}; give at least one "
                        "step per model")
    with distributed.session(device(args.device), enabled=args.distributed) as context:
        sources = omniglot_sources(args.data)
        with as_user_error(FileNotFoundError, ValueError):
            dataset = load_omniglot(sources, image_size=args.image_size, rotations=not args.no_rotations)
        excluded = args.exclude_alphabets or []
        _check_alphabets("--exclude-alphabets", excluded, dataset)
        if excluded:
            dataset = dataset.subset_alphabets([a for a in dataset.alphabet_names if a not in excluded])
        _check_alphabets("--val-alphabets", args.val_alphabets or [], dataset)
        _check_k_shot(args.k_shot, args.algorithm, dataset)
        if context.is_main:
            print(f"training {args.algorithm} on {len(dataset.alphabet_names)} alphabets, {dataset.n_classes} classes, "
                  f"{len(dataset)} images" + (f", {context.world_size} processes" if args.distributed else ""))
        learner, summary = omniglot_recipe.train(
            dataset, args.algorithm, n_way=args.n_way, k_shot=args.k_shot, steps=args.steps,
            time_budget=args.time_budget,
            val_alphabets=[] if args.no_validation else args.val_alphabets or None,
            device=context.device, seed=args.seed, augmentation=not args.no_augment, distortion=args.distortion,
            verbose=not args.quiet and context.is_main, distributed=args.distributed, meta_batch=args.meta_batch,
            learner_options={"loss": args.loss} if args.loss else None, precision=args.precision,
            ensemble=args.ensemble,
        )
        if context.is_main:  # only rank 0 validated, so only its learner is the selected one
            learner.save(args.out)
            print(", ".join(f"{k}: {v}" for k, v in summary.items()))
            print(f"saved {args.out}")


def run_eval_lake(args) -> None:
    """Run ``autometa fewshot eval-lake``."""
    from autometa.apps.omniglot_recipe import LearnerClassifier, trained_image_size
    from autometa.data import load_lake_runs, pixel_distances, score_lake
    from autometa.meta import MetaLearner

    resolved = device(args.device)
    with as_user_error(FileNotFoundError, ValueError):
        learner = MetaLearner.load(args.model)
    learner.to(resolved)
    with as_user_error(FileNotFoundError, ValueError):
        runs = load_lake_runs(args.runs, image_size=trained_image_size(learner))
    baseline = score_lake(pixel_distances, runs)
    print(f"pixel 1-NN baseline, mean error: {100 * baseline.mean_error:.1f}%")
    with as_user_error(ValueError):
        classifier = LearnerClassifier(learner, resolved, scoring=args.scoring, views=args.views,
                                       fine_tune_steps=args.fine_tune_steps, fine_tune_lr=args.fine_tune_lr)
    print(score_lake(classifier, runs).format())


def run_make_lake_runs(args) -> None:
    """Run ``autometa fewshot make-lake-runs``."""
    from autometa.data import make_lake_runs

    sources = omniglot_sources(args.data)
    with as_user_error(FileNotFoundError, FileExistsError, ValueError):
        out = make_lake_runs(sources, args.out, alphabets=args.alphabets or None, n_runs=args.runs, seed=args.seed)
    print(f"wrote {args.runs} runs to {out}")
