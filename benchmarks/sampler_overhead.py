"""Seconds per trial that the sampler itself costs: MetaLearnedSampler against TPE.

A synthetic knowledge base of ``n_tasks`` tasks with ``n_trials_per_task``
random trials each, from a family of shifted quadratics over two floats, a
log-scale float and a three-way categorical; then one study of
``study_trials`` trials on a new member of the family, whose objective costs
nothing, so the time per trial is Optuna's bookkeeping plus the sampler's
work. Both samplers run in the same process, one after the other, on the
same machine; imports are done before timing.

Two numbers per sampler, each as wall-clock and as CPU time of the process
(CPU time is what the sampler costs even when other work shares the cores):

``mean s/trial``
    everything, from constructing the sampler to the last trial, divided by
    ``study_trials``: for MetaLearnedSampler this includes its one-time work
    (the regret table of the portfolio in ``__init__``, meta-training the
    surrogate on first use), which a second sampler on the same knowledge
    base and seed in the same process gets from the cache.
``steady s/trial``
    the mean time of the second half of the trials: the per-trial cost of a
    study that already holds ``study_trials / 2`` or more trials.

Then the setup of a sampler on each shipped knowledge base
(:mod:`autometa.hpo.pretrained`), cold in this process: reading the
knowledge base, constructing the sampler (its portfolio), getting its
surrogate (the shipped file, or meta-training where none matches) and the
first model-based trial of a study whose objective draws the space's
parameters at no cost.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from autometa._common import describe


def synthetic_knowledge_base(n_tasks: int, n_trials_per_task: int, seed: int = 0):
    """A knowledge base of shifted quadratics with random trials, built as plain records (no studies)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from autometa.hpo.knowledge_base import KnowledgeBase, Task, TrialRecord

    rng = np.random.default_rng(seed)
    space = {
        "x": FloatDistribution(-5.0, 5.0),
        "y": FloatDistribution(-5.0, 5.0),
        "lr": FloatDistribution(1e-4, 1.0, log=True),
        "kind": CategoricalDistribution(["a", "b", "c"]),
    }
    tasks = []
    for t in range(n_tasks):
        optimum = _optimum(rng, t)
        trials = []
        for number in range(n_trials_per_task):
            params = {
                "x": float(rng.uniform(-5, 5)),
                "y": float(rng.uniform(-5, 5)),
                "lr": float(10 ** rng.uniform(-4, 0)),
                "kind": ["a", "b", "c"][int(rng.integers(3))],
            }
            trials.append(TrialRecord(number, "COMPLETE", params, space, (family_value(params, optimum),)))
        tasks.append(Task(f"task{t}", ("minimize",), tuple(trials)))
    return KnowledgeBase(tasks)


def _optimum(rng, t: int) -> tuple:
    return (float(rng.uniform(-2, 2)), float(rng.uniform(-2, 2)), float(rng.uniform(-3, -1)), "ab"[t % 2])


def family_value(params: dict[str, Any], optimum: tuple) -> float:
    """A member of the family: a shifted quadratic in ``x``, ``y``, ``log10(lr)``, plus 1 for the wrong kind."""
    return (
        (params["x"] - optimum[0]) ** 2
        + (params["y"] - optimum[1]) ** 2
        + (np.log10(params["lr"]) - optimum[2]) ** 2
        + (params["kind"] != optimum[3])
    )


def _time_study(make_sampler, objective, study_trials: int) -> dict[str, float]:
    import optuna

    ends, cpu_ends = [], []

    def record(study, trial):
        ends.append(time.perf_counter())
        cpu_ends.append(time.process_time())

    start, cpu_start = time.perf_counter(), time.process_time()
    study = optuna.create_study(sampler=make_sampler())
    study.optimize(objective, n_trials=study_trials, callbacks=[record])
    total, cpu_total = time.perf_counter() - start, time.process_time() - cpu_start
    half = study_trials // 2
    if study_trials >= 2:
        steady = (ends[-1] - ends[half - 1]) / (study_trials - half)
        cpu_steady = (cpu_ends[-1] - cpu_ends[half - 1]) / (study_trials - half)
    else:
        steady, cpu_steady = total, cpu_total
    return {"mean": total / study_trials, "steady": steady, "cpu_mean": cpu_total / study_trials,
            "cpu_steady": cpu_steady, "best": study.best_value}


def setup_times(name: str, seed: int = 0) -> dict[str, float]:
    """Seconds of a sampler's one-time work on the shipped knowledge base ``name``, cold in this process."""
    import optuna

    from autometa.hpo.encoding import suggest
    from autometa.hpo.pretrained import load_pretrained, shipped_surrogate
    from autometa.hpo.sampler import META_TRAIN_SEED, MetaLearnedSampler
    from autometa.hpo.spaces import get_space

    distributions = get_space(name).distributions()
    rng = np.random.default_rng(seed)
    times = {}
    start = time.perf_counter()
    knowledge_base = load_pretrained(name)
    times["load"] = time.perf_counter() - start
    start = time.perf_counter()
    sampler = MetaLearnedSampler(knowledge_base, seed=seed)
    times["sampler"] = time.perf_counter() - start
    start = time.perf_counter()
    data = sampler._task_data()
    times["shipped"] = float(shipped_surrogate(data.surrogate_key(sampler._meta_train_steps, META_TRAIN_SEED))
                             is not None)
    sampler._surrogate()
    times["surrogate"] = time.perf_counter() - start
    times["setup"] = times["load"] + times["sampler"] + times["surrogate"]
    study = optuna.create_study(sampler=sampler)

    def objective(trial):
        for name, distribution in distributions.items():
            suggest(trial, name, distribution)
        return float(rng.uniform())

    study.optimize(objective, n_trials=len(sampler.portfolio))
    start = time.perf_counter()
    study.optimize(objective, n_trials=1)
    times["first model-based trial"] = time.perf_counter() - start
    return times


