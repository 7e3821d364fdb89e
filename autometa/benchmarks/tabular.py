"""Few-shot classification on real tabular data: PMLB data sets with many classes.

For each data set (default: every local PMLB classification data set with at
least 10 classes), split its classes into meta-train classes and new classes
(:func:`autometa.tasks.split_classes`, 40% new and at least ``n_way`` new);
:meth:`FewShotClassifier.meta_fit` each algorithm on the meta-train rows; then
draw N-way K-shot episodes over the new classes (the same seeded episodes for
every method) and fit each method on an episode's support set and score it on
its query set: the meta-fitted estimators next to scikit-learn baselines
(1-nearest neighbour, logistic regression, a random forest of 100 trees and
the nearest centroid, each behind a ``StandardScaler`` fitted on the support
set). Reports the mean query accuracy with a 95% confidence interval over
episodes, per data set and averaged over the data sets.

Data handling, to keep the run bounded and free of leakage:

- classes with fewer than ``max(shots) + 5`` rows are dropped (so an episode
  has at least 5 queries per class); a data set left with fewer than
  ``2 * n_way`` classes is skipped;
- each class is subsampled to at most ``max_per_class`` rows (default 200);
- features are standardised with the mean and standard deviation of the
  meta-train rows only (the new classes' rows never inform it); the
  baselines see the same features and standardise again on each support set
  (their own ``StandardScaler``), which makes them invariant to that global
  scaling;
- episodes have ``min(15, fewest rows of a new class - max(shots))`` queries
  per class;
- meta-training draws 1-shot episodes of ``n_way`` classes (one meta-learner
  per data set and algorithm, reused for every K).

Everything runs on one thread (torch and the BLAS/OpenMP pools): the
networks and the support sets are tiny, so more threads only add overhead.
"""

from __future__ import annotations

import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier, NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from autometa.benchmarks.machine import describe
from autometa.data.pmlb import load_pmlb, pmlb_index
from autometa.estimators import FewShotClassifier
from autometa.tasks import EpisodeSampler, split_classes

ALGORITHMS = ("protonet", "matching", "maml", "reptile")
BASELINES = ("1-NN", "logistic", "forest", "centroid")
MIN_CLASSES = 10
MIN_QUERY = 5
MAX_QUERY = 15
NEW_FRACTION = 0.4


def baselines(seed: int = 0) -> dict:
    """The scikit-learn baselines, each a Pipeline behind a StandardScaler."""
    return {
        "1-NN": make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=1)),
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "forest": make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=100, random_state=seed)),
        "centroid": make_pipeline(StandardScaler(), NearestCentroid()),
    }


def default_datasets(data_dir=None) -> list[str]:
    """Local PMLB classification data sets with at least 10 classes, by name."""
    index = pmlb_index(data_dir)
    chosen = index[(index["task"] == "classification") & (index["n_classes"] >= MIN_CLASSES)]
    directory = _pmlb_dir(data_dir)
    return sorted(n for n in chosen["name"] if (directory / n / f"{n}.tsv.gz").is_file())


def run(datasets=None, algorithms=ALGORITHMS, n_way: int = 5, shots=(1, 5), n_episodes: int = 200,
        meta_steps: int = 500, seed: int = 0, data_dir=None, max_per_class: int = 200,
        device: str = "cpu", verbose: bool = False) -> list[dict]:
    """Run the benchmark; print the tables and return one row per data set, method and K.

    Each row: ``dataset``, ``method``, ``kind`` (``"autometa"`` or
    ``"baseline"``), ``n_way``, ``k_shot``, ``n_query``, ``n_episodes``,
    ``accuracy`` (mean over episodes) and ``ci`` (95% half-width).
    """
    shots = tuple(int(k) for k in shots)
    algorithms = tuple(algorithms)
    names = list(datasets) if datasets else default_datasets(data_dir)
    if not names:
        raise ValueError(f"no PMLB classification data set with at least {MIN_CLASSES} classes in "
                         f"{_pmlb_dir(data_dir)}")
    print(f"Few-shot classification on PMLB data sets: {n_way}-way {'/'.join(map(str, shots))}-shot episodes over "
          f"classes never seen in meta-training; {n_episodes} episodes per data set and K (the same for every "
          f"method), up to {MAX_QUERY} queries per class; at most {max_per_class} rows per class; features "
          f"standardised with the meta-train rows' statistics; {meta_steps} meta-steps (1-shot episodes, "
          f"meta-batch 8) per algorithm; one thread; seed {seed}")
    print(f"machine: {describe(device, packages=('autometa', 'torch', 'numpy', 'scikit-learn'))}")
    print(f"data sets: {', '.join(names)}")
    methods = [*algorithms, *BASELINES]
    rows: list[dict] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        with threadpool_limits(1):
            for name in names:
                rows += _run_dataset(name, algorithms, n_way, shots, n_episodes, meta_steps, seed, data_dir,
                                     max_per_class, device, verbose)
    finally:
        torch.set_num_threads(threads)
    _print_average(rows, methods, shots)
    _print_summary(rows, algorithms, shots)
    print(f"total {time.perf_counter() - start:.0f} s", flush=True)
    return rows


