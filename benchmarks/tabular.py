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

:func:`run_regression` is the regression counterpart: MAML and Reptile
:class:`FewShotRegressor` on the sinusoid family and on PMLB regression data
sets split into groups (one task per group) vs ``Ridge`` and
``KNeighborsRegressor`` fitted on the same K points.

Everything runs on one thread (torch and the BLAS/OpenMP pools): the
networks and the support sets are tiny, so more threads only add overhead.
"""

from __future__ import annotations

import time
import warnings
import zlib
from contextlib import contextmanager
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

from autometa._common import describe, mean_ci
from autometa.data.pmlb import load_pmlb, pmlb_index
from autometa.estimators import FewShotClassifier, FewShotRegressor
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
        device: str = "cpu", verbose: bool = False, backbone: str = "mlp") -> list[dict]:
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
          f"meta-batch 8) per algorithm; backbone of the metric learners: {backbone}; one thread; seed {seed}")
    print(f"machine: {describe(device, packages=('autometa', 'torch', 'numpy', 'scikit-learn'))}")
    print(f"data sets: {', '.join(names)}")
    methods = [*algorithms, *BASELINES]
    rows: list[dict] = []
    start = time.perf_counter()
    with _one_thread():
        for name in names:
            rows += _run_dataset(name, algorithms, n_way, shots, n_episodes, meta_steps, seed, data_dir,
                                 max_per_class, device, verbose, backbone)
    _print_average(rows, methods, shots)
    _print_summary(rows, algorithms, shots)
    print(f"total {time.perf_counter() - start:.0f} s", flush=True)
    return rows


def _run_dataset(name, algorithms, n_way, shots, n_episodes, meta_steps, seed, data_dir, max_per_class,
                 device, verbose, backbone="mlp") -> list[dict]:
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
                                      meta_steps=meta_steps, random_state=seed, device=device, verbose=verbose,
                                      backbone=backbone if algorithm in ("protonet", "matching") else "mlp")
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
    return mean_ci(accuracies)


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


@contextmanager
def _one_thread():
    """torch, BLAS and OpenMP on one thread: the timings then compare methods, not thread pools."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


def _pmlb_dir(data_dir) -> Path:
    from autometa.data.pmlb import _pmlb_dir as resolve

    return resolve(data_dir)


# -- regression ---------------------------------------------------------------

REGRESSION_ALGORITHMS = ("maml", "reptile")
REGRESSION_BASELINES = ("ridge", "knn")
SINUSOID = "sinusoid"
# at least 1,000 rows each, real and synthetic, 8 to 16 features
DEFAULT_REGRESSION_DATASETS = ("1028_SWD", "218_house_8L", "564_fried", "574_house_16H", "344_mv")
SINUSOID_TRAIN_TASKS = 2000
SINUSOID_POINTS = 40
N_QUERY_SINUSOID = 100
MAX_QUERY_REGRESSION = 50
REGRESSION_NEW_FRACTION = 0.3


def regression_baselines(k_shot: int) -> dict:
    """The scikit-learn regression baselines for K support points, each behind a StandardScaler."""
    from sklearn.linear_model import Ridge
    from sklearn.neighbors import KNeighborsRegressor

    return {
        "ridge": make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
        "knn": make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=min(3, k_shot))),
    }


def default_regression_datasets(data_dir=None) -> list[str]:
    """The sinusoids, then those of :data:`DEFAULT_REGRESSION_DATASETS` in the local PMLB cache."""
    directory = _pmlb_dir(data_dir)
    return [SINUSOID, *(n for n in DEFAULT_REGRESSION_DATASETS if (directory / n / f"{n}.tsv.gz").is_file())]


