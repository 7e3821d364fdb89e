"""The default few-shot estimators against the baselines a user tries first, on real tables.

Classification (:func:`run`) reports two groups of data sets separately:

``design``
    every local PMLB classification data set with at least 10 classes (the
    group that shaped the defaults);
``heldout``
    sklearn's digits (``X / 16``) with four class splits (new classes 5-9,
    0-4, odd, even) and every local PMLB classification data set with 6 to
    9 classes; never used to choose anything.

Per data set: classes are subsampled to at most 200 rows; classes with at
least ``max(shots) + 5`` rows (``max(shots) + 2`` when fewer than four
classes have that many) may be new; ``ceil(classes / 2)`` of them become the
new classes, the rest meta-train (digits: the split's five classes).
``FewShotClassifier(random_state=seed)`` is meta-fitted on the meta-training
rows; then N-way K-shot episodes (N = min(5, new classes), K in {1, 5, 10},
up to 15 queries per class) are drawn over the new classes, the same seeded
episodes for every method. The baselines are fitted on each support set
after a StandardScaler: 1-NN, k-NN with k in {1, 3, 5, 7, 9} chosen by
leave-one-out on the support (k = 1 at K = 1), logistic regression, a random
forest of 100 trees, an RBF SVC, HistGradientBoosting and the nearest
centroid. Reported per data set and K: the accuracy of every method, the
gap to the best baseline of that data set (chosen after the fact, the
hardest bar) with its 95% interval over episodes (paired), and a win / tie
/ loss; then the means over data sets against the best single baseline and
against the best-per-data-set bar, and the share of cells more than 2
points below that bar. A PNG of the gaps goes to ``docs/figures/``.

:func:`meta_fit_timing` times the default classifier's ``meta_fit`` on a
10,000 x 50 table with 20 classes. :func:`run_regression` compares the
default ``FewShotRegressor()`` with Ridge, k-NN and HistGradientBoosting
fitted on the support and a global HistGradientBoosting model on all
meta-training rows, on the sinusoids and grouped PMLB regression sets of
:mod:`benchmarks.tabular`.

Baseline accuracies depend only on the episodes, so they may be kept in a
cache folder (``cache_dir``) keyed by data set, episodes and seed.
Everything runs on one thread.
"""

from __future__ import annotations

import pickle
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from autometa._common import describe, mean_ci
from autometa.data.pmlb import load_pmlb, pmlb_index
from autometa.estimators import FewShotClassifier, FewShotRegressor

SHOTS = (1, 5, 10)
MAX_QUERY = 15
MIN_QUERY = 5
MAX_PER_CLASS = 200
DIGITS_SPLITS = {"lo": [5, 6, 7, 8, 9], "hi": [0, 1, 2, 3, 4], "even": [1, 3, 5, 7, 9], "odd": [0, 2, 4, 6, 8]}
BASELINES = ("1-NN", "kNN-loo", "logistic", "forest", "svc", "hgb", "centroid")
FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"


# -- data sets -------------------------------------------------------------------
def _local_classification(data_dir, low, high) -> list[str]:
    from autometa.data.pmlb import _pmlb_dir

    index = pmlb_index(data_dir)
    chosen = index[(index.task == "classification") & (index.n_classes >= low) & (index.n_classes <= high)]
    directory = _pmlb_dir(data_dir)
    return sorted(n for n in chosen.name if (directory / n / f"{n}.tsv.gz").is_file())


def design_datasets(data_dir=None) -> list[str]:
    """Local PMLB classification data sets with at least 10 classes."""
    return _local_classification(data_dir, 10, np.inf)


def heldout_datasets(data_dir=None) -> list[str]:
    """Digits with four class splits, then the local PMLB classification data sets with 6 to 9 classes."""
    return [f"digits:{split}" for split in DIGITS_SPLITS] + _local_classification(data_dir, 6, 9)