def _run_dataset(name, algorithms, n_way, shots, n_episodes, meta_steps, seed, data_dir, max_per_class,
                 device, verbose) -> list[dict]:
    started = time.perf_counter()
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    X, y = load_pmlb(name, data_dir=data_dir, download=False)
    X = X.to_numpy(dtype=np.float64)
    y = np.asarray(y)
    n_rows_all = len(y)
    # drop classes too small for an episode, then cap every class's rows
    labels, counts = np.unique(y, return_counts=True)
    kept_labels = labels[counts >= max(shots) + MIN_QUERY]
    keep = []
    for label in kept_labels:
        rows_of = np.flatnonzero(y == label)
        if len(rows_of) > max_per_class:
            rows_of = np.sort(rng.choice(rows_of, max_per_class, replace=False))
        keep.append(rows_of)
    if len(kept_labels) < 2 * n_way:
        print(f"\n{name}: skipped: {len(kept_labels)} classes with >= {max(shots) + MIN_QUERY} rows; "
              f"needs {2 * n_way} ({n_way} to meta-train on, {n_way} new)", flush=True)
        return []
    keep = np.sort(np.concatenate(keep))
    X, y = X[keep], y[keep]
    n_classes = len(kept_labels)
    fraction = max(NEW_FRACTION, n_way / n_classes)
    train_classes, new_classes = split_classes(y, val_fraction=fraction, random_state=int(rng.integers(2**31)))
    train, new = np.isin(y, train_classes), np.isin(y, new_classes)
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    std[std == 0] = 1.0
    Z = ((X - mean) / std).astype(np.float32)
    new_counts = np.unique(y[new], return_counts=True)[1]
    train_counts = np.unique(y[train], return_counts=True)[1]
    n_query = int(min(MAX_QUERY, new_counts.min() - max(shots)))
    meta_query = int(min(MAX_QUERY, train_counts.min() - 1))

    # the same episodes for every method, seeded per data set and K
    episodes = {}
    for k_shot in shots:
        sampler = EpisodeSampler(Z[new], y[new], n_way, k_shot, n_query, classes=new_classes,
                                 random_state=np.random.default_rng([seed, zlib.crc32(name.encode()), k_shot]))
        batch = sampler.sample(n_episodes)
        episodes[k_shot] = tuple(t.numpy() for t in (batch.support_x, batch.support_y, batch.query_x, batch.query_y))

    print(f"\n{name}: {n_classes} classes ({len(train_classes)} meta-train, {len(new_classes)} new), "
          f"{len(y)} of {n_rows_all} rows, {X.shape[1]} features; {n_query} queries per class", flush=True)
    results: dict[tuple[str, int], tuple[float, float]] = {}
    notes = {}
    for algorithm in algorithms:
        t0 = time.perf_counter()
        estimator = FewShotClassifier(algorithm=algorithm, n_way=n_way, k_shot=1, n_query=meta_query,
                                      meta_steps=meta_steps, random_state=seed, device=device, verbose=verbose)
        estimator.meta_fit(Z[train], y[train])
        notes[algorithm] = time.perf_counter() - t0
        for k_shot in shots:
            results[algorithm, k_shot] = _score(estimator, episodes[k_shot])
    for baseline, pipeline in baselines(seed).items():
        t0 = time.perf_counter()
        for k_shot in shots:
            results[baseline, k_shot] = _score(pipeline, episodes[k_shot], fresh=True)
        notes[baseline] = time.perf_counter() - t0

    rows = []
    print(f"  {'method':<10}" + "".join(f"{f'{k}-shot':>17}" for k in shots) + "   seconds", flush=True)
    for method in [*algorithms, *BASELINES]:
        cells = ""
        for k_shot in shots:
            accuracy, half = results[method, k_shot]
            cells += f"{100 * accuracy:10.1f} +- {100 * half:4.1f}"
            rows.append({"dataset": name, "method": method,
                         "kind": "autometa" if method in algorithms else "baseline",
                         "n_way": n_way, "k_shot": k_shot, "n_query": n_query, "n_episodes": n_episodes,
                         "accuracy": accuracy, "ci": half})
        timing = "meta-fit" if method in algorithms else "eval"
        print(f"  {method:<10}{cells}   {notes[method]:5.1f} ({timing})", flush=True)
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    return rows


