"""Transfer HPO with real fits on PMLB: what each sampler's choice scores on data the search never saw.

For each *target* data set and each seed ``0 .. n_seeds-1``, the data set is
split once (the *outer split*: stratified, 70% training / 30% test, seeded
by the seed, so a new split per seed; unstratified when a class has a single
row). Each part is subsampled to at most ``max_rows`` rows (stratified,
subsample seed 0, as ``autometa kb build`` does). Each sampler then runs a
study of ``n_trials`` trials of the standard objective
(:func:`autometa.hpo.spaces.make_objective`: ``cv``-fold cross-validation,
balanced accuracy or R^2, maximised) of one search space on the **training
part only**; the folds and estimator seeds do not depend on the sampler, so
within one seed equal configurations score equally for every sampler. The
sampler seed is the split seed.

Test scores
-----------
After ``b`` trials, for each budget ``b`` of :data:`BUDGETS` (1, 3, 5, 6, 10,
20, 30) up to ``n_trials`` and ``n_trials`` itself, the run's *incumbent* is
the configuration a user would take: the sampler's own choice where it
offers one (a ``best_trial(study)`` method), else the completed trial of best
CV value (the first of ties); for a sampler with its own choice, the
best-CV trial is scored too (``by_value`` in the JSON, the ``best-CV`` row
of the test table). It is refitted on the whole training part
(``SearchSpace.build(params, X_train, random_state=0)``) and scored on the
test part with the objective's metric. The *default* is the untuned
estimator on the same split and preprocessing (:func:`default_model`):
scikit-learn's defaults of the space's estimator, with the space's fixed
scaling kept: ``hist_gradient_boosting``: ``HistGradientBoostingClassifier()``;
``random_forest``: ``RandomForestClassifier()``; ``svc``: ``StandardScaler``
+ ``SVC()`` (RBF, ``C=1``, ``gamma="scale"``, no class weight);
``logistic_regression``: ``StandardScaler`` + ``LogisticRegression()``;
``k_nearest_neighbors``: ``StandardScaler`` + ``KNeighborsClassifier()`` (5
neighbours, uniform, Euclidean); ``mlp``: ``StandardScaler`` +
``MLPClassifier()`` (one layer of 100, no early stopping); the
regressors likewise (``svr`` also standardises the target).

Data sets
---------
``datasets`` names the targets; without it, ``n_datasets`` (30) are picked
one per family (:func:`one_per_family`): among the data sets of the space's
task with at most 5,000 rows, each family's largest, near-duplicates by
shape of an earlier pick dropped, then ``n_datasets`` spread evenly over
the row counts (so from a few dozen rows up to 5,000).

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
``gp``
    Optuna's ``GPSampler`` (Gaussian-process Bayesian optimisation, no transfer).
``ws-cmaes``
    ``CmaEsSampler(source_trials=...)`` (Nomura et al., AAAI 2021) from the
    completed trials of the ``n_similar`` tasks nearest by descriptor
    (:func:`autometa.hpo.similarity.descriptor_weights`), numeric parameters only,
    each task's values rescaled to ``[0, 1]`` (1 best); categorical
    parameters are sampled independently at random by Optuna.
``meta-learn-tpe``
    Task-similarity TPE (Watanabe et al., IJCAI 2023; OptunaHub's
    ``meta_learn_tpe`` reimplemented, :mod:`benchmarks.transfer_baselines`)
    over every source task.
``box+random``
    Random search inside the box of the source tasks' best configurations
    (Perrone et al., NeurIPS 2019; :mod:`benchmarks.transfer_baselines`).
``portfolio``
    A static greedy portfolio (auto-sklearn 2.0 / TabRepo style): the greedy
    portfolio of ``n_trials`` configurations, run in order (random search
    after it when there are fewer distinct candidates).
``portfolio+tpe``
    The greedy portfolio (:func:`autometa.hpo.portfolio.greedy_portfolio`,
    all tasks weighted equally) of ``portfolio_size`` configurations,
    enqueued, then ``TPESampler``.
``meta``
    ``MetaLearnedSampler(knowledge_base, descriptor=<target's meta-features>)``
    with its defaults.

Reported
--------
CV (as before the outer split): for every run, the best CV score after each
trial (failed trials score nothing). Per target: the *normalised regret*
after ``t`` trials, ``(best - best_so_far(t)) / (best - worst)``, where
``best`` and ``worst`` are the highest and lowest scores of any completed
trial of any sampler on that target (1 before the first completed trial);
and the *trials needed to match TPE*: the first ``t`` at which a run's best
reaches TPE's result, the mean over seeds of TPE's best after ``n_trials``
trials (never: censored, shown as ``>N``; the median over seeds, then over
targets, with censored values counting as larger than every number).

Test (:func:`summarise_test`): per sampler and budget the incumbent's test
score and CV score (mean over seeds, then over data sets, with 95% CIs);
the default's test score; mean ranks on test (1 best, ties averaged) and
the paired two-sided Wilcoxon signed-rank test (over data sets) of the best
sampler against the next best and against TPE; the first budget at which the
incumbent's test score reaches TPE's test score after ``n_trials`` (as for
CV, but only budgets are looked at); and, when ``tpe`` and ``meta`` ran, the
issue-16 target lines: meta test@6 - TPE test@N and meta test@N - TPE test@N
in points (x 100) with wins / ties / losses (ties: closer than
:data:`TIE`) and Wilcoxon p, each sampler's test@N minus the default and
the number of data sets where it is worse than the default, and meta's
median CV trials to match TPE@N (the last line).

In the JSON output, a trials-to-match that never happened is the string
``"inf"``; undefined values (a best score before the first completed
trial, a refit that failed) are ``null``.
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
from benchmarks.run_cache import append_run, jsonable, read_runs

__all__ = ["BUDGETS", "GROUPS", "SAMPLERS", "add_arguments", "default_model", "family", "group_datasets",
           "held_out_per_family",
           "load_split", "main", "near_duplicates", "one_per_family", "outer_split", "run", "summarise",
           "summarise_test"]

SAMPLERS = ("random", "tpe", "gp", "ws-cmaes", "meta-learn-tpe", "box+random", "portfolio", "portfolio+tpe", "meta")
DEFAULT_SAMPLERS = ("random", "tpe", "portfolio+tpe", "meta")
#: The samplers that learn from the knowledge base.
TRANSFER_SAMPLERS = ("ws-cmaes", "meta-learn-tpe", "box+random", "portfolio", "portfolio+tpe", "meta")
#: The data-set groups: ``design`` picks ``n_datasets`` family representatives; ``held-out`` is every other one.
GROUPS = ("design", "held-out")
#: Budgets (trials) at which each run's incumbent is refitted and scored on the test part (and ``n_trials``).
BUDGETS = (1, 3, 5, 6, 10, 20, 30)
#: The share of each data set held out as the test part.
TEST_SIZE = 0.3
#: Data sets of at most this many rows are candidates for :func:`one_per_family`.
FAMILY_MAX_ROWS = 5000
#: Two test scores closer than this are a tie in wins / ties / losses.
TIE = 1e-4
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


def one_per_family(index, task: str, n: int, max_rows: int = FAMILY_MAX_ROWS) -> list[str]:
    """``n`` data sets of ``task`` from PMLB ``index``, one per family, from small to large (module docstring).

    Each family of at most ``max_rows``-row data sets is represented by its
    largest member (ties: the first name); a representative that is a
    near-duplicate by shape of an earlier one (by name) is dropped; then
    ``n`` representatives evenly spaced in row count are taken, so the
    choice spans small and large data sets. All of them if fewer.
    """
    rows = index[(index["task"] == task) & (index["n_rows"] <= max_rows)]
    chosen: dict[str, tuple[int, str]] = {}
    for row in rows.sort_values("name").itertuples(index=False):
        key = family(row.name)
        if key not in chosen or int(row.n_rows) > chosen[key][0]:
            chosen[key] = (int(row.n_rows), row.name)
    names: list[str] = []
    for _, name in sorted(chosen.values(), key=lambda item: item[1]):
        if not near_duplicates(name, names, index):
            names.append(name)
    names.sort(key=lambda name: (int(index.loc[index["name"] == name, "n_rows"].iloc[0]), name))
    if n >= len(names):
        return names
    picks = np.unique(np.round(np.linspace(0, len(names) - 1, n)).astype(int))
    return [names[i] for i in picks]


def held_out_per_family(index, task: str, n: int, max_rows: int = FAMILY_MAX_ROWS) -> list[str]:
    """Every family representative of :func:`one_per_family` that its choice of ``n`` leaves out, from small to
    large: the data sets held back from the design of the samplers (module docstring)."""
    design = set(one_per_family(index, task, n, max_rows))
    return [name for name in one_per_family(index, task, len(index), max_rows) if name not in design]


def group_datasets(index, task: str, group: str, n: int) -> list[str]:
    """The data sets of ``group`` (:data:`GROUPS`): :func:`one_per_family`'s ``n`` for ``"design"``, the other family
    representatives (:func:`held_out_per_family`) for ``"held-out"``."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; choose from {', '.join(GROUPS)}")
    return (one_per_family if group == "design" else held_out_per_family)(index, task, n)