def load(name, seed=0, data_dir=None):
    """``(X_meta, y_meta, X_new, y_new)`` of data set ``name`` (see the module docstring)."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if name.startswith("digits:"):
        X, y = load_digits(return_X_y=True)
        X = X / 16.0
        new = np.isin(y, DIGITS_SPLITS[name.split(":")[1]])
        return X[~new], y[~new], X[new], y[new]
    X, y = load_pmlb(name, data_dir=data_dir, download=False)
    X = X.to_numpy(dtype=np.float64)
    y = np.asarray(y)
    labels, counts = np.unique(y, return_counts=True)
    keep = []
    for label in labels[counts >= 2]:
        rows = np.flatnonzero(y == label)
        if len(rows) > MAX_PER_CLASS:
            rows = np.sort(rng.choice(rows, MAX_PER_CLASS, replace=False))
        keep.append(rows)
    keep = np.sort(np.concatenate(keep))
    X, y = X[keep], y[keep]
    labels, counts = np.unique(y, return_counts=True)
    need = max(SHOTS) + MIN_QUERY
    if (counts >= need).sum() < 4:
        need = max(SHOTS) + 2
    eligible = labels[counts >= need]
    n_new = min(len(eligible), len(labels) - len(labels) // 2)
    new = np.isin(y, np.sort(rng.choice(eligible, n_new, replace=False)))
    return X[~new], y[~new], X[new], y[new]


def episodes(X_new, y_new, k_shot, n_episodes, seed, name):
    """``n_episodes`` seeded N-way K-shot episodes ``(support_x, support_y, query_x, query_y)``."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), k_shot])
    classes, counts = np.unique(y_new, return_counts=True)
    n_way = min(5, len(classes))
    n_query = int(min(MAX_QUERY, counts.min() - k_shot))
    out = []
    for _ in range(n_episodes):
        support, query = [], []
        for c in rng.choice(classes, n_way, replace=False):
            rows = rng.permutation(np.flatnonzero(y_new == c))
            support.append(rows[:k_shot])
            query.append(rows[k_shot : k_shot + n_query])
        s, q = np.concatenate(support), np.concatenate(query)
        out.append((X_new[s], y_new[s], X_new[q], y_new[q]))
    return out


# -- baselines ---------------------------------------------------------------------
class KNNLeaveOneOut:
    """k-NN after a StandardScaler, k in {1, 3, 5, 7, 9} chosen by leave-one-out on the support (1 at K = 1)."""

    def fit(self, X, y):
        self.scaler_ = StandardScaler().fit(X)
        Z = self.scaler_.transform(X)
        best, best_k = -1.0, 1
        if np.unique(y, return_counts=True)[1].min() >= 2:
            D = ((Z[:, None] - Z[None]) ** 2).sum(-1)
            np.fill_diagonal(D, np.inf)
            order = np.argsort(D, axis=1, kind="stable")
            for k in (1, 3, 5, 7, 9):
                if k > len(y) - 1:
                    break
                pred = []
                for i in range(len(y)):
                    values, votes = np.unique(y[order[i, :k]], return_counts=True)
                    pred.append(values[votes.argmax()])
                accuracy = np.mean(np.array(pred) == y)
                if accuracy > best + 1e-12:
                    best, best_k = accuracy, k
        self.model_ = KNeighborsClassifier(best_k).fit(Z, y)
        return self

    def predict(self, X):
        return self.model_.predict(self.scaler_.transform(X))


def baselines(seed=0) -> dict:
    """The classification baselines, each after a StandardScaler fitted on the support set."""
    return {
        "1-NN": make_pipeline(StandardScaler(), KNeighborsClassifier(1)),
        "kNN-loo": KNNLeaveOneOut(),
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "forest": make_pipeline(StandardScaler(), RandomForestClassifier(100, random_state=seed, n_jobs=1)),
        "svc": make_pipeline(StandardScaler(), SVC()),
        "hgb": make_pipeline(StandardScaler(), HistGradientBoostingClassifier(random_state=seed)),
        "centroid": make_pipeline(StandardScaler(), NearestCentroid()),
    }


def _accuracies(model, eps) -> np.ndarray:
    """Per-episode accuracies of a fresh copy of ``model`` fitted on each support set."""
    out = np.empty(len(eps))
    for i, (sx, sy, qx, qy) in enumerate(eps):
        m = clone(model) if hasattr(model, "get_params") else type(model)()
        out[i] = np.mean(m.fit(sx, sy).predict(qx) == qy)
    return out


def _meta_fitted_accuracies(model, eps) -> tuple[np.ndarray, float]:
    """Per-episode accuracies of the meta-fitted ``model``, and the fraction of episodes whose ``fit``
    fell back to the raw-feature rule (``support_check_``)."""
    acc, fell_back = np.empty(len(eps)), 0
    for i, (sx, sy, qx, qy) in enumerate(eps):
        model.fit(sx, sy)
        acc[i] = np.mean(model.predict(qx) == qy)
        fell_back += bool((getattr(model, "support_check_", None) or {}).get("switched"))
    return acc, fell_back / len(eps)


def baseline_accuracies(name, eps_by_k, n_episodes, seed, cache_dir=None) -> dict:
    """{(baseline, K): per-episode accuracies}, read from or written to ``cache_dir`` when given."""
    path = Path(cache_dir) / f"{name.replace(':', '_')}_{n_episodes}_{seed}.pkl" if cache_dir else None
    if path is not None and path.exists():
        return pickle.loads(path.read_bytes())
    res = {(b, k): _accuracies(m, eps_by_k[k]) for k in eps_by_k for b, m in baselines(seed).items()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(res))
    return res


