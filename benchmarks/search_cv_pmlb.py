"""``MetaSearchCV`` against the tuners a scikit-learn user reaches for, on held-out PMLB data sets.

For each target data set and seed, the data set gets the outer split of
:mod:`benchmarks.hpo_pmlb` (stratified 70% / 30%, seeded by the seed, each
part subsampled to at most ``max_rows`` rows; labels coded ``0 .. K-1`` as
XGBoost needs). Every contender tunes on the training part only, its final
model is refit there, and what it scores on the test part (**balanced
accuracy**) is recorded with the number of model fits and the wall and CPU
seconds it took. The model is the search space's estimator behind the space's
preprocessing (``Pipeline([("preprocess", ...), ("model", ...)])``), one
thread, seeded by the seed.

Contenders
----------
``default``
    The untuned estimator (the library's defaults): 1 fit.
``meta@N``
    ``MetaSearchCV(model, n_trials=N, cv=cv, scoring="balanced_accuracy")``
    warm-started from the space's pretrained knowledge base **without the
    target and its near-duplicates** (:func:`benchmarks.hpo_pmlb.near_duplicates`):
    ``N * cv + 1`` fits.
``optuna@N``
    ``optuna_integration.OptunaSearchCV`` (TPE) over the same distributions,
    folds and scoring: ``N * cv + 1`` fits.
``lgbm-tuner`` (LightGBM only)
    ``optuna_integration.lightgbm.LightGBMTunerCV`` with its default budget
    (stepwise: feature fraction, leaves, bagging, regularisation, child
    samples), ``cv`` stratified folds, log loss, 1,000 rounds with early
    stopping after 50; the best parameters are refit on the training part
    for the best cross-validated number of rounds. Fits: trials * cv + 1.

The targets are :func:`benchmarks.hpo_pmlb.one_per_family`'s (one per
family, spread over the row counts), none of which (nor their
near-duplicates) the warm start sees: held out by family.

Results are appended to ``cache`` (JSON lines) as they finish, so a killed
run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from autometa._common import describe, mean_ci
from benchmarks.hpo_pmlb import GROUPS, group_datasets
from benchmarks.run_cache import append_run, read_runs

BASE_CONTENDERS = ("default", "meta@10", "optuna@10", "optuna@50")
TIE = 1e-4
DEFAULT_WORSE = 0.01  # "worse than the untuned default by more than 1 point"


def _model(space_name: str, seed: int):
    if space_name == "lightgbm":
        import lightgbm

        return lightgbm.LGBMClassifier(n_jobs=1, verbosity=-1, random_state=seed)
    if space_name == "xgboost":
        import xgboost

        return xgboost.XGBClassifier(n_jobs=1, tree_method="hist", verbosity=0, random_state=seed)
    if space_name == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(random_state=seed)
    raise ValueError(f"search-cv benchmarks lightgbm, xgboost or hist_gradient_boosting, not {space_name!r}")


def _pipeline(space, X, seed: int):
    from sklearn.pipeline import Pipeline

    from autometa.hpo.spaces import make_preprocessor

    return Pipeline([("preprocess", make_preprocessor(X, space.categorical, space.impute)),
                     ("model", _model(space.name, seed))])


def _knowledge_base(space_name: str, target: str, index):
    from autometa.hpo.knowledge_base import KnowledgeBase
    from autometa.hpo.pretrained import load_pretrained
    from benchmarks.hpo_pmlb import leave_out

    tasks, excluded = leave_out(load_pretrained(space_name), space_name, target, index)
    return KnowledgeBase(tasks), excluded


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _run_contender(name: str, space, target: str, split, seed: int, cv: int, index) -> dict[str, Any]:
    import warnings

    import optuna
    from sklearn.metrics import balanced_accuracy_score

    X_train, y_train, X_test, y_test = split
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")  # e.g. OptunaSearchCV's terminator
    extra: dict[str, Any] = {}
    if name == "default":
        model, wall, cpu = _timed(lambda: _pipeline(space, X_train, seed).fit(X_train, y_train))
        predict, fits = model.predict, 1
    elif name.startswith("meta@"):
        from autometa.hpo.search_cv import MetaSearchCV

        n_trials = int(name.split("@")[1])
        kb, excluded = _knowledge_base(space.name, target, index)
        search = MetaSearchCV(_pipeline(space, X_train, seed), n_trials=n_trials, cv=cv, scoring="balanced_accuracy",
                              random_state=seed, knowledge_base=kb)
        search, wall, cpu = _timed(lambda: search.fit(X_train, y_train))
        confirmed = search.confirm_scores_ is not None
        predict, fits = search.predict, n_trials * cv + 1 + (2 * search.n_splits_ if confirmed else 0)
        extra = {"cv_score": search.best_score_, "left_out": excluded,
                 **_against_default(search, X_train, y_train, X_test, y_test)}
    elif name.startswith("optuna@"):
        from optuna_integration import OptunaSearchCV

        from autometa.hpo.search_cv import _space_distributions

        n_trials = int(name.split("@")[1])
        search = OptunaSearchCV(_pipeline(space, X_train, seed), _space_distributions(space, "model__"),
                                n_trials=n_trials, cv=cv, scoring="balanced_accuracy", random_state=seed,
                                error_score=np.nan)
        search, wall, cpu = _timed(lambda: search.fit(X_train, y_train))
        predict, fits = search.predict, n_trials * cv + 1
        extra = {"cv_score": search.best_score_}
    elif name == "lgbm-tuner":
        (predict, fits), wall, cpu = _timed(lambda: _lightgbm_tuner(space, X_train, y_train, seed, cv))
    else:
        raise ValueError(f"unknown contender {name!r}")
    score = float(balanced_accuracy_score(y_test, predict(X_test)))
    return {"dataset": target, "seed": seed, "contender": name, "test": score, "fits": fits, "wall_s": wall,
            "cpu_s": cpu, **extra}


def _against_default(search, X_train, y_train, X_test, y_test) -> dict[str, Any]:
    """How the search's incumbent (the sampler's choice among the trials) and the default (``cv_results_`` row 0)
    compared: their fold scores, which of the two ``search`` kept, and the incumbent's test score (refit on the
    training part when the default was kept), so that a rule for keeping the default can be judged afterwards
    on the same runs; ``confirm``: the new folds' scores of ``confirm_incumbent`` (None when it did not run)."""
    from sklearn.base import clone
    from sklearn.metrics import balanced_accuracy_score

    row = search.incumbent_index_
    results = search.cv_results_
    folds = [[float(results[f"split{k}_test_score"][i]) for k in range(search.n_splits_)] for i in (0, row)]
    kept = "default" if search.best_index_ == 0 else "incumbent"  # best_index_ is 0 or incumbent_index_
    if kept == "incumbent":
        test_incumbent = None  # the record's own test score
    else:
        model = clone(search.estimator).set_params(**results["params"][row]).fit(X_train, y_train)
        test_incumbent = float(balanced_accuracy_score(y_test, model.predict(X_test)))
    confirm = search.confirm_scores_
    if confirm is not None:
        confirm = {name: [float(v) for v in values] for name, values in confirm.items()}
    return {"folds_default": folds[0], "folds_incumbent": folds[1], "kept": kept, "test_incumbent": test_incumbent,
            "confirm": confirm}