def _task_dataset(task_name: str, space: str) -> str:
    prefix = f"{space}:"
    return task_name[len(prefix):] if task_name.startswith(prefix) else task_name


def leave_out(knowledge_base, space: str, target: str, index=None) -> tuple[list, list[str]]:
    """``(tasks, left_out)``: the tasks of ``knowledge_base`` whose data set is neither ``target`` nor one of
    its near-duplicates (:func:`near_duplicates`), and the names of the data sets left out, sorted."""
    datasets = {task.name: _task_dataset(task.name, space) for task in knowledge_base}
    twins = near_duplicates(target, list(datasets.values()), index)
    return [task for task in knowledge_base if datasets[task.name] not in twins], sorted(twins)


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
                  meta_options: dict | None = None, n_trials: int = 30):
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
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed), []
    if name == "meta-learn-tpe":
        from benchmarks.transfer_baselines import TaskSimilarityTPESampler

        return TaskSimilarityTPESampler(sources, space.distributions(), seed=seed), []
    if name == "box+random":
        from benchmarks.transfer_baselines import SearchBoxSampler, learned_search_box

        return SearchBoxSampler(learned_search_box(sources), seed=seed), []
    if name == "portfolio":
        return optuna.samplers.RandomSampler(seed=seed), greedy_portfolio(sources, n_trials)
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


