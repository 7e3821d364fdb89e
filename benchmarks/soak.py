"""Soak test: thousands of trials from worker processes on one storage, with MetaLearnedSampler.

Not a unit test but a command (``autometa bench soak``): it runs a long
multi-process optimisation the way a user deploys one, and reports what came
out of it.

Setup. A synthetic knowledge base (``kb_tasks`` earlier studies of
``kb_trials`` random trials each, on shifted quadratics over two floats, a
log-scale float and a categorical: cheap to evaluate) is copied into the
storage with :meth:`KnowledgeBase.add_study`, and an empty study is created.
Then ``n_workers`` processes (``multiprocessing``, spawn context: fresh
interpreters, as separate machines would be) each read the knowledge base
from the storage, build ``MetaLearnedSampler(kb, seed=seed + worker)`` and
load the study; once every worker is ready (imports and reads are not
timed), all start together and run ``n_trials / n_workers`` trials each.

Reported. The wall time from the start signal to the last worker's end and
the throughput (finished trials per second, also per quarter of the run:
each trial reads the whole study from the storage, so it slows as the study
grows); the trials by state as the storage holds them (a trial left RUNNING
is one that was lost); any worker error, with its traceback; warm-start
configurations tried twice (the sampler promises none); and the machine,
the storage server and the library versions.

:func:`run_scaling` repeats the run with 1, 2 and 4 workers on one storage
(a fresh study each, the same knowledge base) and reports each throughput
and its ratio to one worker's.
"""

from __future__ import annotations

import argparse
import collections
import math
import multiprocessing
import os
import time
import traceback
import uuid
from typing import Any

import numpy as np

from autometa._common import describe

__all__ = ["add_arguments", "build_knowledge_base", "main", "objective_value", "run", "run_scaling"]

PACKAGES = ("autometa", "optuna", "sqlalchemy", "psycopg2-binary", "torch", "numpy")


def objective_value(params: dict[str, Any], shift: float) -> float:
    """The synthetic objective: a quadratic bowl centred at ``shift``; microseconds to evaluate."""
    return (
        (params["x"] - shift) ** 2
        + (params["y"] + 0.5 * shift) ** 2
        + (math.log10(params["lr"]) + 2.0 + 0.3 * shift) ** 2
        + {"a": 0.0, "b": 0.5, "c": 1.0}[params["kind"]] * (1 + shift) % 1.5
    )


def _suggest(trial) -> dict[str, Any]:
    return {
        "x": trial.suggest_float("x", -5.0, 5.0),
        "y": trial.suggest_float("y", -5.0, 5.0),
        "lr": trial.suggest_float("lr", 1e-4, 1.0, log=True),
        "kind": trial.suggest_categorical("kind", ["a", "b", "c"]),
    }


