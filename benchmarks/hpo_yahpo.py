"""Transfer HPO on YAHPO Gym: leave-one-task-out, samplers compared by normalised regret.

For each *target* task of a YAHPO scenario (:class:`autometa.data.yahpo.YahpoScenario`):

1. The knowledge base holds one *source study* per OTHER task of the scenario:
   ``source_trials`` trials of Optuna's default ``TPESampler`` on that task's
   surrogate, seeded by the task id and ``source_seed``. Source studies are
   cached under ``<autometa cache dir>/yahpo/`` (a JSON :class:`Task` per
   scenario, metric, task, size, seed and Optuna version), so reruns skip
   them. YAHPO ships no data-set meta-features, so tasks have no descriptor
   and every source task weighs the same.
2. Each sampler runs ``n_trials`` trials on the target for each seed
   ``0 .. n_seeds-1`` (the sampler's seed; the target is deterministic).
3. Regret after ``t`` trials is normalised by the best and worst of
   ``n_random`` (5,000) random configurations of the target (seeded),
   ``(best_random - best_so_far) / (best_random - worst_random)`` for a
   maximised metric, clipped to ``[0, 1]``; how often a run beat the best
   random configuration (clipped to 0) is reported.

Samplers (``--samplers``):

``random``
    ``RandomSampler``.
``tpe``
    Optuna's default ``TPESampler``.
``cmaes``
    ``CmaEsSampler``. CMA-ES models numeric parameters only; Optuna samples
    categorical ones (``rbv2_xgboost``'s booster, imputation) independently
    at random. On a scenario with conditions the CMA-ES samplers see a *flat*
    space (every parameter suggested in every trial, the inactive ones then
    ignored by the surrogate), since CMA-ES needs a fixed set of parameters.
``ws-cmaes``
    ``CmaEsSampler(source_trials=...)`` (warm-starting CMA-ES, Nomura et al.,
    AAAI 2021): all source trials, with each task's values rescaled to
    ``[0, 1]`` by its own best and worst (the raw values of different tasks
    are not comparable); WS-CMA-ES keeps the best 10% of them. Inactive
    numeric parameters of a source trial are set to their range's centre.
``gp``
    ``GPSampler(deterministic_objective=True)``; parameters outside the
    intersection search space (conditional ones) are sampled at random.
``portfolio+tpe``
    The greedy portfolio (:func:`autometa.hpo.portfolio.greedy_portfolio`)
    of ``portfolio_size`` (10) configurations, enqueued with
    ``study.enqueue_trial``, then ``TPESampler``.
``meta-portfolio``
    ``MetaLearnedSampler(knowledge_base, surrogate=None)``: its portfolio
    warm start (its default ``n_warm_start``) then TPE.
``meta``
    ``MetaLearnedSampler(knowledge_base, surrogate="meta")``: the meta-learned
    surrogate. Needs a ``MetaLearnedSampler`` with the ``surrogate`` argument.

Reported per sampler and budget (10, 25, 50 trials): the mean normalised
regret and the mean rank (1 = best; ties share the mean rank) among the
samplers run, each with a 95% confidence interval over target tasks (the
value of a task is its mean over seeds; t interval); and a paired test
(Wilcoxon signed-rank over target-task x seed pairs with scipy, else an exact
sign test) of ``meta`` and ``meta-portfolio`` against ``portfolio+tpe``.

Run it as ``python -m benchmarks.hpo_yahpo --scenario lcbench ...``
(or through the ``autometa`` command, which calls :func:`add_arguments` and
:func:`main`).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import time
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from autometa._common import atomic_write_text, describe, mean_ci
from benchmarks.warm_start_trials import rescaled_source_trials
from autometa.data._paths import cache_dir
from autometa.data.yahpo import YahpoScenario
from autometa.hpo.knowledge_base import KnowledgeBase, Task
from autometa.hpo.portfolio import greedy_portfolio

__all__ = ["SAMPLERS", "add_arguments", "main", "run", "source_task", "summarise"]

#: Every sampler this benchmark knows, in report order.
SAMPLERS = ("random", "tpe", "cmaes", "ws-cmaes", "gp", "portfolio+tpe", "meta-portfolio", "meta")
#: The budgets (trials) reported; those beyond ``n_trials`` are dropped and ``n_trials`` is always added.
BUDGETS = (10, 25, 50)
#: The paired comparisons reported: (challenger, baseline).
PAIRS = (("meta", "portfolio+tpe"), ("meta-portfolio", "portfolio+tpe"))
_CACHE_FORMAT = 1
_VERSIONS = ("autometa", "optuna", "numpy", "onnxruntime", "cmaes", "scipy", "torch")


def meta_surrogate_available() -> bool:
    """Whether ``MetaLearnedSampler`` accepts ``surrogate=`` (the meta-learned surrogate exists)."""
    from autometa.hpo.sampler import MetaLearnedSampler

    return "surrogate" in inspect.signature(MetaLearnedSampler.__init__).parameters


def _meta_unavailable_message() -> str:
    return (
        "sampler 'meta' needs MetaLearnedSampler(..., surrogate='meta'), but this autometa's "
        "MetaLearnedSampler has no 'surrogate' argument (the meta-learned surrogate is not in it yet); "
        "leave 'meta' out of --samplers"
    )


def default_samplers() -> list[str]:
    """All samplers but ``gp`` (slow: see BENCHMARKS.md), and ``meta`` only where it exists."""
    return [s for s in SAMPLERS if s != "gp" and (s != "meta" or meta_surrogate_available())]


# --------------------------------------------------------------------------- source studies


def source_task(
    scenario: YahpoScenario, task: str, n_trials: int = 64, seed: int = 0, cache: bool = True
) -> Task:
    """The source study of ``task``: ``n_trials`` TPE trials on its surrogate, cached on disk.

    The sampler is ``TPESampler(seed=crc32(task) + seed)``. The cache file
    (``<cache dir>/yahpo/<scenario>-<target>-<task>-tpe<n>-seed<seed>-optuna<version>.json``)
    holds the :class:`~autometa.hpo.knowledge_base.Task` as JSON; it is
    written atomically, so parallel workers may race safely.

    Returns
    -------
    Task
        Named ``"<scenario>/<task>"``, without a descriptor.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be positive, got {n_trials}")
    task = scenario._check_task(task)
    path = (
        cache_dir()
        / "yahpo"
        / f"{scenario.name}-{scenario.target}-{task}-tpe{n_trials}-seed{seed}-optuna{optuna.__version__}.json"
    )
    if cache and path.is_file():
        try:
            data = json.loads(path.read_text())
            if data.get("format") == _CACHE_FORMAT:
                return Task.from_dict(data["task"])
        except (ValueError, KeyError, TypeError):
            pass  # a corrupt cache file is regenerated below
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # also in joblib workers
    study = optuna.create_study(
        study_name=f"{scenario.name}/{task}",
        direction=scenario.direction,
        sampler=optuna.samplers.TPESampler(seed=zlib.crc32(task.encode()) + seed),
    )
    study.optimize(scenario.objective(task), n_trials=n_trials)
    result = Task.from_study(study)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"format": _CACHE_FORMAT, "task": result.to_dict()}))
    return result


