"""Transfer HPO with real fits on PMLB: how many trials each sampler needs on a new data set.

For each *target* data set and each sampler and seed ``0 .. n_seeds-1``, a
study runs ``n_trials`` trials of the standard objective
(:func:`autometa.hpo.spaces.make_objective`: ``cv``-fold cross-validation,
balanced accuracy or R^2, maximised) of one search space on the target,
subsampled to ``max_rows`` rows exactly as ``autometa kb build`` does (the
data, folds and estimator seeds do not depend on the sampler's seed, so
equal configurations score equally in every run).

Knowledge base and leave-data-set-out
-------------------------------------
The knowledge base is the pretrained one of the search space
(:func:`autometa.hpo.pretrained.load_pretrained`), a file written by
``autometa kb export`` or an Optuna storage URL. For each target the tasks of
the target itself *and of its near-duplicates* are left out. Two PMLB data
sets are near-duplicates (:func:`near_duplicates`) when

- they share a *family*: the first alphanumeric token of the lowercased
  name with trailing digits stripped (``breast`` / ``breast-w`` /
  ``breast-cancer-wisconsin``; ``monk1`` / ``monk2``; all ``GAMETES_*``,
  ``mfeat-*``, ``analcatdata_*``, ``fri_*``), or
- they have the same number of features and row counts within 2% of each
  other (in ``index.csv``, before subsampling): ``chess`` / ``kr-vs-kp``,
  ``mushroom`` / ``agaricus-lepiota``, ``vote`` / ``house-votes-84``,
  ``allbp`` / ``allhyper`` / ``allhypo`` / ``allrep`` / ``dis``.

The rule is deliberately broad: it also separates some unrelated data sets
of one family (e.g. two ``analcatdata_*``), which only makes transfer harder.
A task's data set is the part of its name after ``"<space>:"``.

Samplers
--------
``random``
    ``RandomSampler``.
``tpe``
    Optuna's ``TPESampler``.
``ws-cmaes``
    ``CmaEsSampler(source_trials=...)`` (Nomura et al., AAAI 2021) from the
    completed trials of the ``n_similar`` tasks nearest by descriptor
    (:func:`autometa.hpo.similarity.descriptor_weights`), numeric parameters only,
    each task's values rescaled to ``[0, 1]`` (1 best); categorical
    parameters are sampled independently at random by Optuna.
``portfolio+tpe``
    The greedy portfolio (:func:`autometa.hpo.portfolio.greedy_portfolio`,
    all tasks weighted equally) of ``portfolio_size`` configurations,
    enqueued, then ``TPESampler``.
``meta``
    ``MetaLearnedSampler(knowledge_base, descriptor=<target's meta-features>)``
    with its defaults.

Reported
--------
For every run, the best score after each trial (failed trials score
nothing). Per target: the *normalised regret* after ``t`` trials,
``(best - best_so_far(t)) / (best - worst)``, where ``best`` and ``worst``
are the highest and lowest scores of any completed trial of any sampler on
that target (1 before the first completed trial); and the *trials needed to
match TPE*: the first ``t`` at which a run's best reaches TPE's result,
the mean over seeds of TPE's best after ``n_trials`` trials (never: censored,
shown as ``>N``; the median over seeds, then over targets, with censored
values counting as larger than every number). The last line printed, when
the samplers include ``tpe`` and ``meta``, is
``meta trials to match tpe@N: median M over D data sets``.

In the JSON output, a trials-to-match that never happened is the string
``"inf"``; undefined values (a best score before the first completed
trial) are ``null``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autometa._common import mean_ci

__all__ = ["SAMPLERS", "add_arguments", "family", "main", "near_duplicates", "run", "summarise"]

SAMPLERS = ("random", "tpe", "ws-cmaes", "portfolio+tpe", "meta")
DEFAULT_SAMPLERS = ("random", "tpe", "portfolio+tpe", "meta")
_ROW_TOLERANCE = 0.02


def family(name: str) -> str:
    """A data set's family: the first alphanumeric token of its lowercased name, trailing digits stripped."""
    tokens = re.findall(r"[a-z0-9]+", name.lower())
    if not tokens:
        return name.lower()
    stripped = tokens[0].rstrip("0123456789")
    return stripped or tokens[0]


