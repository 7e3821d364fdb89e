"""``autometa demo``: both halves of autometa on data it makes itself, in
about two minutes on two CPU cores, with no files and no network.

1. Few-shot classification. A table of 100 classes whose means differ in 7
   of 30 standardised features (scikit-learn's ``make_classification``).
   The default :class:`~autometa.FewShotClassifier` (a validated choice of
   representation and head) and a Prototypical Network meta-fit on classes
   0-59; then 5-way 1-shot and 5-shot tasks drawn
   from the unseen classes 60-99 are fitted from their few labelled rows and
   scored on the rest, next to scikit-learn's 1-nearest-neighbour and
   logistic regression fitted on the same shots.
2. Regression: MAML (Finn et al. 2017) on sinusoids, then new sinusoids
   fitted from 10 points, against the same network trained from scratch;
   query error after 0-10 gradient steps (the adaptation curve).
3. Warm-started hyperparameter search: studies of an RBF SVC on a 70%
   training split of the breast-cancer data set, with
   ``MetaLearnedSampler.from_pretrained`` (a knowledge base of studies on
   PMLB data sets that ships with autometa) next to Optuna's TPE with the
   same budget; each search's incumbent (best cross-validated score) is
   refit and scored on the other 30%, next to the untuned ``SVC()``.

It prints one compact table per part and writes ``fewshot.png``,
``adaptation.png`` and ``hpo.png`` to the output folder it names.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from autometa._common import describe, mean_ci

#: Sizes of the full demo; ``quick=True`` (the tests) shrinks every one.
FULL = {"meta_steps": 500, "episodes": 200, "sine_steps": 6000, "sine_tasks": 500, "hpo_trials": 20, "hpo_splits": 3}
QUICK = {"meta_steps": 30, "episodes": 20, "sine_steps": 1500, "sine_tasks": 50, "hpo_trials": 6, "hpo_splits": 1}


def run(out: str | Path = "autometa-demo", seed: int = 0, quick: bool = False, verbose: bool = True) -> dict:
    """Run the three parts, print their tables, write the plots into ``out``; return the numbers."""
    sizes = QUICK if quick else FULL
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"autometa demo on {describe()}; seed {seed}")
    # every network here is tiny: one intra-op thread is fastest, and more
    # threads stall when other work shares the cores
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = {
            "fewshot": few_shot_classification(sizes["meta_steps"], sizes["episodes"], seed, verbose),
            "sinusoid": sinusoid_regression(sizes["sine_steps"], sizes["sine_tasks"], seed, verbose),
            "hpo": warm_started_search(sizes["hpo_trials"], sizes["hpo_splits"], seed, verbose),
        }
    finally:
        torch.set_num_threads(threads)
    plots = _plot(results, out)
    print(f"\nplots: {', '.join(str(p) for p in plots)}")
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    results["plots"] = plots
    return results


# -- 1. few-shot classification ------------------------------------------------------
def few_shot_classification(meta_steps: int, n_episodes: int, seed: int, verbose: bool) -> dict:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    from autometa import FewShotClassifier

    X, y = make_classification(n_samples=4000, n_features=30, n_informative=7, n_redundant=0, n_classes=100,
                               n_clusters_per_class=1, class_sep=1.5, random_state=seed)
    X = StandardScaler().fit_transform(X)
    past = y < 60
    print(f"\n[1] few-shot classification: meta-train on classes 0-59, then 5-way tasks from the unseen "
          f"classes 60-99 ({n_episodes} tasks each, 95% CI)")
    models = {}
    for name, clf in (
        ("FewShotClassifier()", FewShotClassifier(random_state=seed, device="cpu", verbose=verbose)),
        ("protonet", FewShotClassifier(algorithm="protonet", n_way=5, k_shot=1, meta_steps=meta_steps,
                                       random_state=seed, device="cpu", verbose=verbose)),
    ):
        begin = time.perf_counter()
        clf.meta_fit(X[past], y[past])
        models[f"{name} (meta-fitted, {time.perf_counter() - begin:.0f} s)"] = clf
    models["1-nearest neighbour"] = KNeighborsClassifier(n_neighbors=1)
    models["logistic regression"] = LogisticRegression(max_iter=1000)
    X_new, y_new = X[~past], y[~past]
    rng = np.random.default_rng(seed + 1)
    table = {}
    for k_shot in (1, 5):
        scores = {name: [] for name in models}
        for _ in range(n_episodes):
            classes = rng.choice(np.unique(y_new), 5, replace=False)
            support = np.concatenate([rng.choice(np.flatnonzero(y_new == c), k_shot, replace=False) for c in classes])
            query = np.setdiff1d(np.flatnonzero(np.isin(y_new, classes)), support)
            for name, model in models.items():
                scores[name].append(model.fit(X_new[support], y_new[support]).score(X_new[query], y_new[query]))
        table[k_shot] = {name: mean_ci(values) for name, values in scores.items()}
    print(f"  {'accuracy':<36}{'1-shot':>16}{'5-shot':>16}")
    for name in models:
        cells = "".join(f"{100 * table[k][name][0]:>10.1f} +- {100 * table[k][name][1]:.1f}" for k in (1, 5))
        print(f"  {name:<36}{cells}")
    return table


# -- 2. sinusoid regression ----------------------------------------------------------
def sinusoid_regression(meta_steps: int, n_test_tasks: int, seed: int, verbose: bool) -> dict:
    from autometa.meta import MAML, meta_train
    from autometa.tasks import SinusoidTasks

    torch.manual_seed(seed)
    network = {"name": "mlp", "in_features": 1, "out_features": 1}
    print("\n[2] MAML on sinusoids (amplitude 0.1-5, phase 0-pi): meta-train, then fit new ones from 10 points")
    maml = MAML(network, inner_lr=0.01, inner_steps=1, task_type="regression")
    begin = time.perf_counter()
    meta_train(maml, SinusoidTasks(k_shot=10, random_state=seed), steps=meta_steps, meta_batch=25, lr=1e-3,
               verbose=verbose)
    train_s = time.perf_counter() - begin
    test = SinusoidTasks(k_shot=10, n_query=100, random_state=seed + 10_000).sample(n_test_tasks)
    torch.manual_seed(seed + 1)
    scratch = MAML(network, inner_lr=0.01, inner_steps=1, task_type="regression")
    steps = list(range(11))
    curve = {
        "from scratch": [scratch.evaluate(test, steps=s)["loss"] for s in steps],
        "MAML": [maml.evaluate(test, steps=s)["loss"] for s in steps],
    }
    print(f"  meta-trained for {meta_steps} steps in {train_s:.0f} s; query MSE over {n_test_tasks} new sinusoids")
    print(f"  {'gradient steps on 10 points':<30}{'from scratch':>14}{'MAML':>10}")
    for s in (0, 1, 10):
        print(f"  {s:<30}{curve['from scratch'][s]:>14.3f}{curve['MAML'][s]:>10.3f}")
    ratio = curve["from scratch"][10] / curve["MAML"][10]
    print(f"  after 10 steps MAML's error is {ratio:.1f}x lower than training from scratch")
    return {"steps": steps, "curve": curve, "ratio_at_10": ratio, "train_s": train_s}


# -- 3. warm-started hyperparameter search ----------------------------------------------
HPO_SPACE = "svc"


def warm_started_search(n_trials: int, n_splits: int, seed: int, verbose: bool) -> dict:
    """Tune on a training split, then score each search's incumbent on a test split it never saw."""
    import optuna
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from autometa.hpo import MetaLearnedSampler
    from autometa.hpo.spaces import get_space, make_objective

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = get_space(HPO_SPACE)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    checkpoints = sorted({min(3, n_trials), min(10, n_trials), n_trials})
    print(f"\n[3] tuning {space.description.split(':')[0]} on breast cancer ({len(X)} rows): {n_trials} trials, "
          f"3-fold CV on a 70% training split; the incumbent (best CV) refit on it and scored on the other 30%; "
          f"{n_splits} random splits")
    def untuned(random_state):  # scikit-learn's defaults: C=1, gamma="scale"
        return make_pipeline(StandardScaler(), SVC(random_state=random_state))

    names = ("untuned SVC()", "TPE", "MetaLearnedSampler.from_pretrained")
    test = {name: [] for name in names}
    curves = {name: [] for name in names[1:]}
    for split in range(seed, seed + n_splits):
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=split)
        objective = make_objective(space, X_train, y_train, cv=3, random_state=split)
        scorer = get_scorer(objective.metric)

        def test_score(params, X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test):
            model = space.build(params, X_train, random_state=seed) if params is not None else untuned(seed)
            return float(scorer(model.fit(X_train, y_train), X_test, y_test))

        test["untuned SVC()"].append([test_score(None)] * len(checkpoints))
        # one sampler seed for every split: the surrogate, meta-trained on the shipped knowledge base, is
        # then trained once and reused
        samplers = {
            "TPE": optuna.samplers.TPESampler(seed=seed),
            "MetaLearnedSampler.from_pretrained": MetaLearnedSampler.from_pretrained(
                space.name, X=X_train, y=y_train, seed=seed),
        }
        for name, sampler in samplers.items():
            study = optuna.create_study(direction="maximize", sampler=sampler)
            study.optimize(objective, n_trials=n_trials, show_progress_bar=False)
            trials = [t for t in study.trials if t.value is not None and np.isfinite(t.value)]
            curves[name].append(np.maximum.accumulate([t.value for t in trials]))
            test[name].append([test_score(max(trials[:c], key=lambda t: t.value).params) for c in checkpoints])
    print(f"  {objective.metric} on the test split, mean of {n_splits} splits")
    print(f"  {'after trial':<36}" + "".join(f"{c:>10}" for c in checkpoints))
    for name in names:
        scores = np.mean(test[name], axis=0)
        print(f"  {name:<36}" + "".join(f"{v:>10.4f}" for v in scores))
    mean = {name: np.mean(np.array(runs), axis=0) for name, runs in curves.items()}
    return {"metric": objective.metric, "checkpoints": checkpoints, "curves": mean,
            "test": {name: np.mean(values, axis=0).tolist() for name, values in test.items()}}


# -- output ----------------------------------------------------------------------------
def _plot(results: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fewshot = results["fewshot"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(fewshot[1])
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        means = [100 * fewshot[k][name][0] for k in (1, 5)]
        errors = [100 * fewshot[k][name][1] for k in (1, 5)]
        ax.bar(np.arange(2) + i * width, means, width, yerr=errors, label=name.split(" (")[0])
    ax.set_xticks(np.arange(2) + width * (len(names) - 1) / 2, ["5-way 1-shot", "5-way 5-shot"])
    ax.set_ylabel("accuracy on unseen classes (%)")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "fewshot.png"))

    sinusoid = results["sinusoid"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, curve in sinusoid["curve"].items():
        ax.plot(sinusoid["steps"], curve, marker="o", label=name)
    ax.set_xlabel("gradient steps on 10 points")
    ax.set_ylabel("query MSE")
    ax.set_yscale("log")
    ax.legend()
    paths.append(_save(fig, out / "adaptation.png"))

    hpo = results["hpo"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, curve in hpo["curves"].items():
        ax.plot(np.arange(1, len(curve) + 1), curve, marker=".", label=name)
    ax.set_xlabel("trial")
    ax.set_ylabel(f"best CV {hpo['metric']} so far")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "hpo.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    run()