def random_bounds(scenario: YahpoScenario, task: str, n: int = 5000, seed: int = 0) -> tuple[float, float]:
    """The best and worst target value of ``n`` random configurations of ``task`` (seeded by task and seed)."""
    configs = scenario.sample(n, np.random.default_rng([seed, zlib.crc32(str(task).encode())]))
    values = scenario.evaluate(configs, task)[scenario.target].to_numpy()
    values = values[np.isfinite(values)]
    if scenario.direction == "maximize":
        return float(values.max()), float(values.min())
    return float(values.min()), float(values.max())


def normalised_regret(best_values, bounds: tuple[float, float], clip: bool = True) -> np.ndarray:
    """``(best - value) / (best - worst)`` in the direction the bounds imply; clipped to [0, 1] by default."""
    best, worst = bounds
    values = np.asarray(best_values, dtype=np.float64)
    regret = (best - values) / (best - worst) if best != worst else np.zeros_like(values)
    return np.clip(regret, 0.0, 1.0) if clip else regret


# --------------------------------------------------------------------------- samplers


def _make_sampler(
    name: str,
    seed: int,
    scenario: YahpoScenario,
    sources: Sequence[Task],
    portfolio_size: int,
) -> tuple[optuna.samplers.BaseSampler, list[dict[str, Any]], bool]:
    """(sampler, configurations to enqueue, whether the objective is flat)."""
    from autometa.hpo.sampler import MetaLearnedSampler

    flat_cma = bool(scenario.conditions)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed), [], False
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed), [], False
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False), [], flat_cma
    if name == "ws-cmaes":
        sampler = optuna.samplers.CmaEsSampler(
            seed=seed, source_trials=rescaled_source_trials(sources, scenario.search_space, scenario.direction),
            warn_independent_sampling=False,
        )
        return sampler, [], flat_cma
    if name == "gp":
        sampler = optuna.samplers.GPSampler(seed=seed, deterministic_objective=True, warn_independent_sampling=False)
        return sampler, [], False
    if name == "portfolio+tpe":
        return optuna.samplers.TPESampler(seed=seed), greedy_portfolio(sources, portfolio_size), False
    if name == "meta-portfolio":
        knowledge_base = KnowledgeBase(sources)
        if meta_surrogate_available():
            return MetaLearnedSampler(knowledge_base, surrogate=None, seed=seed), [], False
        # Without the surrogate argument, MetaLearnedSampler *is* the portfolio warm start + TPE.
        return MetaLearnedSampler(knowledge_base, seed=seed), [], False
    if name == "meta":
        if not meta_surrogate_available():
            raise RuntimeError(_meta_unavailable_message())
        return MetaLearnedSampler(KnowledgeBase(sources), surrogate="meta", seed=seed), [], False
    raise ValueError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")