def run_regression(datasets=None, algorithms=REGRESSION_ALGORITHMS, shots=(5, 10), n_tasks: int = 300,
                   meta_steps: int = 2000, n_groups: int = 20, max_rows: int = 5000, seed: int = 0,
                   data_dir=None, device: str = "cpu", verbose: bool = False) -> list[dict]:
    """Few-shot regression: MAML and Reptile vs Ridge and k-nearest neighbours; print the tables.

    Scores :class:`FewShotRegressor` (MAML, Reptile) next to scikit-learn
    baselines fitted on the same K support points of new tasks (``Ridge`` and
    ``KNeighborsRegressor(n_neighbors=min(3, K))``, each behind a
    ``StandardScaler`` fitted on the support points), on two kinds of task:

    - ``"sinusoid"``: the MAML sinusoids (:class:`autometa.tasks.SinusoidTasks`,
      amplitude in [0.1, 5], phase in [0, pi], x in [-5, 5]). Meta-training data
      is a table of ``SINUSOID_TRAIN_TASKS`` tasks of ``SINUSOID_POINTS`` points
      each, one group per task; new tasks are fresh draws with ``N_QUERY_SINUSOID``
      query points. The MSE is in the targets' own units (as in the MAML paper).
    - a PMLB regression data set split into groups, one task per group: rows are
      subsampled to at most ``max_rows``, then clustered with k-means (``n_groups``
      clusters) on the features standardised over all rows, so that each task is
      a region of input space: the same target function, but a different local
      relation between features and target in each region. The clustering sees
      the features only, never the target. Clusters with fewer than
      ``max(shots) + MIN_QUERY`` rows are dropped; ``REGRESSION_NEW_FRACTION`` of
      the rest (at least one) are held out as new tasks, the others are the
      meta-training tasks. Features and target are then standardised with the
      mean and standard deviation of the meta-training groups' rows only, so the
      MSE is in units of the meta-training target variance (an MSE of 1 is as bad
      as predicting the meta-training mean on a data set whose groups look like
      the meta-training ones). New-task episodes draw a group uniformly and
      ``K`` support plus ``min(MAX_QUERY_REGRESSION, smallest new group - max K)``
      query rows from it without replacement.

    One meta-learner per data set, algorithm and K (meta-trained on K-shot tasks,
    as in MAML). The episodes are seeded per data set and K and are the same for
    every method. Lower MSE is better; the summary compares the best autometa
    algorithm with the best baseline by their mean MSE over the data sets.

    ``datasets``: names among ``"sinusoid"`` and local PMLB regression data
    sets (default: :func:`default_regression_datasets`). Each row:
    ``dataset``, ``method``, ``kind`` (``"autometa"`` or ``"baseline"``),
    ``k_shot``, ``n_query``, ``n_tasks``, ``mse`` (mean query MSE over the
    new tasks) and ``ci`` (its 95% half-width).
    """
    shots = tuple(int(k) for k in shots)
    algorithms = tuple(algorithms)
    names = list(datasets) if datasets else default_regression_datasets(data_dir)
    print(f"Few-shot regression: K = {'/'.join(map(str, shots))} support points of new tasks; query MSE over "
          f"{n_tasks} new tasks per data set and K (the same tasks for every method); {meta_steps} meta-steps "
          f"(K-shot tasks, meta-batch 8) per algorithm and K; sinusoids: {SINUSOID_TRAIN_TASKS} meta-training "
          f"tasks of {SINUSOID_POINTS} points, {N_QUERY_SINUSOID} queries, MSE in target units; PMLB: at most "
          f"{max_rows} rows, k-means into {n_groups} groups on the features (one task per group), "
          f"{REGRESSION_NEW_FRACTION:.0%} of the groups new, X and y standardised with the meta-training "
          f"groups' statistics (MSE in units of their target variance); baselines behind a StandardScaler "
          f"fitted on the support points; one thread; seed {seed}")
    print(f"machine: {describe(device, packages=('autometa', 'torch', 'numpy', 'scikit-learn'))}")
    print(f"data sets: {', '.join(names)}")
    methods = [*algorithms, *REGRESSION_BASELINES]
    rows: list[dict] = []
    start = time.perf_counter()
    with _one_thread():
        for name in names:
            if name == SINUSOID:
                tables = _sinusoid_tables(shots, n_tasks, seed)
            else:
                tables = _grouped_tables(name, shots, n_tasks, n_groups, max_rows, seed, data_dir)
            if tables is not None:
                rows += _run_regression_dataset(name, tables, algorithms, shots, meta_steps, seed, device,
                                                verbose)
    _print_regression_average(rows, methods, shots)
    _print_regression_summary(rows, algorithms, shots)
    print(f"total {time.perf_counter() - start:.0f} s", flush=True)
    return rows