def _lightgbm_tuner(space, X_train, y_train, seed: int, cv: int):
    import lightgbm
    from optuna_integration.lightgbm import LightGBMTunerCV
    from sklearn.base import clone

    preprocess = clone(_pipeline(space, X_train, seed).named_steps["preprocess"]).fit(X_train)
    features = np.asarray(preprocess.transform(X_train), dtype=float)
    n_classes = int(np.max(y_train)) + 1
    params = {"verbosity": -1, "num_threads": 1, "seed": seed, "deterministic": True}
    if n_classes > 2:
        params.update(objective="multiclass", num_class=n_classes, metric="multi_logloss")
    else:
        params.update(objective="binary", metric="binary_logloss")
    tuner = LightGBMTunerCV(params, lightgbm.Dataset(features, y_train), num_boost_round=1000, nfold=cv,
                            stratified=True, seed=seed, optuna_seed=seed, return_cvbooster=True,
                            callbacks=[lightgbm.early_stopping(50, verbose=False)], show_progress_bar=False)
    tuner.run()
    rounds = max(int(tuner.get_best_booster().best_iteration), 1)
    booster = lightgbm.train({**params, **tuner.best_params}, lightgbm.Dataset(features, y_train),
                             num_boost_round=rounds)

    def predict(X):
        proba = booster.predict(np.asarray(preprocess.transform(X), dtype=float))
        return (proba > 0.5).astype(int) if proba.ndim == 1 else proba.argmax(axis=1)

    return predict, len(tuner.study.trials) * cv + 1