def _run_target(
    scenario: YahpoScenario,
    task: str,
    seed: int,
    samplers: Sequence[str],
    sources: Sequence[Task],
    n_trials: int,
    portfolio_size: int,
) -> list[dict[str, Any]]:
    """Every sampler on one target task with one seed: the per-trial values."""
    from threadpoolctl import threadpool_limits

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs = []
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if "gp" in samplers:
            import torch

            torch.set_num_threads(1)
        for name in samplers:
            start = time.perf_counter()
            sampler, enqueue, flat = _make_sampler(name, seed, scenario, sources, portfolio_size)
            study = optuna.create_study(direction=scenario.direction, sampler=sampler)
            for params in enqueue:
                study.enqueue_trial(params)
            study.optimize(scenario.objective(task, flat=flat), n_trials=n_trials)
            values = [t.value if t.state == TrialState.COMPLETE else None for t in study.trials]
            runs.append(
                {
                    "task": task,
                    "seed": seed,
                    "sampler": name,
                    "values": values,
                    "best_values": _best_so_far(values, scenario.direction),
                    "wall_s": time.perf_counter() - start,
                }
            )
    return runs


def _best_so_far(values: Sequence[float | None], direction: str) -> list[float]:
    best, out = None, []
    for value in values:
        if value is not None and math.isfinite(value):
            if best is None or (value > best if direction == "maximize" else value < best):
                best = value
        out.append(float("nan") if best is None else float(best))
    return out


# --------------------------------------------------------------------------- the benchmark