def _score(model, episodes, fresh: bool = False) -> tuple[float, float]:
    """Mean query accuracy over the episodes and its 95% CI half-width."""
    support_x, support_y, query_x, query_y = episodes
    accuracies = np.empty(len(support_x))
    with warnings.catch_warnings():
        # NearestCentroid estimates a within-class spread it does not use
        # without shrinkage; with one example per class it divides by zero
        # and warns on every fit, though its predictions are well defined
        warnings.filterwarnings("ignore", message=".*within_class_std_dev_.*", category=UserWarning)
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="sklearn.neighbors._nearest_centroid")
        for i in range(len(support_x)):
            fitted = (clone(model) if fresh else model).fit(support_x[i], support_y[i])
            accuracies[i] = np.mean(fitted.predict(query_x[i]) == query_y[i])
    return _mean_ci(accuracies)


def _mean_ci(values: np.ndarray) -> tuple[float, float]:
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(len(values)))


def _average(rows, method, k_shot) -> tuple[float, float, int]:
    """Mean over data sets and its 95% half-width (per-data-set CIs taken as independent)."""
    cells = [r for r in rows if r["method"] == method and r["k_shot"] == k_shot]
    if not cells:
        return float("nan"), float("nan"), 0
    accuracy = float(np.mean([r["accuracy"] for r in cells]))
    half = float(np.sqrt(np.sum([r["ci"] ** 2 for r in cells])) / len(cells))
    return accuracy, half, len(cells)


def _print_average(rows, methods, shots) -> None:
    n = len({r["dataset"] for r in rows})
    print(f"\naverage over {n} data sets (mean of the per-data-set accuracies; +- combines their 95% CIs)")
    print(f"  {'method':<10}" + "".join(f"{f'{k}-shot':>17}" for k in shots))
    for method in methods:
        cells = ""
        for k_shot in shots:
            accuracy, half, _ = _average(rows, method, k_shot)
            cells += f"{100 * accuracy:10.1f} +- {100 * half:4.1f}"
        print(f"  {method:<10}{cells}")


def _print_summary(rows, algorithms, shots) -> None:
    for k_shot in shots:
        best = {}
        for kind, methods in (("autometa", algorithms), ("baseline", BASELINES)):
            scored = [(_average(rows, m, k_shot)[0], m) for m in methods]
            scored = [s for s in scored if not np.isnan(s[0])]
            if scored:
                best[kind] = max(scored)
        if len(best) < 2:
            continue
        (a_acc, a_name), (b_acc, b_name) = best["autometa"], best["baseline"]
        gap = 100 * (a_acc - b_acc)
        verdict = ""
        if k_shot == 1:
            verdict = f"; target >= +5.0 points: {'met' if gap >= 5 else 'not met'}"
        print(f"K={k_shot}: best autometa {a_name} {100 * a_acc:.1f}% vs best baseline {b_name} "
              f"{100 * b_acc:.1f}%: {gap:+.1f} points{verdict}", flush=True)


def _pmlb_dir(data_dir) -> Path:
    from autometa.data.pmlb import _pmlb_dir as resolve

    return resolve(data_dir)
