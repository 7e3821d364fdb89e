"""``autometa kb``: build knowledge bases from PMLB data, export them, and meta-train their surrogates."""

from __future__ import annotations

import argparse

from autometa.apps.cli.options import UserError, as_user_error, comma_list


# The names of autometa.hpo.spaces.SEARCH_SPACES, kept here so that `--help` imports no scikit-learn
# (tests/test_spaces.py checks that they agree).
SPACE_NAMES = ("hist_gradient_boosting", "random_forest", "svc", "logistic_regression", "k_nearest_neighbors", "mlp",
               "lightgbm", "xgboost",
               "hist_gradient_boosting_regressor", "random_forest_regressor", "svr", "ridge",
               "lightgbm_regressor", "xgboost_regressor")


def register(commands) -> None:
    """Add ``kb build``, ``kb export`` and ``kb surrogate`` to ``commands``, the subparsers of ``autometa``."""
    kb = commands.add_parser("kb", help="knowledge bases of earlier studies for MetaLearnedSampler")
    actions = kb.add_subparsers(dest="kb_command", metavar="ACTION", required=True)

    build = actions.add_parser(
        "build", help="tune an estimator on each PMLB data set into an Optuna storage (resumable, parallel)",
        description="One TPE study per data set, named '<estimator>:<data set>', with the data set's "
                    "meta-features in its user attrs. Rerun the same command to resume a killed build: "
                    "finished trials are kept and only missing ones run.",
    )
    build.add_argument("--estimator", required=True, help="search space, one of: " + ", ".join(SPACE_NAMES))
    build.add_argument("--data-dir", required=True, help="PMLB cache folder holding index.csv")
    build.add_argument("--datasets", type=comma_list, help="comma-separated data sets, run in this order "
                                          "(default: every one of the estimator's task in index.csv)")
    build.add_argument("--trials", type=int, default=30, help="finished trials per data set (default: %(default)s)")
    build.add_argument("--storage", required=True,
                       help="Optuna storage: sqlite:///path.db, another RDB URL, journal:///path.log or a "
                            "path ending in .log/.jsonl (a JournalStorage file)")
    build.add_argument("--n-jobs", type=int, default=1, help="data sets in parallel (default: %(default)s)")
    build.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    build.add_argument("--max-rows", type=int, default=2000,
                       help="subsample larger data sets (stratified for classification); 0 keeps all rows "
                            "(default: %(default)s)")
    build.add_argument("--cv", type=int, default=3, help="cross-validation folds (default: %(default)s)")
    build.add_argument("--time-limit", type=float, default=None,
                       help="seconds per trial, checked between folds; slower trials fail (default: none)")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=run_build)

    export = actions.add_parser("export", help="write the built studies of a storage to a knowledge-base JSON file")
    export.add_argument("--storage", required=True, help="the storage of `kb build`")
    export.add_argument("--out", required=True, help="output file; a name ending in .gz is gzip-compressed")
    export.add_argument("--estimator", default=None,
                        help="the search space to export (default: the only one in the storage)")
    export.add_argument("--min-trials", type=int, default=1,
                        help="leave out studies with fewer finished trials (default: %(default)s)")
    export.set_defaults(func=run_export)

    surrogate = actions.add_parser(
        "surrogate", help="meta-train MetaLearnedSampler's surrogate on a knowledge-base file and write it beside it",
        description="Writes <stem>.surrogate.npz next to the knowledge base: the surrogate a MetaLearnedSampler "
                    "with default meta_train_steps would train on first use. Shipped with a pretrained "
                    "knowledge base (autometa/hpo/pretrained/), it saves every sampler that meta-training.",
    )
    surrogate.add_argument("knowledge_base", help="a knowledge-base file of `autometa kb export` (.json or .json.gz)")
    surrogate.add_argument("--steps", type=int, default=None,
                           help="meta-training steps (default: MetaLearnedSampler's meta_train_steps default)")
    surrogate.set_defaults(func=run_surrogate)


def run_build(args: argparse.Namespace) -> None:
    """Run ``autometa kb build``: one study per data set into ``--storage``, then a summary."""
    import time
    from pathlib import Path

    from autometa.hpo.build import build_knowledge_base

    if not (Path(args.data_dir) / "index.csv").is_file():
        raise UserError(f"--data-dir {args.data_dir}: no index.csv there; pass a PMLB cache folder "
                        "(<dir>/index.csv and <dir>/<name>/<name>.tsv.gz)")
    if args.datasets == []:
        raise UserError("--datasets is empty; pass comma-separated PMLB names or leave it out for all")
    start = time.perf_counter()
    with as_user_error(ValueError, FileNotFoundError):  # its checks of the estimator, data sets, storage, counts
        results = build_knowledge_base(
            args.estimator, args.data_dir, args.storage, n_trials=args.trials, datasets=args.datasets,
            n_jobs=args.n_jobs, seed=args.seed, max_rows=None if args.max_rows <= 0 else args.max_rows, cv=args.cv,
            time_limit=args.time_limit, quiet=args.quiet,
        )
    run = sum(r["trials_run"] for r in results)
    failed = sum(r["failed"] for r in results)
    abandoned = sum(r["abandoned"] for r in results)
    print(f"kb build {args.estimator}: {len(results)} data sets, {run} trials run now "
          f"({failed} failed in all, {abandoned} abandoned by a dead process and rerun), "
          f"{time.perf_counter() - start:.0f} s; storage {args.storage}")


def run_export(args: argparse.Namespace) -> None:
    """Run ``autometa kb export``: the built studies of a storage to a knowledge-base file."""
    from autometa.hpo.build import export_knowledge_base

    with as_user_error(ValueError, FileNotFoundError):
        kb = export_knowledge_base(args.storage, args.out, space=args.estimator, min_trials=args.min_trials)
    trials = sum(len(task.trials) for task in kb)
    print(f"wrote {args.out}: {len(kb)} tasks, {trials} finished trials")


def run_surrogate(args: argparse.Namespace) -> None:
    """Run ``autometa kb surrogate``: meta-train the sampler's surrogate on a knowledge-base file, write it beside."""
    import time

    from autometa.hpo.pretrained import write_surrogate

    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be a positive number of meta-training steps, got {args.steps}")
    start = time.perf_counter()
    with as_user_error(ValueError, FileNotFoundError):
        out = write_surrogate(args.knowledge_base, steps=args.steps)
    print(f"wrote {out} ({time.perf_counter() - start:.1f} s)")