def _open(storage_url: str):
    """An Optuna storage for a URL (SQLite gets a 30 s busy timeout) or a journal file path."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if "://" not in storage_url:
        return JournalStorage(JournalFileBackend(storage_url))
    engine_kwargs = {"connect_args": {"timeout": 30}} if storage_url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(storage_url, engine_kwargs=engine_kwargs)


def _safe_url(storage_url: str) -> str:
    """The URL without its password."""
    try:
        import sqlalchemy

        return sqlalchemy.make_url(storage_url).render_as_string(hide_password=True)
    except Exception:
        return storage_url


def build_knowledge_base(storage_url: str, kb_tasks: int = 10, kb_trials: int = 30, seed: int = 0) -> list[str]:
    """Copy ``kb_tasks`` synthetic earlier studies into the storage; their names."""
    import optuna

    from autometa.hpo import KnowledgeBase

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(seed)
    kb = KnowledgeBase.from_storage(_open(storage_url), study_names=[])
    for t in range(kb_tasks):
        shift = float(rng.uniform(-2.0, 2.0))
        study = optuna.create_study(study_name=f"soak-earlier-{t}",
                                    sampler=optuna.samplers.RandomSampler(seed=seed * 1000 + t))
        study.optimize(lambda trial: objective_value(_suggest(trial), shift), n_trials=kb_trials)
        kb.add_study(study)
    return kb.names


def _worker(storage_url, study_name, kb_names, n_trials, worker, seed, sampler_kwargs, shift, fail_fraction,
            ready, start, results):
    """One worker process: read the knowledge base, wait for the start signal, run ``n_trials`` trials."""
    report: dict[str, Any] = {"worker": worker, "completed": 0, "error": None}
    try:
        import torch

        torch.set_num_threads(1)
        import optuna

        from autometa.hpo import KnowledgeBase, MetaLearnedSampler

        optuna.logging.set_verbosity(optuna.logging.ERROR)  # injected failures are counted, not logged
        storage = _open(storage_url)
        kb = KnowledgeBase.from_storage(storage, study_names=kb_names)
        sampler = MetaLearnedSampler(kb, seed=None if seed is None else seed + worker, **sampler_kwargs)
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
        rng = np.random.default_rng(None if seed is None else seed + 7919 * (worker + 1))
        ready.put(worker)
        start.wait()

        def objective(trial):
            params = _suggest(trial)
            if fail_fraction and rng.uniform() < fail_fraction:
                raise RuntimeError("an injected objective failure")
            return objective_value(params, shift)

        def count(study, trial):
            report["completed"] += trial.state == optuna.trial.TrialState.COMPLETE

        began = time.perf_counter()
        study.optimize(objective, n_trials=n_trials, catch=(RuntimeError,), callbacks=[count])
        report["seconds"] = time.perf_counter() - began
    except BaseException as error:  # reported, not raised: the parent counts errors
        report["error"] = f"{type(error).__name__}: {error}\n{traceback.format_exc()}"
        ready.put(worker)  # never leave the parent waiting
    results.put(report)


def _server_version(storage_url: str) -> str:
    if not storage_url.startswith(("postgresql", "mysql")):
        return storage_url.split(":", 1)[0] if "://" in storage_url else "journal file"
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(storage_url, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as connection:
            return str(connection.execute(sqlalchemy.text("SELECT version()")).scalar()).split(" on ")[0]
    except Exception as error:
        return f"unknown ({type(error).__name__})"


def run(storage_url: str, n_trials: int = 2000, n_workers: int = 4, seed: int | None = 0, kb_tasks: int = 10,
        kb_trials: int = 30, n_warm_start: int = 5, meta_train_steps: int = 100, fail_fraction: float = 0.0,
        kb_names: list[str] | None = None, study_name: str | None = None, timeout: float = 3600.0,
        verbose: bool = True) -> dict[str, Any]:
    """Run ``n_trials`` trials of one study from ``n_workers`` processes on ``storage_url``.

    Parameters
    ----------
    storage_url : str
        An Optuna RDB URL (``postgresql+psycopg2://user@host:port/db``,
        ``sqlite:///soak.db``, ...) or a journal file path.
    n_trials : int, default=2000
        Trials in all, split evenly over the workers.
    n_workers : int, default=4
        Worker processes.
    seed : int or None, default=0
        Worker ``w`` seeds its sampler with ``seed + w``; None: unseeded.
    kb_tasks, kb_trials : int, default=10, 30
        The synthetic knowledge base's studies and their trials.
    n_warm_start, meta_train_steps : int, default=5, 100
        Passed to :class:`~autometa.MetaLearnedSampler`.
    fail_fraction : float, default=0.0
        The share of trials whose objective raises (caught: they become FAIL).
    kb_names : list of str or None, default=None
        The knowledge base's studies in the storage; None builds one.
    study_name : str or None, default=None
        The study; None makes a fresh ``soak-<hex>``.
    timeout : float, default=3600
        Seconds to wait for the workers before terminating them.
    verbose : bool, default=True
        Print the report.

    Returns
    -------
    dict
        ``trials_per_second``, ``seconds``, ``states`` (count by state name),
        ``errors`` (worker tracebacks), ``lost`` (trials left RUNNING or
        WAITING), ``reported_complete`` (what the workers counted),
        ``duplicate_warm_starts``, ``quarters`` (trials/s per quarter of the
        finished trials), ``machine``, ``server`` and the settings.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if n_trials < n_workers or n_workers < 1:
        raise ValueError(f"need n_workers >= 1 and n_trials >= n_workers, got {n_trials} and {n_workers}")
    if kb_names is None:
        kb_names = build_knowledge_base(storage_url, kb_tasks, kb_trials, 0 if seed is None else seed)
    study_name = study_name or f"soak-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=study_name, storage=_open(storage_url))
    shift = 0.7
    sampler_kwargs = {"n_warm_start": n_warm_start, "meta_train_steps": meta_train_steps}
    shares = [n_trials // n_workers + (w < n_trials % n_workers) for w in range(n_workers)]

    context = multiprocessing.get_context("spawn")
    ready, results, start = context.Queue(), context.Queue(), context.Event()
    env_threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned workers
    try:
        processes = [
            context.Process(target=_worker, args=(storage_url, study_name, kb_names, shares[w], w, seed,
                                                  sampler_kwargs, shift, fail_fraction, ready, start, results))
            for w in range(n_workers)
        ]
        for process in processes:
            process.start()
    finally:
        if env_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_threads
    for _ in range(n_workers):
        ready.get(timeout=600)
    began = time.perf_counter()
    start.set()
    reports = []
    deadline = time.monotonic() + timeout
    while len(reports) < n_workers and time.monotonic() < deadline:
        try:
            reports.append(results.get(timeout=1.0))
        except Exception:  # queue.Empty
            if not any(p.is_alive() for p in processes) and results.empty():
                break
    seconds = time.perf_counter() - began
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()
    errors = [r["error"] for r in reports if r["error"]]
    errors += [f"worker {p.name} ended with exit code {p.exitcode} and no report"
               for p, w in zip(processes, range(n_workers)) if w not in {r["worker"] for r in reports}]

    trials = optuna.load_study(study_name=study_name, storage=_open(storage_url)).get_trials(deepcopy=False)
    states = collections.Counter(t.state.name for t in trials)
    finished = sorted(t.datetime_complete.timestamp() for t in trials if t.datetime_complete is not None)
    quarters = []
    if len(finished) >= 8:
        for q in range(4):
            part = finished[q * len(finished) // 4:(q + 1) * len(finished) // 4]
            quarters.append(round((len(part) - 1) / max(part[-1] - part[0], 1e-9), 2))
    sources = [(t.user_attrs.get("autometa:source_task"), t.user_attrs.get("autometa:source_trial"))
               for t in trials if t.user_attrs.get("autometa:warm_start")]
    result = {
        "storage": _safe_url(storage_url),
        "server": _server_version(storage_url),
        "machine": describe(packages=PACKAGES),
        "n_trials": n_trials,
        "n_workers": n_workers,
        "seed": seed,
        "sampler": f"MetaLearnedSampler(n_warm_start={n_warm_start}, meta_train_steps={meta_train_steps}, "
                   f"seed=seed+worker), knowledge base {len(kb_names)} tasks x {kb_trials} trials",
        "seconds": round(seconds, 2),
        "trials_per_second": round(len(finished) / seconds, 2),
        "quarters": quarters,
        "states": dict(sorted(states.items())),
        "reported_complete": sum(r["completed"] for r in reports),
        "lost": states.get("RUNNING", 0) + states.get("WAITING", 0),
        "duplicate_warm_starts": len(sources) - len(set(sources)),
        "errors": errors,
        "kb_names": kb_names,
        "study_name": study_name,
    }
    if verbose:
        print(format_report(result))
    return result


def format_report(result: dict[str, Any]) -> str:
    """The soak result as a few lines of text."""
    lines = [
        f"soak: {result['n_trials']} trials, {result['n_workers']} worker processes, {result['sampler']}",
        f"storage: {result['storage']} ({result['server']})",
        f"machine: {result['machine']}",
        f"time: {result['seconds']} s; throughput {result['trials_per_second']} trials/s "
        f"(by quarter of the run: {result['quarters']})",
        "states: " + ", ".join(f"{k} {v}" for k, v in result["states"].items())
        + f"; workers counted {result['reported_complete']} complete; lost (left RUNNING/WAITING): {result['lost']}",
        f"warm-start configurations tried twice: {result['duplicate_warm_starts']}",
        f"errors: {len(result['errors'])}" + "".join("\n  " + e.strip().replace("\n", "\n  ") for e in result["errors"]),
    ]
    return "\n".join(lines)


def run_scaling(storage_url: str, workers=(1, 2, 4), n_trials: int = 400, seed: int | None = 0,
                verbose: bool = True, **kwargs) -> dict[int, dict[str, Any]]:
    """HPO throughput with each number of ``workers`` on one storage: a fresh study each, one knowledge base.

    ``kwargs`` go to :func:`run`. Returns each run's result by worker count;
    prints a table of trials/s and the ratio to the first count's.
    """
    kb_names = kwargs.pop("kb_names", None) or build_knowledge_base(
        storage_url, kwargs.get("kb_tasks", 10), kwargs.get("kb_trials", 30), 0 if seed is None else seed)
    results = {n: run(storage_url, n_trials=n_trials, n_workers=n, seed=seed, kb_names=kb_names, verbose=False,
                      **kwargs) for n in workers}
    if verbose:
        first = results[workers[0]]
        print(f"scaling: {n_trials} trials per run, {first['sampler']}")
        print(f"storage: {first['storage']} ({first['server']})")
        print(f"machine: {first['machine']}")
        print(f"{'workers':>7} {'trials/s':>9} {'ratio':>6} {'seconds':>8}  states / errors")
        for n, r in results.items():
            ratio = r["trials_per_second"] / first["trials_per_second"]
            print(f"{n:>7} {r['trials_per_second']:>9.2f} {ratio:>6.2f} {r['seconds']:>8.1f}  "
                  f"{r['states']} / {len(r['errors'])} errors, {r['duplicate_warm_starts']} duplicate warm starts")
    return results


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``autometa bench soak``."""
    parser.add_argument("--storage", default=os.environ.get("AUTOMETA_TEST_POSTGRES_URL"),
                        help="an Optuna storage URL or journal file (default: $AUTOMETA_TEST_POSTGRES_URL)")
    parser.add_argument("--trials", type=int, default=2000, help="trials in all (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (default: %(default)s)")
    parser.add_argument("--scaling", default=None, metavar="N,N,...",
                        help="instead of one soak, the throughput with each number of workers, e.g. 1,2,4")
    parser.add_argument("--seed", type=int, default=0, help="worker w seeds its sampler with seed + w (default: 0)")
    parser.add_argument("--kb-tasks", type=int, default=10, help="knowledge-base studies (default: %(default)s)")
    parser.add_argument("--kb-trials", type=int, default=30, help="trials per knowledge-base study (default: %(default)s)")
    parser.add_argument("--n-warm-start", type=int, default=5, help="sampler warm-start trials (default: %(default)s)")
    parser.add_argument("--meta-train-steps", type=int, default=100,
                        help="the sampler's surrogate meta-training steps (default: %(default)s)")
    parser.add_argument("--fail-fraction", type=float, default=0.0,
                        help="share of trials whose objective raises (default: %(default)s)")
    return parser


def main(args: argparse.Namespace) -> dict:
    """Run :func:`run` (or :func:`run_scaling` with ``--scaling``) with parsed :func:`add_arguments` options."""
    if not args.storage:
        raise SystemExit("soak: give --storage URL (or set AUTOMETA_TEST_POSTGRES_URL); "
                         "`eval \"$(bash .ci/postgres.sh start)\"` starts a throwaway PostgreSQL server")
    common = dict(seed=args.seed, kb_tasks=args.kb_tasks, kb_trials=args.kb_trials, n_warm_start=args.n_warm_start,
                  meta_train_steps=args.meta_train_steps, fail_fraction=args.fail_fraction)
    if args.scaling:
        workers = tuple(int(n) for n in args.scaling.split(","))
        return run_scaling(args.storage, workers=workers, n_trials=args.trials, **common)
    return run(args.storage, n_trials=args.trials, n_workers=args.workers, **common)


if __name__ == "__main__":
    main(add_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0])).parse_args())