# -- classification ------------------------------------------------------------------
def run(group="heldout", n_episodes=200, seed=0, datasets=None, data_dir=None, cache_dir=None,
        figure=True, estimator=None) -> dict:
    """Benchmark ``estimator`` (default: ``FewShotClassifier(random_state=seed)``) on ``group``
    ("design" or "heldout"); returns ``{"results": per data set, "summary": per K}``."""
    import torch
    from threadpoolctl import threadpool_limits

    names = datasets or (design_datasets(data_dir) if group == "design" else heldout_datasets(data_dir))
    print(f"== few-shot tabular classification, {group} group: {len(names)} data sets, {n_episodes} episodes "
          f"per (data set, K), seed {seed}\n{describe()}\ndata sets: {', '.join(names)}", flush=True)
    results = {}
    torch.set_num_threads(1)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            started = time.perf_counter()
            Xm, ym, Xn, yn = load(name, seed, data_dir)
            eps = {k: episodes(Xn, yn, k, n_episodes, seed, name) for k in SHOTS}
            base = baseline_accuracies(name, eps, n_episodes, seed, cache_dir)
            t0 = time.perf_counter()
            model = (FewShotClassifier(random_state=seed) if estimator is None else clone(estimator)).meta_fit(Xm, ym)
            meta_time = time.perf_counter() - t0
            ours, fell_back = {}, {}
            for k in SHOTS:
                ours[k], fell_back[k] = _meta_fitted_accuracies(model, eps[k])
            results[name] = {"ours": ours, "fell_back": fell_back, "base": base, "choices": getattr(model, "choices_", {}),
                             "meta_fit_s": meta_time,
                             "shape": (len(np.unique(ym)), len(ym), len(np.unique(yn)), len(yn))}
            _print_dataset(name, results[name], time.perf_counter() - started)
    summary = summarise(results, group)
    if figure:
        plot_gaps(results, group, FIGURES / f"fewshot_tabular_{group}.png")
    return {"results": results, "summary": summary}


def _best_baseline(base, k):
    return max(BASELINES, key=lambda b: base[b, k].mean())


def _print_dataset(name, r, seconds):
    m, n, mn, nn = r["shape"]
    parts = []
    for k in SHOTS:
        best = _best_baseline(r["base"], k)
        gap, half = mean_ci(r["ours"][k] - r["base"][best, k])
        parts.append(f"K{k}: {100 * r['ours'][k].mean():5.1f} vs {best} {100 * r['base'][best, k].mean():5.1f} "
                     f"({100 * gap:+5.1f} ± {100 * half:3.1f} {_verdict(gap, half)})")
    choices = " ".join(f"{k}:{rep}/{head}" for k, (rep, head) in r["choices"].items())
    fell_back = " ".join(f"K{k} {100 * f:.0f}%" for k, f in r.get("fell_back", {}).items() if k > 1)
    print(f"{name:22s} [{m} meta classes/{n} rows, {mn} new/{nn}] " + " | ".join(parts)
          + f" | meta_fit {r['meta_fit_s']:.1f}s, chose {choices}, fell back {fell_back} ({seconds:.0f}s)",
          flush=True)


def _verdict(gap, half):
    return "W" if gap - half > 0 else "L" if gap + half < 0 else "T"


def summarise(results, group) -> dict:
    """Print and return the group's means, W/T/L and cells more than 2 points below the best baseline."""
    out = {}
    print(f"== summary, {group} group ({len(results)} data sets)")
    for k in SHOTS:
        ours = np.mean([r["ours"][k].mean() for r in results.values()])
        per = {b: np.mean([r["base"][b, k].mean() for r in results.values()]) for b in BASELINES}
        single = max(per, key=per.get)
        after = np.mean([r["base"][_best_baseline(r["base"], k), k].mean() for r in results.values()])
        wtl = {"W": 0, "T": 0, "L": 0}
        below = 0
        for r in results.values():
            d = r["ours"][k] - r["base"][_best_baseline(r["base"], k), k]
            wtl[_verdict(*mean_ci(d))] += 1
            below += d.mean() < -0.02
        out[k] = {"ours": ours, "baselines": per, "best_single": single, "best_after_fact": after,
                  "wtl": wtl, "below_2pt": below, "cells": len(results)}
        print(f"K={k:2d}: default {100 * ours:5.1f} | best single baseline {single} {100 * per[single]:5.1f} "
              f"({100 * (ours - per[single]):+4.1f}) | best per data set {100 * after:5.1f} "
              f"({100 * (ours - after):+4.1f}) | W/T/L {wtl['W']}/{wtl['T']}/{wtl['L']} | "
              f">2 points below: {below}/{len(results)}")
        print("       " + " ".join(f"{b} {100 * v:.1f}" for b, v in per.items()), flush=True)
    cells = sum(v["below_2pt"] for v in out.values())
    total = sum(v["cells"] for v in out.values())
    print(f"cells more than 2 points below the best baseline: {cells}/{total} ({100 * cells / max(total, 1):.0f}%)")
    return out