def _load_split(target: str, data_dir, space, max_rows, cv: int, seed: int):
    from sklearn.preprocessing import LabelEncoder

    from benchmarks.hpo_pmlb import load_split

    X_train, y_train, X_test, y_test = load_split(target, data_dir, space, max_rows, cv, seed)
    codes = LabelEncoder().fit(np.concatenate([y_train, y_test]))
    return X_train, codes.transform(y_train), X_test, codes.transform(y_test)


def run(
    estimator: str = "lightgbm",
    data_dir: str | os.PathLike | None = None,
    datasets: Sequence[str] | None = None,
    n_datasets: int = 30,
    group: str = "design",
    n_seeds: int = 1,
    contenders: Sequence[str] | None = None,
    max_rows: int | None = 1000,
    cv: int = 5,
    cache: str | os.PathLike | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Run every contender on every (data set, seed) and print the report (module docstring).

    Returns ``{"runs": [...], "report": [lines], ...}``; ``cache`` (JSON lines) keeps
    finished runs, and a rerun with the same file skips them. Without ``datasets``,
    ``group`` picks the targets as the real-fit HPO benchmark does: ``"design"``,
    ``n_datasets`` family representatives (group A), or ``"held-out"``, every
    other one (group B).
    """
    from autometa.data.pmlb import pmlb_index
    from autometa.hpo.spaces import get_space

    space = get_space(estimator)
    if space.task != "classification":
        raise ValueError(f"search-cv benchmarks classifiers; {estimator!r} is a {space.task} space")
    index = pmlb_index(data_dir)
    picked = group_datasets(index, "classification", group, n_datasets)  # also checks the group
    targets = list(datasets) if datasets else picked
    if contenders is None:
        contenders = BASE_CONTENDERS + (("lgbm-tuner",) if estimator == "lightgbm" else ())
    settings = {"estimator": estimator, "max_rows": max_rows, "cv": cv}
    done = {(r["dataset"], r["seed"], r["contender"]): r for r in read_runs(cache, settings)}
    runs = []
    for i, target in enumerate(targets):
        for seed in range(n_seeds):
            split = None
            for name in contenders:
                key = (target, seed, name)
                if key not in done:
                    if split is None:
                        split = _load_split(target, data_dir, space, max_rows, cv, seed)
                    done[key] = _run_contender(name, space, target, split, seed, cv, index)
                    append_run(cache, settings, done[key])
                runs.append(done[key])
                if verbose:
                    r = done[key]
                    print(f"[{i + 1}/{len(targets)}] {target} seed {seed} {name}: test {r['test']:.4f}, "
                          f"{r['fits']} fits, {r['wall_s']:.1f} s", file=sys.stderr, flush=True)
    lines = report(runs, contenders, estimator, cv, max_rows, n_seeds)
    print("\n".join(lines))
    return {"runs": runs, "report": lines, "targets": targets}


def _per_dataset(runs, contender) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for r in runs:
        if r["contender"] == contender:
            by.setdefault(r["dataset"], []).append(r["test"])
    return {dataset: float(np.mean(values)) for dataset, values in by.items()}


def report(runs: list[dict[str, Any]], contenders: Sequence[str], estimator: str, cv: int, max_rows, n_seeds: int):
    """Markdown lines: each contender's mean test score (95% CI over data sets), fits and time; wins / ties /
    losses of every ``meta@N`` against each other contender, per data set; how often it trails the default."""
    scores = {c: _per_dataset(runs, c) for c in contenders}
    datasets = sorted(set.intersection(*(set(s) for s in scores.values())))
    lines = [
        f"`{describe()}`",
        "",
        f"{estimator}: {len(datasets)} held-out PMLB data sets x {n_seeds} seed(s), {cv}-fold CV inside, "
        f"balanced accuracy on the 30% test part (training part <= {max_rows} rows)",
        "",
        "| contender | mean test | 95% CI | fits per run | wall s per run | CPU s per run |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in contenders:
        values = [scores[c][d] for d in datasets]
        mean, half = mean_ci(values)
        rows = [r for r in runs if r["contender"] == c and r["dataset"] in datasets]
        lines.append(f"| {c} | {mean:.4f} | +- {half:.4f} | {np.mean([r['fits'] for r in rows]):.0f} | "
                     f"{np.mean([r['wall_s'] for r in rows]):.1f} | {np.mean([r['cpu_s'] for r in rows]):.1f} |")
    for meta in [c for c in contenders if c.startswith("meta@")]:
        lines += ["", f"{meta} against each (per data set; tie within {TIE:g}; Wilcoxon signed-rank p):", ""]
        lines += ["| other | mean difference | wins / ties / losses | p |", "| --- | --- | --- | --- |"]
        for other in contenders:
            if other == meta:
                continue
            diff = np.array([scores[meta][d] - scores[other][d] for d in datasets])
            wins, ties, losses, p = _paired(diff)
            shown = "< 0.001" if p < 0.001 else f"{p:.3f}"
            lines.append(f"| {other} | {diff.mean():+.4f} | {wins} / {ties} / {losses} | {shown} |")
        kept = [r for r in runs if r["contender"] == meta and r["dataset"] in datasets and r.get("kept") == "default"]
        counted = [r for r in runs if r["contender"] == meta and r["dataset"] in datasets and "kept" in r]
        if counted and "default" in contenders:
            default_of = {(r["dataset"], r["seed"]): r["test"] for r in runs if r["contender"] == "default"}
            passed = np.array([r["test_incumbent"] - default_of[r["dataset"], r["seed"]] for r in kept])
            lines += ["", f"{meta} kept the estimator as given in {len(kept)} of {len(counted)} runs"
                          + (f"; the incumbents it passed over scored {100 * passed.mean():+.2f} points against it "
                             f"on test (better / tied / worse {' / '.join(map(str, _paired(passed)[:3]))}; "
                             f"more than {DEFAULT_WORSE * 100:g} point worse: {int((passed < -DEFAULT_WORSE).sum())})"
                             if kept else "")]
        every = [r for r in runs if r["contender"] == meta and r["dataset"] in datasets]
        if counted and "default" in contenders and len(counted) == len(every) and all(
                "folds_incumbent" in r for r in counted):
            lines += ["", _rule_of_the_means(meta, counted, default_of, datasets, scores),
                      "", _pooled_rule(meta, counted, default_of, datasets, scores)]
        if "default" in contenders:
            worse = [d for d in datasets if scores[meta][d] < scores["default"][d] - DEFAULT_WORSE]
            lines += ["", f"{meta} worse than the untuned default by more than {DEFAULT_WORSE * 100:g} point on "
                          f"{len(worse)} of {len(datasets)} data sets ({100 * len(worse) / max(len(datasets), 1):.0f}%)"
                          + (f": {', '.join(worse)}" if worse else "")]
    lines += ["", f"python {platform.python_version()}; data sets: {', '.join(datasets)}"]
    return lines


def _rule_of_the_means(meta: str, records, default_of, datasets, scores) -> str:
    """The same runs had the default been kept only when the incumbent's mean over ``cv``'s folds was not
    higher (``MetaSearchCV(confirm_incumbent=False)``): its mean test score and default losses, against the
    record's."""
    picks, overturned, confirmed = [], [], 0
    for r in records:
        default, incumbent = _test_scores(r, default_of)
        picks.append(incumbent if np.mean(r["folds_incumbent"]) > np.mean(r["folds_default"]) else default)
        confirmed += r.get("confirm") is not None
        if r["kept"] == "default" and r.get("confirm") is not None:
            overturned.append(incumbent - default)
    text = (f"{meta} under the rule of the means on the same runs (no confirmation): "
            + _against_record(meta, records, picks, datasets, scores))
    if confirmed:
        text += f"; the confirmation ran in {confirmed} runs (the incumbent led on cv's folds)"
    if overturned:
        overturned = np.array(overturned)
        text += (f" and kept the default in {len(overturned)}, whose incumbents scored "
                 f"{100 * overturned.mean():+.2f} points against it on test (better / tied / worse "
                 f"{' / '.join(map(str, _paired(overturned)[:3]))})")
    return text


def _pooled_rule(meta: str, records, default_of, datasets, scores) -> str:
    """The same runs had the confirmation decided on cv's folds and the new folds together (the incumbent kept
    only when its mean over all of them is higher): its mean test score and default losses, against the
    record's. Runs without a confirmation keep the record's choice."""
    picks, changed, confirmed = [], 0, 0
    for r in records:
        default, incumbent = _test_scores(r, default_of)
        confirm = r.get("confirm")
        if confirm is None:
            picks.append(r["test"])
            continue
        ahead = (np.mean(r["folds_incumbent"] + confirm["incumbent"])
                 > np.mean(r["folds_default"] + confirm["estimator"]))
        picks.append(incumbent if ahead else default)
        changed += ahead != (r["kept"] == "incumbent")
        confirmed += 1
    return (f"{meta} with the confirmation decided on cv's and the new folds together: "
            + _against_record(meta, records, picks, datasets, scores)
            + f"; it chooses otherwise than the record in {changed} of the {confirmed} confirmed runs")


def _test_scores(record, default_of) -> tuple[float, float]:
    """``(default, incumbent)``: the test scores of a meta run's two candidates, whichever it kept."""
    incumbent = record["test"] if record["kept"] == "incumbent" else record["test_incumbent"]
    return default_of[record["dataset"], record["seed"]], incumbent


def _against_record(meta: str, records, picks, datasets, scores) -> str:
    """Another rule's test scores (``picks``, one per record) against the record's, per data set (the mean
    over its seeds), and its default losses."""
    other = _per_dataset([{**r, "test": pick} for r, pick in zip(records, picks)], meta)
    diff = np.array([scores[meta][d] - other[d] for d in datasets])
    worse = sum(other[d] < scores["default"][d] - DEFAULT_WORSE for d in datasets)
    wins, ties, losses, p = _paired(diff)
    return (f"mean test {np.mean([other[d] for d in datasets]):.4f} ({100 * diff.mean():+.2f} points for the "
            f"record's rule; per data set {wins} / {ties} / {losses}, Wilcoxon p "
            f"{'-' if np.isnan(p) else f'{p:.3f}'}); worse than the untuned default by more than "
            f"{DEFAULT_WORSE * 100:g} point on {worse} of {len(datasets)} data sets")


def _paired(diff) -> tuple[int, int, int, float]:
    """Wins, ties (within ``TIE``) and losses of paired differences, and the Wilcoxon signed-rank p of the
    untied ones (NaN with fewer than two)."""
    import scipy.stats

    diff = np.asarray(diff, dtype=float)
    wins, ties = int((diff > TIE).sum()), int((np.abs(diff) <= TIE).sum())
    nonzero = diff[np.abs(diff) > TIE]
    p = float(scipy.stats.wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else float("nan")
    return wins, ties, len(diff) - wins - ties, p


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--estimator", default="lightgbm", choices=("lightgbm", "xgboost", "hist_gradient_boosting"),
                        help="search space (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, help="PMLB cache folder (default: pmlb/ under the shared data)")
    parser.add_argument("--datasets", default=None, help="comma-separated targets (default: one per family)")
    parser.add_argument("--n-datasets", type=int, default=30,
                        help="targets of the design group (default: %(default)s)")
    parser.add_argument("--group", choices=GROUPS, default="design",
                        help="without --datasets: the design group (group A, --n-datasets family representatives) "
                             "or held-out (group B, every other one) (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (default: %(default)s)")
    parser.add_argument("--contenders", default=None,
                        help=f"comma-separated (default: {', '.join(BASE_CONTENDERS)}, and lgbm-tuner for lightgbm)")
    parser.add_argument("--max-rows", type=int, default=1000, help="rows kept per part; 0 keeps all (default: %(default)s)")
    parser.add_argument("--cv", type=int, default=5, help="folds inside every tuner (default: %(default)s)")
    parser.add_argument("--cache", default=None, help="JSON-lines file of finished runs; a rerun resumes from it")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(args: argparse.Namespace) -> dict[str, Any]:
    split = lambda text: [item.strip() for item in text.split(",") if item.strip()]  # noqa: E731
    return run(estimator=args.estimator, data_dir=args.data_dir,
               datasets=split(args.datasets) if args.datasets else None, n_datasets=args.n_datasets,
               group=args.group,
               n_seeds=args.seeds, contenders=split(args.contenders) if args.contenders else None,
               max_rows=None if args.max_rows <= 0 else args.max_rows, cv=args.cv, cache=args.cache,
               verbose=not args.quiet)


if __name__ == "__main__":
    main(add_arguments(argparse.ArgumentParser(prog="python -m benchmarks.search_cv_pmlb")).parse_args())