def near_duplicates(target: str, names: Sequence[str], index=None) -> set[str]:
    """The names among ``names`` that are ``target`` or its near-duplicates (module docstring).

    Parameters
    ----------
    target : str
    names : sequence of str
    index : pandas.DataFrame or None
        PMLB ``index.csv`` (``name``, ``n_rows``, ``n_features``) for the
        shape rule; None applies the name rules only.
    """
    twins = {name for name in names if name == target or family(name) == family(target)}
    if index is not None:
        shapes = {row.name: (int(row.n_rows), int(row.n_features)) for row in index.itertuples(index=False)}
        if target in shapes:
            rows, features = shapes[target]
            for name in names:
                if name in shapes:
                    other_rows, other_features = shapes[name]
                    if other_features == features and abs(other_rows - rows) <= _ROW_TOLERANCE * max(rows, other_rows):
                        twins.add(name)
    return twins


def _task_dataset(task_name: str, space: str) -> str:
    prefix = f"{space}:"
    return task_name[len(prefix):] if task_name.startswith(prefix) else task_name


def _load_kb(kb: str, space: str):
    from autometa.hpo.build import open_storage, read_knowledge_base
    from autometa.hpo.knowledge_base import KnowledgeBase

    if kb == "pretrained":
        from autometa.hpo.pretrained import load_pretrained

        return load_pretrained(space)
    if "://" in kb or kb.endswith((".log", ".jsonl", ".db")):
        if kb.endswith(".db") and "://" not in kb:
            kb = f"sqlite:///{kb}"
        storage = open_storage(kb)
        names = [s.study_name for s in storage.get_all_studies() if s.user_attrs.get("autometa:space") == space]
        if not names:
            raise ValueError(f"--kb {kb}: no study of search space {space!r} there; build one with `autometa kb build`")
        return KnowledgeBase.from_storage(storage, study_names=names)
    if not Path(kb).is_file():
        raise FileNotFoundError(f"--kb {kb}: no such file; pass 'pretrained', a file of `autometa kb export` "
                                "or a storage URL")
    knowledge_base, info = read_knowledge_base(kb)
    if info is not None and info.get("space") not in (None, space):
        raise ValueError(f"--kb {kb} was built for search space {info['space']!r}, not {space!r}")
    return knowledge_base


def meta_surrogate_available() -> bool:
    """Whether the installed ``MetaLearnedSampler`` has the meta-learned surrogate (``surrogate=``)."""
    from autometa.hpo.sampler import MetaLearnedSampler

    return "surrogate" in inspect.signature(MetaLearnedSampler).parameters


def _make_sampler(name: str, seed: int, sources: list, descriptor: dict, space, portfolio_size: int, n_similar: int,
                  meta_options: dict | None = None):
    """(sampler, configurations to enqueue)."""
    import optuna

    from autometa.hpo.knowledge_base import KnowledgeBase
    from autometa.hpo.portfolio import greedy_portfolio
    from autometa.hpo.sampler import MetaLearnedSampler
    from autometa.hpo.similarity import descriptor_weights

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed), []
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed), []
    if name == "ws-cmaes":
        weights = descriptor_weights(sources, descriptor, n_similar)
        similar = [task for task, w in zip(sources, weights) if w > 0]
        from benchmarks.warm_start_trials import rescaled_source_trials

        source_trials = rescaled_source_trials(similar, space.distributions(), direction="maximize")
        return optuna.samplers.CmaEsSampler(seed=seed, source_trials=source_trials,
                                            warn_independent_sampling=False), []
    if name == "portfolio+tpe":
        return optuna.samplers.TPESampler(seed=seed), greedy_portfolio(sources, portfolio_size)
    if name == "meta":
        return MetaLearnedSampler(KnowledgeBase(sources), descriptor=descriptor, seed=seed, **(meta_options or {})), []
    raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")