def run(
    scenario: str = "lcbench",
    tasks: Sequence[str] | None = None,
    n_trials: int = 50,
    n_seeds: int = 5,
    samplers: Sequence[str] | None = None,
    source_trials: int = 64,
    source_seed: int = 0,
    n_random: int = 5000,
    portfolio_size: int = 10,
    target: str | None = None,
    root: str | Path | None = None,
    n_jobs: int = 1,
    cache: bool = True,
    verbose: bool = True,
) -> dict[str, Any]:
    """Run the leave-one-task-out benchmark and return its results (see the module docstring).

    Parameters
    ----------
    scenario : str, default="lcbench"
        A YAHPO scenario (:data:`autometa.data.yahpo.SCENARIOS`).
    tasks : sequence of str or None, default=None
        The target tasks; None means all. Source studies always come from all
        the scenario's other tasks.
    n_trials, n_seeds : int, default=50, 5
        Trials per run; seeds ``0 .. n_seeds-1`` per target and sampler.
    samplers : sequence of str or None, default=None
        Names from :data:`SAMPLERS`; None means :func:`default_samplers`.
    source_trials, source_seed : int, default=64, 0
        Size and seed of each source study (:func:`source_task`).
    n_random : int, default=5000
        Random configurations that set each target's regret scale.
    portfolio_size : int, default=10
        The configurations ``portfolio+tpe`` enqueues.
    target : str or None, default=None
        The metric; None is the scenario's default.
    root : path-like or None, default=None
        The YAHPO data folder (see :meth:`YahpoScenario.load`).
    n_jobs : int, default=1
        joblib workers over (target task, seed) pairs.
    cache : bool, default=True
        Read and write cached source studies.
    verbose : bool, default=True
        Print progress to stderr.

    Returns
    -------
    dict
        JSON-able: settings, machine, versions, per-target bounds, every
        run's per-trial values and best values, and :func:`summarise`'s summary.
    """
    bench = YahpoScenario.load(scenario, root=root, target=target)
    samplers = list(default_samplers() if samplers is None else samplers)
    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown:
        raise ValueError(f"unknown samplers {unknown}; known: {', '.join(SAMPLERS)}")
    if not samplers or len(set(samplers)) != len(samplers):
        raise ValueError(f"samplers must be distinct and at least one, got {samplers}")
    if "meta" in samplers and not meta_surrogate_available():
        raise RuntimeError(_meta_unavailable_message())
    targets = list(bench.tasks) if tasks is None else [bench._check_task(t) for t in tasks]
    if not targets:
        raise ValueError("no target task")
    if n_trials < 1 or n_seeds < 1 or source_trials < 1 or n_random < 2:
        raise ValueError("n_trials, n_seeds and source_trials must be positive and n_random at least 2")
    needs_sources = {"ws-cmaes", "portfolio+tpe", "meta-portfolio", "meta"} & set(samplers)
    if needs_sources and len(bench.tasks) < 2:
        raise ValueError(f"scenario {scenario!r} has one task: no other task to transfer from")

    from joblib import Parallel, delayed

    start = time.perf_counter()
    pool = _source_pool(bench, targets)
    source_names = [t for t in pool if any(t != target_task for target_task in targets)]
    if needs_sources:
        where = cache_dir() / "yahpo" if cache else "not cached"
        _log(verbose, f"source studies: {len(source_names)} tasks x {source_trials} TPE trials ({where})")
        made = Parallel(n_jobs=n_jobs)(
            delayed(source_task)(bench, name, source_trials, source_seed, cache) for name in source_names
        )
        sources = dict(zip(source_names, made))
    else:
        sources = {}
    bounds = {task: random_bounds(bench, task, n_random, seed=0) for task in targets}
    setup_s = time.perf_counter() - start
    _log(verbose, f"setup (source studies, random bounds) {setup_s:.1f} s")

    pairs = [(task, seed) for task in targets for seed in range(n_seeds)]
    _log(verbose, f"{len(pairs)} (target, seed) pairs x {len(samplers)} samplers x {n_trials} trials, n_jobs={n_jobs}")
    jobs = (
        delayed(_run_target)(
            bench,
            task,
            seed,
            samplers,
            [sources[name] for name in pool if name != task and name in sources],
            n_trials,
            portfolio_size,
        )
        for task, seed in pairs
    )
    runs = [r for batch in Parallel(n_jobs=n_jobs, verbose=5 if verbose else 0)(jobs) for r in batch]
    wall_s = time.perf_counter() - start

    result = {
        "benchmark": "benchmarks.hpo_yahpo",
        "scenario": scenario,
        "target": bench.target,
        "direction": bench.direction,
        "tasks": targets,
        "n_trials": n_trials,
        "seeds": list(range(n_seeds)),
        "samplers": samplers,
        "source_trials": source_trials,
        "source_seed": source_seed,
        "n_random": n_random,
        "portfolio_size": portfolio_size,
        "budgets": _budgets(n_trials),
        "machine": describe(packages=_VERSIONS),
        "n_jobs": n_jobs,
        "wall_s": wall_s,
        "setup_s": setup_s,
        "notes": _notes(bench, samplers),
        "bounds": {task: {"best": b[0], "worst": b[1]} for task, b in bounds.items()},
        "runs": runs,
    }
    result["summary"] = summarise(result)
    return result