def outer_split(X, y, seed: int, classification: bool, test_size: float = TEST_SIZE):
    """``(X_train, y_train, X_test, y_test)``: the outer split of seed ``seed`` (module docstring).

    Stratified for classification; a data set with a class too small to
    stratify is split at random.
    """
    from sklearn.model_selection import train_test_split

    if classification:
        try:
            X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size, random_state=seed,
                                                                stratify=y)
            return X_train, y_train, X_test, y_test
        except ValueError:  # a class with a single row
            pass
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size, random_state=seed)
    return X_train, y_train, X_test, y_test


def load_split(target: str, data_dir, space, max_rows: int | None, cv: int, seed: int):
    """``(X_train, y_train, X_test, y_test)`` of ``target`` for ``seed``: the outer split, each part
    subsampled to at most ``max_rows`` rows (stratified, subsample seed 0), features as
    :func:`autometa.hpo.spaces.prepare_features` returns them."""
    from autometa.data.pmlb import load_pmlb
    from autometa.hpo.build import subsample
    from autometa.hpo.spaces import prepare_features

    classification = space.task == "classification"
    X, y = load_pmlb(target, data_dir, download=False)
    X_train, y_train, X_test, y_test = outer_split(X, y, seed, classification)
    X_train, y_train = subsample(X_train, y_train, max_rows, 0, classification, min_per_class=cv)
    X_test, y_test = subsample(X_test, y_test, max_rows, 0, classification, min_per_class=1)
    return (prepare_features(X_train), np.asarray(y_train), prepare_features(X_test), np.asarray(y_test))