def _run_one(space_name: str, target: str, data_dir: str, sampler_name: str, seed: int, sources: list,
             descriptor: dict, n_trials: int, max_rows: int | None, cv: int, time_limit: float | None,
             portfolio_size: int, n_similar: int, meta_options: dict | None) -> dict[str, Any]:
    """One study of ``sampler_name`` on ``target``: its values (None for failed trials) and timings."""
    import warnings

    import optuna

    from autometa.hpo.build import load_dataset
    from autometa.hpo.spaces import get_space, make_objective

    space = get_space(space_name)
    X, y, _ = load_dataset(target, data_dir, space.name, max_rows, 0, cv)
    objective = make_objective(space, X, y, cv=cv, time_limit=time_limit, random_state=0)
    start = time.perf_counter()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # no warning per failed trial
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature warnings of source_trials and the like
        sampler, enqueued = _make_sampler(sampler_name, seed, sources, descriptor, space, portfolio_size, n_similar,
                                          meta_options)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for params in enqueued[:n_trials]:
            study.enqueue_trial(params)
        try:
            study.optimize(objective, n_trials=n_trials, gc_after_trial=False)
        finally:
            optuna.logging.set_verbosity(verbosity)
    values = [t.value if t.state == optuna.trial.TrialState.COMPLETE else None for t in study.trials]
    return {"dataset": target, "sampler": sampler_name, "seed": seed, "values": values,
            "seconds": round(time.perf_counter() - start, 2)}


def best_so_far(values: Sequence[float | None]) -> list[float]:
    """The running maximum of ``values`` (failed trials, None, skipped; NaN before the first completed)."""
    best, out = -math.inf, []
    for value in values:
        if value is not None and math.isfinite(value):
            best = max(best, value)
        out.append(best if best > -math.inf else math.nan)
    return out


def _trials_to_reach(curve: Sequence[float], goal: float) -> float:
    for t, value in enumerate(curve, start=1):
        if not math.isnan(value) and value >= goal - 1e-12:
            return float(t)
    return math.inf


def summarise(runs: list[dict[str, Any]], samplers: Sequence[str], n_trials: int,
              budgets: Sequence[int] | None = None) -> dict[str, Any]:
    """Per-data-set and overall regret curves and trials-to-match-TPE from raw ``runs``."""
    budgets = sorted({b for b in (budgets or (5, 10, 20, n_trials)) if 1 <= b <= n_trials})
    datasets = list(dict.fromkeys(run["dataset"] for run in runs))
    per_dataset: dict[str, Any] = {}
    for dataset in datasets:
        mine = [run for run in runs if run["dataset"] == dataset]
        scores = [v for run in mine for v in run["values"] if v is not None and math.isfinite(v)]
        best, worst = (max(scores), min(scores)) if scores else (math.nan, math.nan)
        curves = {s: [best_so_far(r["values"]) for r in mine if r["sampler"] == s] for s in samplers}
        regret = {}
        for s, runs_of_s in curves.items():
            matrix = np.array(runs_of_s, dtype=float)
            gap = best - worst
            r = np.where(np.isnan(matrix), 1.0, (best - matrix) / gap if gap > 0 else 0.0)
            regret[s] = r.mean(axis=0).tolist()
        entry: dict[str, Any] = {"best": best, "worst": worst, "best_so_far": curves, "mean_regret": regret}
        if "tpe" in curves and curves["tpe"]:
            finals = [c[-1] for c in curves["tpe"] if not math.isnan(c[-1])]
            goal = float(np.mean(finals)) if finals else math.nan
            entry["tpe_result"] = goal
            entry["trials_to_match_tpe"] = {
                s: _median([_trials_to_reach(c, goal) for c in runs_of_s]) if not math.isnan(goal) else math.nan
                for s, runs_of_s in curves.items()
            }
        per_dataset[dataset] = entry
    overall: dict[str, Any] = {
        "mean_regret_at": {s: {str(b): float(np.mean([per_dataset[d]["mean_regret"][s][b - 1] for d in datasets]))
                               for b in budgets} for s in samplers},
        "regret_ci_at": {s: {str(b): _ci_half_width([per_dataset[d]["mean_regret"][s][b - 1] for d in datasets])
                             for b in budgets} for s in samplers},
    }
    if "tpe" in samplers and datasets:
        def final(dataset, sampler):
            ends = [c[-1] for c in per_dataset[dataset]["best_so_far"][sampler] if not math.isnan(c[-1])]
            return float(np.mean(ends)) if ends else -math.inf

        # "worse than TPE": a lower mean best score after n_trials (scores are maximised)
        overall["worse_than_tpe"] = {s: sum(final(d, s) < final(d, "tpe") for d in datasets) for s in samplers}
    if all("trials_to_match_tpe" in per_dataset[d] for d in datasets) and datasets:
        overall["trials_to_match_tpe"] = {
            s: _median([per_dataset[d]["trials_to_match_tpe"][s] for d in datasets]) for s in samplers
        }
    return {"budgets": budgets, "datasets": per_dataset, "overall": overall}