def _source_pool(bench: YahpoScenario, targets: Sequence[str]) -> list[str]:
    """The tasks whose studies form the knowledge bases: all of the scenario's (a target never sees its own)."""
    return list(bench.tasks)


def _notes(bench: YahpoScenario, samplers: Sequence[str]) -> list[str]:
    notes = ["regret normalised by the best and worst of n_random random configurations per target, clipped to [0, 1]"]
    if {"cmaes", "ws-cmaes"} & set(samplers):
        has_categorical = any(isinstance(d, CategoricalDistribution) for d in bench.search_space.values())
        if has_categorical:
            notes.append("CMA-ES samplers: categorical parameters sampled independently at random by Optuna")
        if bench.conditions:
            notes.append("CMA-ES samplers: flat search space (all parameters suggested, inactive ones ignored)")
    if "gp" in samplers and bench.conditions:
        notes.append("gp: conditional parameters (outside the intersection search space) sampled at random")
    if "meta-portfolio" in samplers and not meta_surrogate_available():
        notes.append("meta-portfolio: MetaLearnedSampler without a surrogate argument (portfolio warm start + TPE)")
    return notes


def _budgets(n_trials: int) -> list[int]:
    return sorted({b for b in BUDGETS if b <= n_trials} | {n_trials})


# --------------------------------------------------------------------------- statistics


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Mean normalised regret and mean rank with 95% CIs per sampler and budget, and the paired tests.

    Reads ``result["runs"]``, ``["bounds"]``, ``["samplers"]``, ``["tasks"]``,
    ``["seeds"]`` and ``["budgets"]`` (the shape :func:`run` returns).
    """
    samplers, tasks, seeds = result["samplers"], result["tasks"], result["seeds"]
    bounds = {task: (b["best"], b["worst"]) for task, b in result["bounds"].items()}
    index = {(r["task"], r["seed"], r["sampler"]): r for r in result["runs"]}
    summary: dict[str, Any] = {"regret": {}, "rank": {}, "beat_random_best": {}, "paired": {}, "wall_s_per_run": {}}
    # regret[s, task, seed, trial] unclipped, for ranks and paired tests; clipped for means
    raw = np.array(
        [
            [
                [normalised_regret(index[(task, seed, s)]["best_values"], bounds[task], clip=False) for seed in seeds]
                for task in tasks
            ]
            for s in samplers
        ]
    )
    clipped = np.clip(raw, 0.0, 1.0)
    for budget in result["budgets"]:
        at = raw[..., budget - 1]
        ranks = _rank(at)  # (sampler, task, seed)
        summary["regret"][str(budget)] = {
            s: _mean_ci(clipped[i, :, :, budget - 1]) for i, s in enumerate(samplers)
        }
        summary["rank"][str(budget)] = {s: _mean_ci(ranks[i]) for i, s in enumerate(samplers)}
        summary["beat_random_best"][str(budget)] = {
            s: int((at[i] < 0).sum()) for i, s in enumerate(samplers)
        }
        summary["paired"][str(budget)] = {
            f"{a} vs {b}": _paired(at[samplers.index(a)].ravel(), at[samplers.index(b)].ravel())
            for a, b in PAIRS
            if a in samplers and b in samplers
        }
    summary["wall_s_per_run"] = {
        s: float(np.mean([r["wall_s"] for r in result["runs"] if r["sampler"] == s])) for s in samplers
    }
    summary["mean_curve"] = {s: clipped[i].mean(axis=(0, 1)).tolist() for i, s in enumerate(samplers)}
    return summary


def _rank(values: np.ndarray) -> np.ndarray:
    """Average ranks (1 = lowest) along axis 0."""
    order = values.argsort(axis=0, kind="stable")
    ranks = np.empty_like(values)
    n = values.shape[0]
    np.put_along_axis(ranks, order, np.arange(1, n + 1, dtype=np.float64).reshape((n,) + (1,) * (values.ndim - 1)), 0)
    # ties share their mean rank
    for pos in np.ndindex(values.shape[1:]):
        column = values[(slice(None),) + pos]
        _, inverse = np.unique(column, return_inverse=True)
        r = ranks[(slice(None),) + pos]
        for group in np.unique(inverse):
            members = inverse == group
            if members.sum() > 1:
                r[members] = r[members].mean()
    return ranks


def _mean_ci(values: np.ndarray) -> dict[str, float]:
    """Mean over (task, seed) and a 95% t interval over tasks (each task's mean over seeds); over seeds for one task."""
    units = values.mean(axis=1) if values.shape[0] > 1 else values[0]
    mean = float(values.mean())
    return {"mean": mean, "ci95": mean_ci(units)[1], "n": len(units)}


def _paired(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Paired test of regrets ``a`` vs ``b`` (lower is better)."""
    diff = a - b
    wins, losses = int((diff < 0).sum()), int((diff > 0).sum())
    out = {
        "n_pairs": len(diff),
        "wins": wins,
        "losses": losses,
        "ties": len(diff) - wins - losses,
        "median_difference": float(np.median(diff)),
    }
    if wins + losses == 0:
        return out | {"test": "none (all ties)", "p_value": 1.0}
    try:
        from scipy.stats import wilcoxon

        p = float(wilcoxon(a, b, zero_method="wilcox").pvalue)
        return out | {"test": "wilcoxon signed-rank", "p_value": p}
    except ImportError:
        return out | {"test": "sign test (exact, two-sided)", "p_value": sign_test(wins, losses)}


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign-test p-value for ``wins`` vs ``losses`` (ties dropped beforehand)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


# --------------------------------------------------------------------------- reporting


def markdown(result: dict[str, Any]) -> str:
    """The summary as a markdown report: settings, machine, a table and the paired tests."""
    summary, budgets = result["summary"], result["budgets"]
    lines = [
        f"### YAHPO `{result['scenario']}` ({result['target']}, {result['direction']}): "
        f"leave-one-task-out, {len(result['tasks'])} target tasks x {len(result['seeds'])} seeds "
        f"(seeds {result['seeds'][0]}..{result['seeds'][-1]}), {result['n_trials']} trials",
        "",
        f"Source studies: {result['source_trials']} TPE trials per other task (seed {result['source_seed']}); "
        f"regret normalised by the best/worst of {result['n_random']} random configurations per target. "
        f"Mean normalised regret (lower is better) and mean rank among {len(result['samplers'])} samplers, "
        "+- 95% CI over target tasks.",
        "",
        f"Machine: {result['machine']}; n_jobs={result['n_jobs']}; wall {result['wall_s']:.0f} s",
        "",
    ]
    header = ["sampler"] + [f"regret@{b}" for b in budgets] + [f"rank@{b}" for b in budgets] + ["s/run"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in result["samplers"]:
        cells = [s]
        cells += [_fmt(summary["regret"][str(b)][s], 3) for b in budgets]
        cells += [_fmt(summary["rank"][str(b)][s], 2) for b in budgets]
        cells.append(f"{summary['wall_s_per_run'][s]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    paired = [(b, name, test) for b in budgets for name, test in summary["paired"][str(b)].items()]
    if paired:
        lines += ["", "| paired test | budget | wins / ties / losses | median diff | p | test |", "|---" * 6 + "|"]
        for b, name, test in paired:
            lines.append(
                f"| {name} | {b} | {test['wins']} / {test['ties']} / {test['losses']} | "
                f"{test['median_difference']:+.4f} | {test['p_value']:.3g} | {test['test']} |"
            )
    beaten = {s: summary["beat_random_best"][str(budgets[-1])][s] for s in result["samplers"]}
    lines += ["", f"Runs that beat the best random configuration by trial {budgets[-1]} (regret clipped to 0): "
              + ", ".join(f"{s} {n}" for s, n in beaten.items())]
    lines += [f"Note: {note}" for note in result["notes"]]
    return "\n".join(lines) + "\n"


def _fmt(stat: dict[str, float], digits: int) -> str:
    ci = stat["ci95"]
    return f"{stat['mean']:.{digits}f} ± {ci:.{digits}f}" if math.isfinite(ci) else f"{stat['mean']:.{digits}f}"


def plot(result: dict[str, Any], path: str | Path) -> bool:
    """Mean normalised regret against trials, one line per sampler; False (with a message) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no regret-curve PNG (pip install matplotlib)", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    trials = np.arange(1, result["n_trials"] + 1)
    for s in result["samplers"]:
        ax.plot(trials, result["summary"]["mean_curve"][s], label=s)
    ax.set_yscale("symlog", linthresh=1e-3)  # log-like, but a regret of 0 stays on the plot
    ax.set_ylim(bottom=0)
    ax.set_xlabel("trials")
    ax.set_ylabel("mean normalised regret")
    n_tasks, n_seeds = len(result["tasks"]), len(result["seeds"])
    ax.set_title(f"YAHPO {result['scenario']} ({result['target']}), {n_tasks} tasks x {n_seeds} seeds")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _log(verbose: bool, message: str) -> None:
    if verbose:
        print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add this benchmark's options to ``parser`` (for ``autometa hpo bench --suite yahpo``)."""
    parser.add_argument("--scenario", default="lcbench", help="YAHPO scenario (default: lcbench)")
    parser.add_argument("--tasks", default=None, help="comma-separated target task ids (default: all)")
    parser.add_argument("--n-trials", type=int, default=50, help="trials per run (default: 50)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per target and sampler: 0..N-1 (default: 5)")
    parser.add_argument(
        "--samplers",
        default=None,
        help=f"comma-separated, from {', '.join(SAMPLERS)} (default: all but gp; meta only where it exists)",
    )
    parser.add_argument("--source-trials", type=int, default=64, help="TPE trials per source study (default: 64)")
    parser.add_argument("--source-seed", type=int, default=0, help="seed of the source studies (default: 0)")
    parser.add_argument("--n-random", type=int, default=5000, help="random configurations for regret bounds")
    parser.add_argument("--portfolio-size", type=int, default=10, help="configurations portfolio+tpe enqueues")
    parser.add_argument("--target", default=None, help="metric to optimise (default: the scenario's)")
    parser.add_argument("--data-root", default=None, help="YAHPO data folder (default: $AUTOMETA_DATA/yahpo)")
    parser.add_argument("--no-cache", action="store_true", help="regenerate source studies, write no cache")
    parser.add_argument("--n-jobs", type=int, default=1, help="joblib workers over (task, seed) pairs")
    parser.add_argument("--quiet", action="store_true", help="no progress lines (the table is still printed)")
    parser.add_argument(
        "--out", default=None, help="JSON path; the .md and .png go next to it (default: hpo_yahpo_<scenario>.json)"
    )
    return parser


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark from parsed :func:`add_arguments` options; write JSON, markdown and PNG; print the table."""
    samplers = None if args.samplers is None else [s.strip() for s in args.samplers.split(",") if s.strip()]
    tasks = None if args.tasks is None else [t.strip() for t in args.tasks.split(",") if t.strip()]
    if samplers is None and not meta_surrogate_available():
        print("note: 'meta' not run: " + _meta_unavailable_message(), file=sys.stderr)
    result = run(
        scenario=args.scenario,
        tasks=tasks,
        n_trials=args.n_trials,
        n_seeds=args.seeds,
        samplers=samplers,
        source_trials=args.source_trials,
        source_seed=args.source_seed,
        n_random=args.n_random,
        portfolio_size=args.portfolio_size,
        target=args.target,
        root=args.data_root,
        n_jobs=args.n_jobs,
        cache=not args.no_cache,
        verbose=not getattr(args, "quiet", False),
    )
    out = Path(args.out if args.out is not None else f"hpo_yahpo_{args.scenario}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, allow_nan=True) + "\n")
    report = markdown(result)
    out.with_suffix(".md").write_text(report)
    print(report)
    png = out.with_suffix(".png")
    wrote_png = plot(result, png)
    print(f"wrote {out}, {out.with_suffix('.md')}" + (f", {png}" if wrote_png else ""))
    return result


if __name__ == "__main__":
    main(add_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0])).parse_args())