def _sinusoid_tables(shots, n_tasks, seed):
    """Meta-training table (X, y, groups) and the new tasks per K of the sinusoid family."""
    from autometa.tasks.regression import SinusoidTasks

    half = SINUSOID_POINTS // 2
    batch = SinusoidTasks(k_shot=half, n_query=SINUSOID_POINTS - half,
                          random_state=np.random.default_rng([seed, zlib.crc32(SINUSOID.encode())])
                          ).sample(SINUSOID_TRAIN_TASKS)
    X = torch.cat([batch.support_x, batch.query_x], dim=1).reshape(-1, 1).numpy()
    y = torch.cat([batch.support_y, batch.query_y], dim=1).reshape(-1).numpy()
    groups = np.repeat(np.arange(SINUSOID_TRAIN_TASKS), SINUSOID_POINTS)
    episodes = {}
    for k_shot in shots:
        tasks = SinusoidTasks(k_shot=k_shot, n_query=N_QUERY_SINUSOID,
                              random_state=np.random.default_rng([seed, zlib.crc32(SINUSOID.encode()), k_shot, 1]))
        episodes[k_shot] = _as_arrays(tasks.sample(n_tasks))
    description = (f"{SINUSOID_TRAIN_TASKS} meta-training tasks of {SINUSOID_POINTS} points; "
                   f"{N_QUERY_SINUSOID} queries per new task")
    return X, y, groups, episodes, N_QUERY_SINUSOID, description


def _as_arrays(batch) -> tuple:
    return tuple(t.numpy() for t in (batch.support_x, batch.support_y, batch.query_x, batch.query_y))