def _ci_half_width(values: Sequence[float]) -> float:
    """Half-width of the 95% t-interval of the mean of ``values`` (NaN for fewer than two)."""
    values = [v for v in values if not math.isnan(v)]
    return mean_ci(values)[1] if values else math.nan


def _median(values: Sequence[float]) -> float:
    """The median, with inf (never) counting as larger than any number."""
    values = [v for v in values if not math.isnan(v)]
    return float(np.median(values)) if values else math.nan


def _fmt_trials(value: float, n_trials: int) -> str:
    if math.isinf(value):
        return f">{n_trials}"
    return "-" if math.isnan(value) else f"{value:g}"


def run(
    estimator: str = "hist_gradient_boosting",
    data_dir: str | os.PathLike | None = None,
    datasets: Sequence[str] | None = None,
    kb: str = "pretrained",
    n_trials: int = 30,
    n_seeds: int = 3,
    samplers: Sequence[str] = DEFAULT_SAMPLERS,
    portfolio_size: int = 5,
    n_similar: int = 5,
    max_rows: int | None = 1000,
    cv: int = 3,
    time_limit: float | None = None,
    n_jobs: int = 1,
    out: str | os.PathLike | None = None,
    verbose: bool = True,
    meta_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the benchmark (module docstring), print its tables and write ``out`` as JSON.

    Parameters
    ----------
    estimator : str, default="hist_gradient_boosting"
        A search space of :data:`autometa.hpo.spaces.SEARCH_SPACES`.
    data_dir : str or path-like or None
        The PMLB cache folder; None: ``pmlb/`` under the shared data root.
    datasets : sequence of str
        Target data sets (required).
    kb : str, default="pretrained"
        ``"pretrained"``, a file of ``autometa kb export`` or a storage URL.
    n_trials, n_seeds : int, default=30, 3
        Trials per study; sampler seeds ``0 .. n_seeds-1``.
    samplers : sequence of str
        From :data:`SAMPLERS`.
    portfolio_size : int, default=5
        Configurations ``portfolio+tpe`` enqueues.
    n_similar : int, default=5
        Source tasks of ``ws-cmaes``.
    max_rows, cv, time_limit
        As for ``autometa kb build``.
    n_jobs : int, default=1
        Runs in parallel (joblib, the active backend).
    out : str or path-like or None
        JSON output path; None writes nothing.
    verbose : bool, default=True
        Progress lines on stderr.
    meta_options : dict or None, default=None
        Extra keyword arguments of ``MetaLearnedSampler`` (e.g. ``meta_train_steps``).

    Returns
    -------
    dict
        Settings, machine, raw runs (values per trial), and :func:`summarise`'s summary.
    """
    from joblib import delayed

    from autometa._common import describe
    from autometa.data.pmlb import _pmlb_dir, pmlb_index
    from autometa.hpo.build import _parallel, load_dataset, select_datasets
    from autometa.hpo.metafeatures import compute_metafeatures
    from autometa.hpo.spaces import get_space

    space = get_space(estimator)
    samplers = list(dict.fromkeys(samplers))
    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown:
        raise ValueError(f"unknown sampler(s) {unknown}; choose from {', '.join(SAMPLERS)}")
    if not datasets:
        raise ValueError("--datasets is required: comma-separated PMLB names of the target data sets")
    if n_trials < 1 or n_seeds < 1:
        raise ValueError("--n-trials and --seeds must be positive")
    directory = _pmlb_dir(data_dir)
    targets = select_datasets(space.name, directory, list(datasets))
    index = pmlb_index(directory)
    knowledge_base = _load_kb(kb, space.name)
    task_sets = {task.name: _task_dataset(task.name, space.name) for task in knowledge_base}
    if "meta" in samplers and not meta_surrogate_available():
        _log(verbose, "note: MetaLearnedSampler has no meta-learned surrogate here: 'meta' is its portfolio + TPE")

    jobs, excluded = [], {}
    for target in targets:
        twins = near_duplicates(target, list(task_sets.values()), index)
        sources = [task for task in knowledge_base if task_sets[task.name] not in twins]
        if not sources and set(samplers) & {"ws-cmaes", "portfolio+tpe", "meta"}:
            raise ValueError(f"no knowledge-base task left for target {target!r} after leaving out {sorted(twins)}")
        excluded[target] = sorted(twins)
        X, y, _ = load_dataset(target, directory, space.name, max_rows, 0, cv)
        descriptor = compute_metafeatures(X, y, task=space.task)
        for sampler in samplers:
            for seed in range(n_seeds):
                jobs.append(delayed(_run_one)(space.name, target, os.fspath(directory), sampler, seed, sources,
                                              descriptor, n_trials, max_rows, cv, time_limit, portfolio_size,
                                              n_similar, meta_options))
        _log(verbose, f"{target}: {len(sources)} source tasks (left out: {', '.join(sorted(twins)) or 'none'})")
    start = time.perf_counter()
    runs = []
    for i, result in enumerate(_parallel(n_jobs)(jobs), start=1):
        runs.append(result)
        _log(verbose, f"[{i}/{len(jobs)}] {result['dataset']} {result['sampler']} seed {result['seed']}: "
                      f"best {max((v for v in result['values'] if v is not None), default=math.nan):.4f} "
                      f"({result['seconds']:.0f} s)")
    order = {(d, s, k): i for i, (d, s, k) in enumerate(
        (d, s, k) for d in targets for s in samplers for k in range(n_seeds))}
    runs.sort(key=lambda r: order[(r["dataset"], r["sampler"], r["seed"])])
    summary = summarise(runs, samplers, n_trials)
    result = {
        "benchmark": "hpo_pmlb",
        "estimator": space.name,
        "space_version": space.version,
        "kb": kb,
        "kb_tasks": len(knowledge_base),
        "excluded": excluded,
        "datasets": targets,
        "samplers": samplers,
        "n_trials": n_trials,
        "n_seeds": n_seeds,
        "portfolio_size": portfolio_size,
        "n_similar": n_similar,
        "max_rows": max_rows,
        "cv": cv,
        "metric": "balanced_accuracy" if space.task == "classification" else "r2",
        "meta_surrogate": meta_surrogate_available() if "meta" in samplers else None,
        "meta_options": meta_options or {},
        "machine": describe(packages=("autometa", "optuna", "scikit-learn", "numpy")),
        "seconds": round(time.perf_counter() - start, 1),
        "runs": runs,
        "summary": summary,
    }
    if out is not None:
        out = Path(out)
        if not out.parent.is_dir():
            raise FileNotFoundError(f"--out {out}: folder {out.parent} does not exist")
        out.write_text(json.dumps(_jsonable(result), allow_nan=False, indent=1) + "\n")
    for line in report(result):
        print(line)
    return result


def report(result: dict[str, Any]) -> list[str]:
    """The printed report; its last line is the meta-vs-TPE line when both were run."""
    summary, samplers, n = result["summary"], result["samplers"], result["n_trials"]
    lines = [f"# hpo bench pmlb: {result['estimator']} (space v{result['space_version']}), "
             f"{len(result['datasets'])} data sets x {n} trials x {result['n_seeds']} seeds, "
             f"{result['metric']}, {result['cv']}-fold CV, max {result['max_rows']} rows, kb {result['kb']}",
             f"# {result['machine']}", ""]
    head = f"{'data set':32s} " + " ".join(f"{s:>14s}" for s in samplers)
    lines += [f"best {result['metric']} after {n} trials (mean over seeds) | trials to match TPE@{n}", head]
    for dataset, entry in summary["datasets"].items():
        finals = []
        for s in samplers:
            ends = [c[-1] for c in entry["best_so_far"][s] if not math.isnan(c[-1])]
            match = entry.get("trials_to_match_tpe", {}).get(s, math.nan)
            finals.append(f"{np.mean(ends) if ends else math.nan:.4f}|{_fmt_trials(match, n):>4s}")
        lines.append(f"{dataset[:32]:32s} " + " ".join(f"{f:>14s}" for f in finals))
    lines += ["", "mean normalised regret (0 = best found by any sampler) at budget, +- 95% CI over data sets"]
    lines.append(f"{'sampler':16s} " + " ".join(f"{'@' + str(b):>15s}" for b in summary["budgets"]))
    for s in samplers:
        at, ci = summary["overall"]["mean_regret_at"][s], summary["overall"]["regret_ci_at"][s]
        lines.append(f"{s:16s} " + " ".join(f"{at[str(b)]:7.3f} +- {ci[str(b)]:.3f}" for b in summary["budgets"]))
    worse = summary["overall"].get("worse_than_tpe")
    if worse:
        lines.append("")
        lines += [f"{s} worse than tpe@{n} on {worse[s]} of {len(summary['datasets'])} data sets"
                  for s in samplers if s != "tpe"]
    to_match = summary["overall"].get("trials_to_match_tpe")
    if to_match:
        lines.append("")
        order = [s for s in samplers if s != "meta"] + (["meta"] if "meta" in samplers else [])
        for s in order:
            lines.append(f"{s} trials to match tpe@{n}: median {_fmt_trials(to_match[s], n)} "
                         f"over {len(summary['datasets'])} data sets")
    return lines


def _jsonable(value):
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"  # e.g. a trials-to-match that never happened
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return _jsonable(value.item())
    return value


def _log(verbose: bool, message: str) -> None:
    if verbose:
        print(message, file=sys.stderr, flush=True)


def add_arguments(parser: argparse.ArgumentParser, shared: bool = True) -> argparse.ArgumentParser:
    """Add this benchmark's options to ``parser`` (``autometa hpo bench --suite pmlb``).

    ``shared=False`` leaves out the options another suite's runner adds with
    the same meaning (``--n-trials``, ``--seeds``, ``--samplers``,
    ``--portfolio-size``, ``--n-jobs``, ``--out``), so both can share one
    parser; :func:`main` then uses this suite's defaults for those left None.
    """
    parser.add_argument("--estimator", default="hist_gradient_boosting", help="search space (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, help="PMLB cache folder (default: pmlb/ under the shared data)")
    parser.add_argument("--datasets", default=None, help="comma-separated target data sets (required)")
    parser.add_argument("--kb", default="pretrained",
                        help="'pretrained', a file of `autometa kb export`, or a storage URL (default: %(default)s)")
    parser.add_argument("--max-rows", type=int, default=1000, help="rows kept per data set; 0 keeps all "
                                                                    "(default: %(default)s)")
    parser.add_argument("--cv", type=int, default=3, help="cross-validation folds (default: %(default)s)")
    parser.add_argument("--time-limit", type=float, default=None, help="seconds per trial (default: none)")
    if shared:
        parser.add_argument("--n-trials", type=int, default=30, help="trials per study (default: %(default)s)")
        parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per data set and sampler "
                                                                  "(default: %(default)s)")
        parser.add_argument("--samplers", default=",".join(DEFAULT_SAMPLERS),
                            help=f"comma-separated, from {', '.join(SAMPLERS)} (default: %(default)s)")
        parser.add_argument("--portfolio-size", type=int, default=5, help="portfolio+tpe's enqueued configurations")
        parser.add_argument("--n-jobs", type=int, default=1, help="runs in parallel (default: %(default)s)")
        parser.add_argument("--out", default=None, help="JSON output file")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run from parsed :func:`add_arguments` options (None or missing ones take this suite's defaults)."""
    def option(name, default):
        value = getattr(args, name, None)
        return default if value is None else value

    names = [n.strip() for n in (args.datasets or "").split(",") if n.strip()]
    samplers = option("samplers", ",".join(DEFAULT_SAMPLERS))
    max_rows = option("max_rows", 1000)
    return run(
        estimator=option("estimator", "hist_gradient_boosting"), data_dir=option("data_dir", None), datasets=names,
        kb=option("kb", "pretrained"), n_trials=option("n_trials", 30), n_seeds=option("seeds", 3),
        samplers=[s.strip() for s in samplers.split(",") if s.strip()],
        portfolio_size=option("portfolio_size", 5), max_rows=None if max_rows <= 0 else max_rows,
        cv=option("cv", 3), time_limit=option("time_limit", None), n_jobs=option("n_jobs", 1),
        out=option("out", None), verbose=not getattr(args, "quiet", False),
    )

if __name__ == "__main__":
    parser = add_arguments(argparse.ArgumentParser(prog="python -m benchmarks.hpo_pmlb"))
    try:
        main(parser.parse_args())
    except (FileNotFoundError, ValueError) as error:
        print(f"autometa: error: {error}", file=sys.stderr)
        sys.exit(2)
