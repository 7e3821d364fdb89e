"""Many workers, one study: MetaLearnedSampler on a shared Optuna storage.

The recipe for scaling out a warm-started search: earlier studies and the
new one live in one Optuna RDB storage (PostgreSQL or MySQL for many
machines, SQLite for a few processes on one machine). The storage is set up
once (two processes creating Optuna's schema at the same moment collide); then every worker process,
on any machine, loads the knowledge base ONCE when it starts (not per trial),
builds its sampler, and calls ``optimize`` on the shared study. Optuna's
heartbeat marks the trials of a worker that dies as failed.

Run: python examples/parallel_workers.py [--storage URL] [--workers 4] [--trials 40] [--smoke]
"""

import argparse
import multiprocessing
import tempfile
import warnings
from pathlib import Path

import optuna

from autometa import KnowledgeBase, MetaLearnedSampler

EARLIER = ["shifted-0", "shifted-1", "shifted-2"]


def objective(trial: optuna.Trial, shift: float = 0.3) -> float:
    x = trial.suggest_float("x", -5, 5)
    y = trial.suggest_float("y", -5, 5)
    return (x - shift) ** 2 + (y + shift) ** 2


def set_up(url: str) -> None:
    """Once, before the workers: the earlier studies (here: made up) and the new, empty one."""
    storage = optuna.storages.RDBStorage(url) if "://" in url else url
    for i, name in enumerate(EARLIER):
        study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                    sampler=optuna.samplers.RandomSampler(seed=i))
        study.optimize(lambda t: objective(t, shift=0.2 * i), n_trials=max(0, 30 - len(study.trials)))
    optuna.create_study(study_name="new-task", storage=storage, load_if_exists=True)


def work(url: str, worker: int, n_trials: int) -> int:
    """One worker process: knowledge base loaded once, then trials until the budget is spent."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=10, grace_period=60)
    knowledge_base = KnowledgeBase.from_storage(storage, study_names=EARLIER)
    sampler = MetaLearnedSampler(knowledge_base, n_warm_start=4, seed=worker)
    study = optuna.load_study(study_name="new-task", storage=storage, sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    return n_trials


def main(url: str | None = None, workers: int = 4, trials: int = 40) -> optuna.Study:
    url = url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'studies.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    set_up(url)
    share = [trials // workers + (w < trials % workers) for w in range(workers)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.starmap(work, [(url, w, n) for w, n in enumerate(share)])
    study = optuna.load_study(study_name="new-task", storage=url)
    warm = [t for t in study.trials if t.user_attrs.get("autometa:warm_start")]
    sources = {(t.user_attrs["autometa:source_task"], t.user_attrs["autometa:source_trial"]) for t in warm}
    print(f"{len(study.trials)} trials by {workers} workers; {len(warm)} warm-started, all different: "
          f"{len(sources) == len(warm)}; best {study.best_value:.4f}")
    return study


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", help="an RDB URL (default: a temporary SQLite file)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--smoke", action="store_true", help="2 workers, 8 trials")
    args = parser.parse_args()
    if args.smoke:
        args.workers, args.trials = 2, 8
    main(args.storage, args.workers, args.trials)