def _grouped_tables(name, shots, n_tasks, n_groups, max_rows, seed, data_dir):
    """A PMLB regression data set clustered into groups: meta-training table and new-group tasks per K."""
    from sklearn.cluster import KMeans

    from autometa.tasks.regression import GroupedRegressionTasks

    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    X, y = load_pmlb(name, data_dir=data_dir, download=False)
    X = X.to_numpy(dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n_rows_all = len(y)
    if len(y) > max_rows:
        keep = np.sort(rng.choice(len(y), max_rows, replace=False))
        X, y = X[keep], y[keep]
    spread = X.std(axis=0)
    spread[spread == 0] = 1.0
    kmeans = KMeans(n_clusters=n_groups, n_init=3, random_state=int(rng.integers(2**31)))
    groups = kmeans.fit_predict((X - X.mean(axis=0)) / spread)
    labels, counts = np.unique(groups, return_counts=True)
    kept = labels[counts >= max(shots) + MIN_QUERY]
    if len(kept) < 2:
        print(f"\n{name}: skipped: {len(kept)} of {n_groups} groups have >= {max(shots) + MIN_QUERY} rows; "
              f"needs 2 (one to meta-train on, one new)", flush=True)
        return None
    n_new = min(len(kept) - 1, max(1, round(REGRESSION_NEW_FRACTION * len(kept))))
    new_groups = np.sort(rng.choice(kept, n_new, replace=False))
    train_groups = np.setdiff1d(kept, new_groups)
    train, new = np.isin(groups, train_groups), np.isin(groups, new_groups)
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    std[std == 0] = 1.0
    y_mean, y_std = y[train].mean(), y[train].std()
    y_std = y_std if y_std > 0 else 1.0
    Z = ((X - mean) / std).astype(np.float32)
    t = ((y - y_mean) / y_std).astype(np.float32)
    new_counts = np.unique(groups[new], return_counts=True)[1]
    n_query = int(min(MAX_QUERY_REGRESSION, new_counts.min() - max(shots)))
    episodes = {}
    for k_shot in shots:
        tasks = GroupedRegressionTasks(Z[new], t[new], groups[new], k_shot, n_query,
                                       random_state=np.random.default_rng([seed, zlib.crc32(name.encode()), k_shot]))
        episodes[k_shot] = _as_arrays(tasks.sample(n_tasks))
    train_counts = np.unique(groups[train], return_counts=True)[1]
    kept_counts = counts[np.isin(labels, kept)]
    description = (f"{len(y)} of {n_rows_all} rows, {X.shape[1]} features; {len(kept)} groups of "
                   f"{kept_counts.min()}-{kept_counts.max()} rows ({len(train_groups)} meta-train with "
                   f"{train_counts.min()}-{train_counts.max()} rows, {n_new} new with "
                   f"{new_counts.min()}-{new_counts.max()} rows); {n_query} queries per new task")
    if len(kept) < n_groups:
        description += f"; {n_groups - len(kept)} groups under {max(shots) + MIN_QUERY} rows dropped"
    return Z[train], t[train], groups[train], episodes, n_query, description


def _run_regression_dataset(name, tables, algorithms, shots, meta_steps, seed, device, verbose) -> list[dict]:
    started = time.perf_counter()
    X, y, groups, episodes, n_query, description = tables
    print(f"\n{name}: {description}", flush=True)
    n_tasks = len(next(iter(episodes.values()))[0])
    smallest = int(np.unique(groups, return_counts=True)[1].min())
    results: dict[tuple[str, int], tuple[float, float]] = {}
    notes = {}
    for algorithm in algorithms:
        t0 = time.perf_counter()
        for k_shot in shots:
            estimator = FewShotRegressor(algorithm=algorithm, k_shot=k_shot,
                                         n_query=int(min(MAX_QUERY_REGRESSION, smallest - k_shot)),
                                         meta_steps=meta_steps, random_state=seed, device=device, verbose=verbose)
            estimator.meta_fit(X, y, groups)
            results[algorithm, k_shot] = _score_regression(estimator, episodes[k_shot])
        notes[algorithm] = time.perf_counter() - t0
    notes.update(dict.fromkeys(REGRESSION_BASELINES, 0.0))
    for k_shot in shots:
        for baseline, pipeline in regression_baselines(k_shot).items():
            t0 = time.perf_counter()
            results[baseline, k_shot] = _score_regression(pipeline, episodes[k_shot], fresh=True)
            notes[baseline] += time.perf_counter() - t0

    rows = []
    print(f"  {'method':<10}" + "".join(f"{f'{k}-shot MSE':>19}" for k in shots) + "   seconds", flush=True)
    for method in [*algorithms, *REGRESSION_BASELINES]:
        cells = ""
        for k_shot in shots:
            mse, half = results[method, k_shot]
            cells += f"{mse:11.3f} +- {half:5.3f}"
            rows.append({"dataset": name, "method": method,
                         "kind": "autometa" if method in algorithms else "baseline",
                         "k_shot": k_shot, "n_query": n_query, "n_tasks": n_tasks, "mse": mse, "ci": half})
        timing = "meta-fit + eval" if method in algorithms else "eval"
        print(f"  {method:<10}{cells}   {notes[method]:5.1f} ({timing})", flush=True)
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    return rows


def _score_regression(model, episodes, fresh: bool = False) -> tuple[float, float]:
    """Mean query MSE over the tasks and its 95% CI half-width."""
    support_x, support_y, query_x, query_y = episodes
    errors = np.empty(len(support_x))
    for i in range(len(support_x)):
        fitted = (clone(model) if fresh else model).fit(support_x[i], support_y[i])
        errors[i] = np.mean((np.asarray(fitted.predict(query_x[i]), dtype=np.float64) - query_y[i]) ** 2)
    return mean_ci(errors)


def _regression_average(rows, method, k_shot, pmlb: bool) -> tuple[float, float, int]:
    cells = [r for r in rows if r["method"] == method and r["k_shot"] == k_shot
             and (r["dataset"] != SINUSOID) == pmlb]
    if not cells:
        return float("nan"), float("nan"), 0
    mse = float(np.mean([r["mse"] for r in cells]))
    half = float(np.sqrt(np.sum([r["ci"] ** 2 for r in cells])) / len(cells))
    return mse, half, len(cells)


def _print_regression_average(rows, methods, shots) -> None:
    n = len({r["dataset"] for r in rows if r["dataset"] != SINUSOID})
    if n == 0:
        return
    print(f"\naverage over {n} PMLB data sets (mean of the per-data-set MSEs, in units of the meta-training "
          f"target variance; +- combines their 95% CIs)")
    print(f"  {'method':<10}" + "".join(f"{f'{k}-shot MSE':>19}" for k in shots))
    for method in methods:
        cells = ""
        for k_shot in shots:
            mse, half, _ = _regression_average(rows, method, k_shot, pmlb=True)
            cells += f"{mse:11.3f} +- {half:5.3f}"
        print(f"  {method:<10}{cells}")


def _print_regression_summary(rows, algorithms, shots) -> None:
    for pmlb, label in ((False, "sinusoid"), (True, "PMLB average")):
        for k_shot in shots:
            best = {}
            for kind, methods in (("autometa", algorithms), ("baseline", REGRESSION_BASELINES)):
                scored = [(_regression_average(rows, m, k_shot, pmlb)[0], m) for m in methods]
                scored = [s for s in scored if not np.isnan(s[0])]
                if scored:
                    best[kind] = min(scored)
            if len(best) < 2:
                continue
            (a_mse, a_name), (b_mse, b_name) = best["autometa"], best["baseline"]
            change = 100 * (a_mse - b_mse) / b_mse if b_mse > 0 else float("nan")
            print(f"{label} K={k_shot}: best autometa {a_name} MSE {a_mse:.3f} vs best baseline {b_name} "
                  f"{b_mse:.3f}: {change:+.0f}% ({'autometa lower' if a_mse < b_mse else 'baseline lower'})",
                  flush=True)