def default_model(space, X=None, random_state: int = 0):
    """The untuned baseline of ``space`` (module docstring): scikit-learn's defaults of its estimator,
    with the space's fixed scaling, behind the space's preprocessing."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR

    from autometa.hpo.spaces import make_preprocessor

    models = {
        "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(random_state=random_state),
        "random_forest": lambda: RandomForestClassifier(n_jobs=1, random_state=random_state),
        "svc": lambda: make_pipeline(StandardScaler(), SVC(random_state=random_state)),
        "logistic_regression": lambda: make_pipeline(StandardScaler(), LogisticRegression(random_state=random_state)),
        "k_nearest_neighbors": lambda: make_pipeline(StandardScaler(), KNeighborsClassifier()),
        "mlp": lambda: make_pipeline(StandardScaler(), MLPClassifier(random_state=random_state)),
        "hist_gradient_boosting_regressor": lambda: HistGradientBoostingRegressor(random_state=random_state),
        "random_forest_regressor": lambda: RandomForestRegressor(n_jobs=1, random_state=random_state),
        "svr": lambda: TransformedTargetRegressor(regressor=make_pipeline(StandardScaler(), SVR()),
                                                  transformer=StandardScaler()),
        "ridge": lambda: make_pipeline(StandardScaler(), Ridge()),
    }
    if space.name not in models:
        raise ValueError(f"no default configuration for search space {space.name!r}")
    return Pipeline([("preprocess", make_preprocessor(X, space.categorical, space.impute)),
                     ("model", models[space.name]())])


def _test_score(model, X_train, y_train, X_test, y_test, metric: str) -> float | None:
    """``model`` fitted on the training part, scored on the test part (None if it fails)."""
    import warnings

    from sklearn.metrics import get_scorer
    from threadpoolctl import threadpool_limits

    try:
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore")
            fitted = model.fit(X_train, y_train)
            value = float(get_scorer(metric)(fitted, X_test, y_test))
    except Exception:  # noqa: BLE001 - a configuration that cannot be refitted scores nothing
        return None
    return value if math.isfinite(value) else None


def _best_by_value(study):
    """The completed trial of best CV value (the first of ties), None before one completed."""
    import optuna

    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
                 and t.value is not None and math.isfinite(t.value)]
    return max(completed, key=lambda t: t.value, default=None)


def _incumbent(study, sampler):
    """The trial the run would hand to a user now: the sampler's own choice where it offers one
    (``sampler.best_trial(study)``, e.g. ``MetaLearnedSampler``'s best value less its standard error), else the
    completed trial of best CV value."""
    choose = getattr(sampler, "best_trial", None)
    if callable(choose):
        try:
            return choose(study)
        except ValueError:  # no completed trial yet
            return None
    return _best_by_value(study)


def _run_one(space_name: str, target: str, data_dir: str, sampler_name: str, seed: int, sources: list,
             descriptor: dict, n_trials: int, max_rows: int | None, cv: int, time_limit: float | None,
             portfolio_size: int, n_similar: int, meta_options: dict | None,
             budgets: Sequence[int] = BUDGETS) -> dict[str, Any]:
    """One study of ``sampler_name`` on the training part of ``target``'s split ``seed``: its CV values
    (None for failed trials), its incumbents' test scores at ``budgets``, and timings."""
    import warnings

    import optuna

    from autometa.hpo.spaces import get_space, make_objective

    space = get_space(space_name)
    X_train, y_train, X_test, y_test = load_split(target, data_dir, space, max_rows, cv, seed)
    objective = make_objective(space, X_train, y_train, cv=cv, time_limit=time_limit, random_state=0)
    budgets = sorted({b for b in budgets if 1 <= b <= n_trials} | {n_trials})
    start = time.perf_counter()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # no warning per failed trial
    incumbents: dict[int, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature warnings of source_trials and the like
        sampler, enqueued = _make_sampler(sampler_name, seed, sources, descriptor, space, portfolio_size, n_similar,
                                          meta_options, n_trials)

        own_choice = callable(getattr(sampler, "best_trial", None))
        by_value: dict[int, Any] = {}

        def record(study, trial):
            done = trial.number + 1  # trials run one at a time; enqueued ones wait in study.trials
            if done in budgets:
                incumbents[done] = _incumbent(study, sampler)
                if own_choice:
                    by_value[done] = _best_by_value(study)

        study = optuna.create_study(direction="maximize", sampler=sampler)
        for params in enqueued[:n_trials]:
            study.enqueue_trial(params)
        try:
            study.optimize(objective, n_trials=n_trials, gc_after_trial=False, callbacks=[record])
        finally:
            optuna.logging.set_verbosity(verbosity)
    search_seconds = time.perf_counter() - start
    tested: dict[int, float | None] = {}  # trial number -> test score: one refit per incumbent

    def scored(trial) -> dict[str, Any]:
        if trial is None:
            return {"trial": None, "cv": None, "test": None}
        if trial.number not in tested:
            model = space.build(trial.params, X_train, random_state=0)
            tested[trial.number] = _test_score(model, X_train, y_train, X_test, y_test, objective.metric)
        return {"trial": trial.number, "cv": trial.value, "test": tested[trial.number]}

    at = []
    for b in budgets:
        at.append({"budget": b, **scored(incumbents.get(b))})
        if own_choice:  # the best-CV trial beside the sampler's choice, for comparison
            at[-1]["by_value"] = scored(by_value.get(b))
    values = [t.value if t.state == optuna.trial.TrialState.COMPLETE else None for t in study.trials]
    return {"dataset": target, "sampler": sampler_name, "seed": seed, "values": values, "incumbents": at,
            "seconds": round(time.perf_counter() - start, 2), "search_seconds": round(search_seconds, 2)}


def _record_key(record: dict[str, Any]) -> tuple:
    kind = "run" if "sampler" in record else "default"
    return kind, record["dataset"], record.get("sampler"), record["seed"]


def _read_cache(cache, settings: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
    """The cached runs and default scores of ``settings``, by ``(kind, dataset, sampler, seed)``."""
    return {_record_key(result): result for result in read_runs(cache, settings)}


def _collect(jobs: list, cached: dict, cache, settings: dict[str, Any], n_jobs: int,
             verbose: bool | None) -> list[dict[str, Any]]:
    """The results of ``jobs`` (``(key, delayed call)`` pairs): cached ones, the rest run and appended to
    ``cache`` as they finish; ``verbose`` None logs nothing."""
    from autometa.hpo.build import _parallel

    results = [cached[key] for key, _ in jobs if key in cached]
    todo = [call for key, call in jobs if key not in cached]
    if verbose and results:
        _log(verbose, f"{len(results)} of {len(jobs)} runs from the cache")
    for result in _parallel(n_jobs)(todo):
        append_run(cache, settings, result)
        results.append(result)
        if verbose is not None and "sampler" in result:
            final = result["incumbents"][-1]
            _log(verbose, f"[{len(results)}/{len(jobs)}] {result['dataset']} {result['sampler']} "
                          f"seed {result['seed']}: best CV "
                          f"{max((v for v in result['values'] if v is not None), default=math.nan):.4f}, "
                          f"incumbent test {_fmt_score(final['test'])} ({result['seconds']:.0f} s)")
    return results


def _default_score(space_name: str, target: str, data_dir: str, seed: int, max_rows: int | None,
                   cv: int) -> dict[str, Any]:
    """The untuned default's test score on ``target``'s split ``seed``."""
    from autometa.hpo.spaces import get_space

    space = get_space(space_name)
    X_train, y_train, X_test, y_test = load_split(target, data_dir, space, max_rows, cv, seed)
    metric = "balanced_accuracy" if space.task == "classification" else "r2"
    score = _test_score(default_model(space, X_train, 0), X_train, y_train, X_test, y_test, metric)
    return {"dataset": target, "seed": seed, "test": score}


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


def _wilcoxon(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the paired Wilcoxon signed-rank test (NaN when every pair is equal or too few)."""
    from scipy.stats import wilcoxon

    pairs = [(x, y) for x, y in zip(a, b) if not (math.isnan(x) or math.isnan(y))]
    if len(pairs) < 2 or all(abs(x - y) < TIE for x, y in pairs):
        return math.nan
    try:
        return float(wilcoxon([x for x, _ in pairs], [y for _, y in pairs]).pvalue)
    except ValueError:
        return math.nan


def _wtl(a: Sequence[float], b: Sequence[float]) -> list[int]:
    """Wins / ties / losses of ``a`` against ``b`` (ties: closer than :data:`TIE`)."""
    diffs = [x - y for x, y in zip(a, b) if not (math.isnan(x) or math.isnan(y))]
    return [sum(d >= TIE for d in diffs), sum(abs(d) < TIE for d in diffs), sum(d <= -TIE for d in diffs)]


def _nanmean(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def summarise_test(runs: list[dict[str, Any]], defaults: list[dict[str, Any]], samplers: Sequence[str],
                   n_trials: int) -> dict[str, Any]:
    """Test-split summary (module docstring): per data set and sampler the mean over seeds of the
    incumbent's test and CV score at each budget, the default's test score; overall means with 95% CIs,
    mean ranks, paired Wilcoxon tests, trials to reach TPE on test, and the issue's target figures."""
    from scipy.stats import rankdata

    budgets = sorted({i["budget"] for run in runs for i in run.get("incumbents", [])})
    datasets = list(dict.fromkeys(run["dataset"] for run in runs))
    per_dataset: dict[str, Any] = {}
    for dataset in datasets:
        mine = [run for run in runs if run["dataset"] == dataset]
        entry: dict[str, Any] = {"test_at": {}, "cv_at": {}}
        for s in samplers:
            of_s = [run for run in mine if run["sampler"] == s]
            for key, field in (("test_at", "test"), ("cv_at", "cv")):
                entry[key][s] = {str(b): _nanmean(i[field] if i[field] is not None else math.nan
                                                  for run in of_s for i in run["incumbents"] if i["budget"] == b)
                                 for b in budgets}
        for s in samplers:
            of_s = [run for run in mine if run["sampler"] == s]
            if of_s and all("by_value" in i for run in of_s for i in run["incumbents"]):
                entry.setdefault("test_at_by_value", {})[s] = {
                    str(b): _nanmean(i["by_value"]["test"] if i["by_value"]["test"] is not None else math.nan
                                     for run in of_s for i in run["incumbents"] if i["budget"] == b)
                    for b in budgets}
        entry["default_test"] = _nanmean(d["test"] if d["test"] is not None else math.nan
                                         for d in defaults if d["dataset"] == dataset)
        if "tpe" in samplers:
            goal = entry["test_at"]["tpe"][str(n_trials)]
            entry["tpe_test_result"] = goal
            entry["budgets_to_reach_tpe_test"] = {}
            for s in samplers:
                reached = []
                for run in (run for run in mine if run["sampler"] == s):
                    hits = [i["budget"] for i in run["incumbents"]
                            if i["test"] is not None and not math.isnan(goal) and i["test"] >= goal - 1e-12]
                    reached.append(float(min(hits)) if hits else math.inf)
                entry["budgets_to_reach_tpe_test"][s] = _median(reached) if not math.isnan(goal) else math.nan
        per_dataset[dataset] = entry

    def column(s, b, key="test_at"):
        return [per_dataset[d][key][s][str(b)] for d in datasets]

    overall: dict[str, Any] = {"default_test": list(mean_ci([per_dataset[d]["default_test"] for d in datasets]))
                               if datasets else [math.nan, math.nan]}
    for key in ("test_at", "cv_at"):
        overall[key] = {s: {str(b): list(mean_ci(column(s, b, key))) if datasets else [math.nan, math.nan]
                            for b in budgets} for s in samplers}
    own = [s for s in samplers if datasets and all("test_at_by_value" in per_dataset[d]
                                                   and s in per_dataset[d]["test_at_by_value"] for d in datasets)]
    if own:
        overall["test_at_by_value"] = {
            s: {str(b): list(mean_ci([per_dataset[d]["test_at_by_value"][s][str(b)] for d in datasets]))
                for b in budgets} for s in own}
    ranks: dict[str, dict[str, float]] = {}
    tests: dict[str, dict[str, Any]] = {}
    for b in budgets:
        matrix = np.array([column(s, b) for s in samplers], dtype=float).T  # data sets x samplers
        matrix = matrix[~np.isnan(matrix).any(axis=1)]
        if not len(matrix):
            continue
        mean_rank = rankdata(-matrix, axis=1).mean(axis=0)
        ranks[str(b)] = {s: float(r) for s, r in zip(samplers, mean_rank)}
        order = [samplers[i] for i in np.argsort(mean_rank, kind="stable")]
        best = order[0]
        entry = {"best": best}
        if len(order) > 1:
            entry["next"] = order[1]
            entry["p_next"] = _wilcoxon(column(best, b), column(order[1], b))
        if "tpe" in samplers and best != "tpe":
            entry["p_tpe"] = _wilcoxon(column(best, b), column("tpe", b))
        tests[str(b)] = entry
    overall["mean_rank_at"] = ranks
    overall["wilcoxon_at"] = tests
    if "tpe" in samplers and datasets:
        overall["budgets_to_reach_tpe_test"] = {
            s: _median([per_dataset[d]["budgets_to_reach_tpe_test"][s] for d in datasets]) for s in samplers}
    if "tpe" in samplers and "meta" in samplers and datasets:
        n = str(n_trials)
        tpe_final = column("tpe", n_trials)
        targets: dict[str, Any] = {}
        for b in (6, n_trials):
            if str(b) not in overall["test_at"]["meta"]:
                continue
            meta = column("meta", b)
            diff = [100 * (m - t) for m, t in zip(meta, tpe_final) if not (math.isnan(m) or math.isnan(t))]
            targets[f"meta@{b}_minus_tpe@{n}_points"] = list(mean_ci(diff)) if diff else [math.nan, math.nan]
            targets[f"meta@{b}_vs_tpe@{n}_wtl"] = _wtl(meta, tpe_final)
            targets[f"meta@{b}_vs_tpe@{n}_p"] = _wilcoxon(meta, tpe_final)
        defaults_ = [per_dataset[d]["default_test"] for d in datasets]
        for s in ("meta", "tpe"):
            final = column(s, n_trials)
            pairs = [(f, d) for f, d in zip(final, defaults_) if not (math.isnan(f) or math.isnan(d))]
            targets[f"{s}@{n}_worse_than_default"] = [sum(f <= d - TIE for f, d in pairs), len(pairs)]
            targets[f"{s}@{n}_minus_default_points"] = (list(mean_ci([100 * (f - d) for f, d in pairs]))
                                                        if pairs else [math.nan, math.nan])
        overall["targets"] = targets
    return {"budgets": budgets, "datasets": per_dataset, "overall": overall}


def _ci_half_width(values: Sequence[float]) -> float:
    """Half-width of the 95% t-interval of the mean of ``values`` (NaN for fewer than two)."""
    values = [v for v in values if not math.isnan(v)]
    return mean_ci(values)[1] if values else math.nan


def _median(values: Sequence[float]) -> float:
    """The median, with inf (never) counting as larger than any number."""
    values = [v for v in values if not math.isnan(v)]
    return float(np.median(values)) if values else math.nan


def _fmt_score(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _fmt_trials(value: float, n_trials: int) -> str:
    if math.isinf(value):
        return f">{n_trials}"
    return "-" if math.isnan(value) else f"{value:g}"


def run(
    estimator: str = "hist_gradient_boosting",
    data_dir: str | os.PathLike | None = None,
    datasets: Sequence[str] | None = None,
    n_datasets: int = 30,
    group: str = "design",
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
    cache: str | os.PathLike | None = None,
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
    datasets : sequence of str or None, default=None
        Target data sets; None: ``n_datasets`` of them, one per family
        (:func:`one_per_family`).
    n_datasets : int, default=30
        How many data sets ``datasets=None`` picks for the ``design`` group.
    group : {"design", "held-out"}, default="design"
        Without ``datasets``: ``design`` is :func:`one_per_family`'s ``n_datasets``
        data sets, ``held-out`` every other family representative
        (:func:`held_out_per_family`).
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
    cache : str or path-like or None
        JSON-lines file of finished runs and default scores, appended as they
        finish; a rerun with the same file and settings skips what it holds.
        It does not know the code: delete it after changing a sampler.
    verbose : bool, default=True
        Progress lines on stderr.
    meta_options : dict or None, default=None
        Extra keyword arguments of ``MetaLearnedSampler`` (e.g. ``meta_train_steps``).

    Returns
    -------
    dict
        Settings, machine, raw runs (CV values per trial, incumbents' test scores per budget), the
        default's test scores, :func:`summarise`'s CV summary (``summary``) and
        :func:`summarise_test`'s (``test_summary``).
    """
    from joblib import delayed

    from autometa._common import describe
    from autometa.data.pmlb import _pmlb_dir, pmlb_index
    from autometa.hpo.build import select_datasets
    from autometa.hpo.metafeatures import compute_metafeatures
    from autometa.hpo.spaces import get_space

    space = get_space(estimator)
    samplers = list(dict.fromkeys(samplers))
    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown:
        raise ValueError(f"unknown sampler(s) {unknown}; choose from {', '.join(SAMPLERS)}")
    if datasets is not None and not datasets:
        raise ValueError("--datasets names no data set: give comma-separated PMLB names, or leave it out "
                         "for --n-datasets data sets, one per family")
    if n_trials < 1 or n_seeds < 1 or n_datasets < 1:
        raise ValueError("--n-trials, --seeds and --n-datasets must be positive")
    directory = _pmlb_dir(data_dir)
    index = pmlb_index(directory)
    picked = group_datasets(index, space.task, group, n_datasets)  # also checks the group
    if datasets is None:
        datasets = picked
    targets = select_datasets(space.name, directory, list(datasets))
    knowledge_base = _load_kb(kb, space.name)
    if "meta" in samplers and not meta_surrogate_available():
        _log(verbose, "note: MetaLearnedSampler has no meta-learned surrogate here: 'meta' is its portfolio + TPE")

    jobs, excluded, default_jobs = [], {}, []
    for target in targets:
        sources, twins = leave_out(knowledge_base, space.name, target, index)
        if not sources and set(samplers) & set(TRANSFER_SAMPLERS):
            raise ValueError(f"no knowledge-base task left for target {target!r} after leaving out {twins}")
        excluded[target] = twins
        for seed in range(n_seeds):
            # the new task's descriptor is what a user has: its training part
            X_train, y_train, _, _ = load_split(target, directory, space, max_rows, cv, seed)
            descriptor = compute_metafeatures(X_train, y_train, task=space.task)
            default_jobs.append((("default", target, None, seed),
                                 delayed(_default_score)(space.name, target, os.fspath(directory), seed, max_rows,
                                                         cv)))
            for sampler in samplers:
                jobs.append((("run", target, sampler, seed),
                             delayed(_run_one)(space.name, target, os.fspath(directory), sampler, seed, sources,
                                               descriptor, n_trials, max_rows, cv, time_limit, portfolio_size,
                                               n_similar, meta_options)))
        _log(verbose, f"{target}: {len(sources)} source tasks (left out: {', '.join(sorted(twins)) or 'none'})")
    settings = {"estimator": space.name, "space_version": space.version, "kb": kb, "n_trials": n_trials,
                "max_rows": max_rows, "cv": cv, "time_limit": time_limit, "portfolio_size": portfolio_size,
                "n_similar": n_similar, "meta_options": meta_options or {}}
    cached = _read_cache(cache, settings)
    start = time.perf_counter()
    defaults = _collect(default_jobs, cached, cache, settings, n_jobs, None)
    runs = _collect(jobs, cached, cache, settings, n_jobs, verbose)
    order = {(d, s, k): i for i, (d, s, k) in enumerate(
        (d, s, k) for d in targets for s in samplers for k in range(n_seeds))}
    runs.sort(key=lambda r: order[(r["dataset"], r["sampler"], r["seed"])])
    summary = summarise(runs, samplers, n_trials)
    test_summary = summarise_test(runs, defaults, samplers, n_trials)
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
        "test_size": TEST_SIZE,
        "cv": cv,
        "metric": "balanced_accuracy" if space.task == "classification" else "r2",
        "meta_surrogate": meta_surrogate_available() if "meta" in samplers else None,
        "meta_options": meta_options or {},
        "machine": describe(packages=("autometa", "optuna", "scikit-learn", "numpy")),
        "seconds": round(time.perf_counter() - start, 1),
        "runs": runs,
        "defaults": defaults,
        "summary": summary,
        "test_summary": test_summary,
    }
    if out is not None:
        out = Path(out)
        if not out.parent.is_dir():
            raise FileNotFoundError(f"--out {out}: folder {out.parent} does not exist")
        out.write_text(json.dumps(jsonable(result), allow_nan=False, indent=1) + "\n")
    for line in report(result):
        print(line)
    return result


def report(result: dict[str, Any]) -> list[str]:
    """The printed report; it ends with the issue's target lines when ``tpe`` and ``meta`` were run."""
    summary, samplers, n = result["summary"], result["samplers"], result["n_trials"]
    test = result["test_summary"]
    metric, budgets = result["metric"], test["budgets"]
    n_sets = len(result["datasets"])
    lines = [(f"# hpo bench pmlb: {result['estimator']} (space v{result['space_version']}), "
              f"{n_sets} data sets x {n} trials x {result['n_seeds']} seeds, {metric}, "
              f"outer {1 - result['test_size']:.0%}/{result['test_size']:.0%} split per seed, "
              f"{result['cv']}-fold CV on the training part, max {result['max_rows']} rows, kb {result['kb']}"),
             f"# {result['machine']}", ""]
    lines += [(f"test {metric} of the incumbent after {n} trials (mean over seeds) | CV best after {n} | "
               f"CV trials to match TPE@{n}"),
              f"{'data set':28s} {'default':>8s} " + " ".join(f"{s:>22s}" for s in samplers)]
    for dataset, entry in test["datasets"].items():
        cells = []
        for s in samplers:
            cv_entry = summary["datasets"][dataset]
            ends = [c[-1] for c in cv_entry["best_so_far"][s] if not math.isnan(c[-1])]
            match = cv_entry.get("trials_to_match_tpe", {}).get(s, math.nan)
            cells.append(f"{_fmt_score(entry['test_at'][s][str(n)])}|{np.mean(ends) if ends else math.nan:.4f}|"
                         f"{_fmt_trials(match, n):>4s}")
        lines.append(f"{dataset[:28]:28s} {_fmt_score(entry['default_test']):>8s} "
                     + " ".join(f"{c:>22s}" for c in cells))
    overall = test["overall"]
    default_mean, default_ci = overall["default_test"]
    for key, what in (("test_at", f"test {metric} of the incumbent"), ("cv_at", f"CV {metric} of the incumbent")):
        lines += ["", f"{what} at budget, mean +- 95% CI over data sets"
                      + (f" (untuned default on test: {default_mean:.4f} +- {default_ci:.4f})" if key == "test_at"
                         else ""),
                  f"{'sampler':14s} " + " ".join(f"{'@' + str(b):>16s}" for b in budgets)]
        for s in samplers:
            lines.append(f"{s:14s} " + " ".join(f"{m:7.4f} +- {c:.4f}" for m, c in
                                                (overall[key][s][str(b)] for b in budgets)))
        if key == "test_at":
            for s, at in overall.get("test_at_by_value", {}).items():
                lines.append(f"{s + ' best-CV':14s} " + " ".join(f"{m:7.4f} +- {c:.4f}" for m, c in
                                                                 (at[str(b)] for b in budgets)))
    if overall["mean_rank_at"]:
        lines += ["", (f"mean rank on test (1 = best; over {n_sets} data sets) and paired Wilcoxon p of the best "
                       "against the next best and against tpe")]
        for b in sorted({5, 10, 30, n}):
            if str(b) not in overall["mean_rank_at"]:
                continue
            ranks, w = overall["mean_rank_at"][str(b)], overall["wilcoxon_at"][str(b)]
            text = f"@{b:<3d} " + " ".join(f"{s} {ranks[s]:.2f}" for s in samplers) + f" | best {w['best']}"
            if "next" in w:
                text += f", vs {w['next']} p={w['p_next']:.3f}"
            if "p_tpe" in w and w.get("next") != "tpe":
                text += f", vs tpe p={w['p_tpe']:.3f}"
            lines.append(text)
    reach = overall.get("budgets_to_reach_tpe_test")
    to_match = summary["overall"].get("trials_to_match_tpe")
    if reach and to_match:
        lines += ["", (f"trials to reach tpe@{n} (median over data sets; test: first budget of "
                       f"{','.join(map(str, budgets))} at which the incumbent's test score reaches it)")]
        for s in samplers:
            lines.append(f"{s:14s} CV {_fmt_trials(to_match[s], n):>4s}   test {_fmt_trials(reach[s], n):>4s}")
    targets = overall.get("targets")
    if targets:
        key6 = f"meta@6_minus_tpe@{n}_points"
        lines += ["", "issue 16 targets (test scores in points of balanced accuracy x 100; mean +- 95% CI)"]
        if key6 in targets and n != 6:
            (m, c), (w, t, l) = targets[key6], targets[f"meta@6_vs_tpe@{n}_wtl"]
            lines.append(f"meta test@6 - tpe test@{n}: {m:+.2f} +- {c:.2f} points (W/T/L {w}/{t}/{l}, "
                         f"Wilcoxon p={targets[f'meta@6_vs_tpe@{n}_p']:.3f}; target >= 0)")
        (m, c), (w, t, l) = targets[f"meta@{n}_minus_tpe@{n}_points"], targets[f"meta@{n}_vs_tpe@{n}_wtl"]
        lines.append(f"meta test@{n} - tpe test@{n}: {m:+.2f} +- {c:.2f} points (W/T/L {w}/{t}/{l}, "
                     f"Wilcoxon p={targets[f'meta@{n}_vs_tpe@{n}_p']:.3f}; target >= +0.5)")
        for s in ("tpe", "meta"):
            worse, total = targets[f"{s}@{n}_worse_than_default"]
            m, c = targets[f"{s}@{n}_minus_default_points"]
            lines.append(f"{s} test@{n} - default: {m:+.2f} +- {c:.2f} points; worse than the default on "
                         f"{worse} of {total} data sets ({100 * worse / max(total, 1):.0f}%"
                         + ("; target <= 5%)" if s == "meta" else ")"))
        lines.append(f"meta CV trials to match tpe@{n}: median {_fmt_trials(to_match['meta'], n)} over "
                     f"{n_sets} data sets (target <= 6)")
    return lines


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
    parser.add_argument("--datasets", default=None,
                        help="comma-separated target data sets (default: --n-datasets of them, one per family)")
    parser.add_argument("--n-datasets", type=int, default=30,
                        help="data sets of the design group, one per family (default: %(default)s)")
    parser.add_argument("--group", choices=GROUPS, default="design",
                        help="without --datasets: the design group (--n-datasets family representatives) or "
                             "held-out (every other family representative) (default: %(default)s)")
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
    parser.add_argument("--cache", default=None,
                        help="JSON-lines file of finished runs; a rerun with the same settings resumes from it")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run from parsed :func:`add_arguments` options (None or missing ones take this suite's defaults)."""
    def option(name, default):
        value = getattr(args, name, None)
        return default if value is None else value

    names = None if args.datasets is None else [n.strip() for n in args.datasets.split(",") if n.strip()]
    samplers = option("samplers", ",".join(DEFAULT_SAMPLERS))
    max_rows = option("max_rows", 1000)
    return run(
        estimator=option("estimator", "hist_gradient_boosting"), data_dir=option("data_dir", None), datasets=names,
        n_datasets=option("n_datasets", 30), group=option("group", "design"),
        kb=option("kb", "pretrained"), n_trials=option("n_trials", 30), n_seeds=option("seeds", 3),
        samplers=[s.strip() for s in samplers.split(",") if s.strip()],
        portfolio_size=option("portfolio_size", 5), max_rows=None if max_rows <= 0 else max_rows,
        cv=option("cv", 3), time_limit=option("time_limit", None), n_jobs=option("n_jobs", 1),
        out=option("out", None), cache=option("cache", None), verbose=not getattr(args, "quiet", False),
    )

if __name__ == "__main__":
    parser = add_arguments(argparse.ArgumentParser(prog="python -m benchmarks.hpo_pmlb"))
    try:
        main(parser.parse_args())
    except (FileNotFoundError, ValueError) as error:
        print(f"autometa: error: {error}", file=sys.stderr)
        sys.exit(2)