def plot_gaps(results, group, path):
    """Bar chart of (default - best baseline per data set) per data set and K, with 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names) + 2), 4))
    width = 0.27
    for j, k in enumerate(SHOTS):
        gaps, halves = zip(*(mean_ci(results[n]["ours"][k] - results[n]["base"][_best_baseline(results[n]["base"], k), k])
                             for n in names))
        ax.bar(np.arange(len(names)) + (j - 1) * width, 100 * np.array(gaps), width,
               yerr=100 * np.array(halves), label=f"K={k}", capsize=2)
    ax.axhline(0, color="black", lw=0.8)
    ax.axhline(-2, color="grey", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("accuracy gap to best baseline (points)")
    ax.set_title(f"FewShotClassifier() vs best baseline per data set, {group} group")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"figure: {path}")


# -- meta_fit timing --------------------------------------------------------------
def meta_fit_timing(seed=0) -> float:
    """Seconds of ``FewShotClassifier(random_state=seed).meta_fit`` on a 10,000 x 50 table with 20 classes."""
    import torch
    from threadpoolctl import threadpool_limits

    X, y = make_classification(n_samples=10_000, n_features=50, n_informative=20, n_classes=20,
                               n_clusters_per_class=1, random_state=seed)
    torch.set_num_threads(1)
    with threadpool_limits(1):
        started = time.perf_counter()
        model = FewShotClassifier(random_state=seed).meta_fit(X, y)
        seconds = time.perf_counter() - started
    print(f"meta_fit of FewShotClassifier() on 10,000 x 50, 20 classes: {seconds:.1f} s on 1 thread "
          f"(target <= 60 s on 2 cores); chose {model.choices_}\n{describe()}", flush=True)
    return seconds


# -- regression ----------------------------------------------------------------------
def run_regression(n_tasks=200, shots=(5, 10), seed=0, datasets=None, data_dir=None) -> dict:
    """Default FewShotRegressor vs Ridge / k-NN / HGB on the support and a global HGB; mean squared errors."""
    import torch
    from threadpoolctl import threadpool_limits

    from benchmarks import tabular

    names = datasets or tabular.default_regression_datasets(data_dir)
    print(f"== few-shot regression: {', '.join(names)}; {n_tasks} tasks per K, seed {seed}\n{describe()}")
    out = {}
    torch.set_num_threads(1)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            started = time.perf_counter()
            if name == tabular.SINUSOID:
                tables = tabular._sinusoid_tables(shots, n_tasks, seed)
            else:
                tables = tabular._grouped_tables(name, shots, n_tasks, 20, 5000, seed, data_dir)
            if tables is None:
                continue
            X, y, groups, eps = tables[:4]
            global_model = HistGradientBoostingRegressor(random_state=seed).fit(X, y)
            t0 = time.perf_counter()
            model = FewShotRegressor(random_state=seed).meta_fit(X, y, groups)
            meta_time = time.perf_counter() - t0
            res = {}
            for k in shots:
                sx, sy, qx, qy = eps[k]
                support_only = {"ridge": make_pipeline(StandardScaler(), Ridge(1.0)),
                                "knn": make_pipeline(StandardScaler(), KNeighborsRegressor(min(3, k))),
                                "hgb": HistGradientBoostingRegressor(random_state=seed)}
                errors = {m: [] for m in ("default", "global", *support_only)}
                for i in range(len(sx)):
                    errors["default"].append(np.mean((model.fit(sx[i], sy[i]).predict(qx[i]) - qy[i]) ** 2))
                    errors["global"].append(np.mean((global_model.predict(qx[i]) - qy[i]) ** 2))
                    for b, m in support_only.items():
                        errors[b].append(np.mean((clone(m).fit(sx[i], sy[i]).predict(qx[i]) - qy[i]) ** 2))
                res[k] = {m: np.array(v) for m, v in errors.items()}
            out[name] = {"errors": res, "choices": getattr(model, "choices_", {}), "meta_fit_s": meta_time}
            line = f"{name:14s} meta_fit {meta_time:5.1f}s chose {model.choices_}"
            for k in shots:
                e = res[k]
                best = min((m for m in e if m != "default"), key=lambda m: e[m].mean())
                gap, half = mean_ci(e["default"] - e[best])
                line += (f" | K{k}: " + " ".join(f"{m} {e[m].mean():.3f}" for m in e)
                         + f" (default - {best} {gap:+.3f} ± {half:.3f})")
            print(line + f" ({time.perf_counter() - started:.0f}s)", flush=True)
    return out