def run(n_tasks: int = 100, n_trials_per_task: int = 100, study_trials: int = 500, seed: int = 0,
        threads: int = 1, meta_train_steps: int = 300, pretrained: bool = True) -> dict[str, dict[str, float]]:
    """Time TPE and MetaLearnedSampler on one synthetic study; print and return the numbers.

    Parameters
    ----------
    n_tasks, n_trials_per_task : int, default=100
        The knowledge base's size.
    study_trials : int, default=500
        Trials of the timed study.
    seed : int, default=0
        Seeds the knowledge base, the new task and both samplers.
    threads : int, default=1
        torch's intra-op threads (meta-training's tiny matrices run fastest on one).
    meta_train_steps : int, default=300
        MetaLearnedSampler's ``meta_train_steps``.
    pretrained : bool, default=True
        Also time the setup on every shipped knowledge base (:func:`setup_times`).

    Returns
    -------
    dict
        ``{"tpe": {...}, "meta": {...}}`` with ``mean`` and ``steady`` seconds per trial (``cpu_mean`` and
        ``cpu_steady``: CPU seconds) and ``best`` value,
        and ``"setup"``: :func:`setup_times` per shipped knowledge base.
    """
    import optuna
    import torch

    from autometa.hpo.sampler import MetaLearnedSampler
    from autometa.hpo.surrogate import meta_train_surrogate

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # import what meta-training imports lazily, so neither sampler's time includes imports
    meta_train_surrogate([np.zeros((4, 2))], [np.linspace(0, 1, 4)], steps=1)
    knowledge_base = synthetic_knowledge_base(n_tasks, n_trials_per_task, seed)
    optimum = _optimum(np.random.default_rng(seed + 1), 0)

    def objective(trial):
        params = {
            "x": trial.suggest_float("x", -5, 5),
            "y": trial.suggest_float("y", -5, 5),
            "lr": trial.suggest_float("lr", 1e-4, 1.0, log=True),
            "kind": trial.suggest_categorical("kind", ["a", "b", "c"]),
        }
        return family_value(params, optimum)

    print(f"sampler overhead: knowledge base {n_tasks} tasks x {n_trials_per_task} trials, study of "
          f"{study_trials} trials (2 floats, 1 log float, 1 categorical; objective free); seed {seed}; "
          f"torch threads {threads}; MetaLearnedSampler meta_train_steps={meta_train_steps}")
    print(f"machine: {describe(packages=('autometa', 'optuna', 'torch', 'numpy'))}")
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "meta": lambda: MetaLearnedSampler(knowledge_base, seed=seed, meta_train_steps=meta_train_steps),
    }
    results = {name: _time_study(make, objective, study_trials) for name, make in samplers.items()}
    print(f"{'sampler':<22} {'mean s/trial':>13} {'steady s/trial':>15} {'CPU mean':>9} {'CPU steady':>11} "
          f"{'best value':>11}")
    for name, label in (("tpe", "TPESampler"), ("meta", "MetaLearnedSampler")):
        r = results[name]
        print(f"{label:<22} {r['mean']:>13.5f} {r['steady']:>15.5f} {r['cpu_mean']:>9.5f} {r['cpu_steady']:>11.5f} "
              f"{r['best']:>11.4f}")
    ratio = {key: results["meta"][key] / results["tpe"][key] for key in ("mean", "steady", "cpu_mean", "cpu_steady")}
    print(f"ratio meta / tpe: mean {ratio['mean']:.2f}, steady {ratio['steady']:.2f}; CPU time: mean "
          f"{ratio['cpu_mean']:.2f}, steady {ratio['cpu_steady']:.2f}")
    if pretrained:
        from autometa.hpo.pretrained import pretrained_names

        print("\nsetup on a shipped knowledge base, cold (s): read it, construct the sampler, get the surrogate; "
              "then the first model-based trial")
        print(f"{'knowledge base':<34} {'read':>6} {'sampler':>8} {'surrogate':>10} {'from':>8} {'setup':>7} "
              f"{'trial':>7}")
        results["setup"] = {}
        for name in pretrained_names():
            t = setup_times(name, seed)
            results["setup"][name] = t
            origin = "shipped" if t["shipped"] else "trained"
            print(f"{name:<34} {t['load']:>6.2f} {t['sampler']:>8.2f} {t['surrogate']:>10.2f} {origin:>8} "
                  f"{t['setup']:>7.2f} {t['first model-based trial']:>7.3f}")
    return results


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options of ``autometa bench sampler-overhead`` to ``parser``."""
    parser.add_argument("--n-tasks", type=int, default=100, help="knowledge-base tasks (default: %(default)s)")
    parser.add_argument("--n-trials-per-task", type=int, default=100, help="trials per task (default: %(default)s)")
    parser.add_argument("--study-trials", type=int, default=500, help="trials of the timed study (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--meta-train-steps", type=int, default=300,
                        help="MetaLearnedSampler meta_train_steps (default: %(default)s)")
    parser.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                        help="skip the setup times on the shipped knowledge bases")
    return parser


def main(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Run :func:`run` with parsed :func:`add_arguments` options."""
    return run(n_tasks=args.n_tasks, n_trials_per_task=args.n_trials_per_task, study_trials=args.study_trials,
               seed=args.seed, threads=args.threads, meta_train_steps=args.meta_train_steps,
               pretrained=args.pretrained)


if __name__ == "__main__":
    main(add_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0])).parse_args())
