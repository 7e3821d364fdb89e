"""`autometa hpo bench --suite pmlb`: real fits, leave-data-set-out, an outer test split per seed, regret,
trials-to-match-TPE and the incumbents' test scores."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from benchmarks import hpo_pmlb
from benchmarks.hpo_pmlb import (
    best_so_far,
    default_model,
    family,
    held_out_per_family,
    load_split,
    near_duplicates,
    one_per_family,
    run,
    summarise,
    summarise_test,
)

pytest.importorskip("pmlb", reason="the benchmark reads PMLB's cache layout through the pmlb package")


def write_pmlb(root, specs):
    rows = []
    for i, (name, (n_rows, n_features)) in enumerate(specs.items()):
        rng = np.random.default_rng(i)
        X = rng.normal(size=(n_rows, n_features))
        target = (X[:, 0] + X[:, 1] * (i % 2) + 0.7 * rng.normal(size=n_rows) > 0).astype(int)
        frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(n_features)]).assign(target=target)
        (root / name).mkdir(parents=True)
        frame.to_csv(root / name / f"{name}.tsv.gz", sep="\t", compression="gzip", index=False)
        rows.append((name, "classification", n_rows, n_features, 2))
    pd.DataFrame(rows, columns=["name", "task", "n_rows", "n_features", "n_classes"]).to_csv(
        root / "index.csv", index=False)
    return root


def test_family_and_near_duplicates():
    assert family("breast-w") == family("breast") == family("breast-cancer-wisconsin") == "breast"
    assert family("monk1") == family("monk2") == "monk"
    assert family("GAMETES_Epistasis_2-Way_20atts_0.1H_EDM-1_1") == "gametes"
    assert family("1089_USCrime") == "1089"
    index = pd.DataFrame({"name": ["chess", "kr-vs-kp", "iris", "mushroom", "agaricus-lepiota", "wine"],
                          "n_rows": [3196, 3196, 150, 8124, 8145, 178],
                          "n_features": [36, 36, 4, 22, 22, 13]})
    names = list(index["name"]) + ["breast-w"]
    assert near_duplicates("chess", names, index) == {"chess", "kr-vs-kp"}
    assert near_duplicates("agaricus-lepiota", names, index) == {"agaricus-lepiota", "mushroom"}
    assert near_duplicates("iris", names, index) == {"iris"}
    assert near_duplicates("breast", names) == {"breast-w"}


def test_summarise_regret_and_trials_to_match():
    runs = [
        {"dataset": "d", "sampler": "tpe", "seed": 0, "values": [0.5, 0.7, 0.6, 0.8]},
        {"dataset": "d", "sampler": "tpe", "seed": 1, "values": [0.6, None, 0.6, 0.6]},
        {"dataset": "d", "sampler": "meta", "seed": 0, "values": [None, 0.9, 0.9, 0.9]},
        {"dataset": "d", "sampler": "meta", "seed": 1, "values": [0.4, 0.4, 0.4, 0.4]},
    ]
    assert best_so_far([None, 0.2, 0.1, None]) == [pytest.approx(math.nan, nan_ok=True), 0.2, 0.2, 0.2]
    summary = summarise(runs, ["tpe", "meta"], n_trials=4, budgets=[1, 4])
    entry = summary["datasets"]["d"]
    assert entry["best"] == 0.9 and entry["worst"] == 0.4
    assert entry["tpe_result"] == pytest.approx(0.7)  # mean of TPE's finals 0.8 and 0.6
    # meta: seed 0 reaches 0.7 at trial 2, seed 1 never -> median of [2, inf] is inf
    assert entry["trials_to_match_tpe"]["meta"] == math.inf
    assert entry["trials_to_match_tpe"]["tpe"] == math.inf  # seed 1 never reaches the mean
    # regret after 1 trial: tpe (0.9-0.5)/0.5=0.8 and 0.6; meta 1 (nothing yet) and 1.0 -> means 0.7, 1.0
    assert entry["mean_regret"]["tpe"][0] == pytest.approx(0.7)
    assert entry["mean_regret"]["meta"][0] == pytest.approx(1.0)
    assert summary["overall"]["mean_regret_at"]["meta"]["4"] == pytest.approx(0.5)


def test_tiny_benchmark_end_to_end(tmp_path, capsys):
    from autometa.hpo.build import build_knowledge_base, export_knowledge_base

    data_dir = write_pmlb(tmp_path / "pmlb", {"alpha1": (60, 3), "alpha2": (70, 3), "beta": (80, 4),
                                              "gamma": (50, 2)})
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    build_knowledge_base("logistic_regression", data_dir, url, n_trials=6, quiet=True)
    kb_path = tmp_path / "kb.json.gz"
    export_knowledge_base(url, kb_path)
    out = tmp_path / "bench.json"
    result = run(estimator="logistic_regression", data_dir=data_dir, datasets=["alpha1", "beta"], kb=str(kb_path),
                 n_trials=4, n_seeds=2, samplers=["random", "tpe", "ws-cmaes", "portfolio+tpe", "meta"],
                 portfolio_size=2, out=out, verbose=False, meta_options={"meta_train_steps": 5})
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"meta CV trials to match tpe@4: median (\d+(\.\d+)?|>4) over 2 data sets \(target <= 6\)",
                        lines[-1]), lines[-1]
    assert any(line.startswith("meta test@4 - tpe test@4: ") for line in lines)
    data = json.loads(out.read_text())
    assert data["excluded"] == {"alpha1": ["alpha1", "alpha2"], "beta": ["beta"]}  # leave-data-set-out + twins
    assert data["datasets"] == ["alpha1", "beta"] and data["n_trials"] == 4 and data["n_seeds"] == 2
    assert len(data["runs"]) == 2 * 5 * 2
    assert all(len(r["values"]) == 4 for r in data["runs"])
    summary = data["summary"]
    assert set(summary["datasets"]) == {"alpha1", "beta"}
    for entry in summary["datasets"].values():
        assert set(entry["best_so_far"]) == set(data["samplers"])
        assert all(0.0 <= r <= 1.0 for curve in entry["mean_regret"].values() for r in curve)
        assert 0.0 < entry["best"] <= 1.0
    assert set(summary["overall"]["mean_regret_at"]["meta"]) == {"4"}
    to_match = summary["overall"]["trials_to_match_tpe"]
    assert set(to_match) == set(data["samplers"])
    assert all(v == "inf" or 1 <= v <= 4 for v in to_match.values())
    # every sampler of one seed sees one split: the same configuration scores the same
    first = {r["values"][0] for r in data["runs"] if r["sampler"] in ("random", "tpe") and r["seed"] == 0
             and r["dataset"] == "beta"}
    assert len(first) == 1
    assert result["summary"]["budgets"] == [4]


def test_benchmark_user_mistakes(tmp_path):
    data_dir = write_pmlb(tmp_path / "pmlb", {"alpha1": (40, 2)})
    with pytest.raises(ValueError, match="--datasets names no data set"):
        run(data_dir=data_dir, datasets=[], verbose=False)
    with pytest.raises(ValueError, match="unknown sampler"):
        run(data_dir=data_dir, datasets=["alpha1"], samplers=["smac"], verbose=False)
    with pytest.raises(FileNotFoundError, match="--kb .*no such file"):
        run(data_dir=data_dir, datasets=["alpha1"], kb=str(tmp_path / "none.json"), verbose=False)


def test_one_per_family_spans_sizes_and_skips_twins():
    index = pd.DataFrame({"name": ["monk1", "monk2", "chess", "kr-vs-kp", "iris", "big", "huge", "wine", "boston"],
                          "task": ["classification"] * 8 + ["regression"],
                          "n_rows": [124, 169, 3196, 3196, 150, 4000, 9000, 178, 506],
                          "n_features": [6, 6, 36, 36, 4, 10, 5, 13, 13]})
    names = one_per_family(index, "classification", 10)
    # one per family (monk2, the larger), one of the shape twins chess / kr-vs-kp, none above 5000 rows
    assert names == ["iris", "monk2", "wine", "chess", "big"]
    three = one_per_family(index, "classification", 3)
    assert three == ["iris", "wine", "big"]  # evenly spaced by row count: smallest and largest kept
    # the held-out group: every other family representative, never a design data set
    assert held_out_per_family(index, "classification", 3) == ["monk2", "chess"]
    assert held_out_per_family(index, "classification", 10) == []


def test_split_default_and_summarise_test(tmp_path):
    from autometa.hpo.spaces import get_space

    data_dir = write_pmlb(tmp_path / "pmlb", {"alpha1": (100, 3)})
    space = get_space("logistic_regression")
    X_train, y_train, X_test, y_test = load_split("alpha1", data_dir, space, None, 3, seed=0)
    assert (len(X_train), len(X_test)) == (70, 30)
    assert set(X_train.index).isdisjoint(X_test.index)
    assert abs(y_train.mean() - y_test.mean()) < 0.05  # stratified
    other = load_split("alpha1", data_dir, space, None, 3, seed=1)
    assert set(other[0].index) != set(X_train.index)  # a new split per seed
    capped = load_split("alpha1", data_dir, space, 20, 3, seed=0)
    assert len(capped[0]) == 20 and len(capped[2]) == 20
    model = default_model(space, X_train).fit(X_train, y_train)
    assert model.named_steps["model"][-1].C == 1.0  # scikit-learn's default, not a tuned value

    def inc(pairs):
        return [{"budget": b, "trial": 0, "cv": cv, "test": test} for b, (cv, test) in zip((1, 2), pairs)]

    runs = [{"dataset": d, "sampler": s, "seed": 0, "values": [0.5, 0.5], "incumbents": inc(p)}
            for d, s, p in [("a", "tpe", [(0.5, 0.6), (0.7, 0.7)]), ("a", "meta", [(0.6, 0.8), (0.6, 0.8)]),
                            ("b", "tpe", [(0.5, 0.5), (0.6, 0.9)]), ("b", "meta", [(0.6, 0.9), (0.7, 0.8)])]]
    defaults = [{"dataset": "a", "seed": 0, "test": 0.75}, {"dataset": "b", "seed": 0, "test": 0.85}]
    summary = summarise_test(runs, defaults, ["tpe", "meta"], n_trials=2)
    assert summary["budgets"] == [1, 2]
    a = summary["datasets"]["a"]
    assert a["test_at"]["meta"] == {"1": 0.8, "2": 0.8} and a["default_test"] == 0.75
    assert a["budgets_to_reach_tpe_test"] == {"tpe": 2.0, "meta": 1.0}
    overall = summary["overall"]
    assert overall["test_at"]["meta"]["2"][0] == pytest.approx(0.8)
    assert overall["mean_rank_at"]["2"] == {"tpe": 1.5, "meta": 1.5}
    assert overall["mean_rank_at"]["1"]["meta"] == 1.0
    targets = overall["targets"]
    assert targets["meta@2_minus_tpe@2_points"][0] == pytest.approx(0.0)
    assert targets["meta@2_vs_tpe@2_wtl"] == [1, 0, 1]
    assert targets["meta@2_worse_than_default"] == [1, 2]  # b: 0.8 < 0.85
    assert targets["tpe@2_worse_than_default"] == [1, 2]  # a: 0.7 < 0.75


def test_the_test_split_never_reaches_the_objective(tmp_path, monkeypatch):
    from autometa.hpo.build import build_knowledge_base, export_knowledge_base
    from autometa.hpo.spaces import make_objective

    data_dir = write_pmlb(tmp_path / "pmlb", {"alpha1": (90, 3), "beta": (80, 4)})
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    build_knowledge_base("logistic_regression", data_dir, url, n_trials=4, quiet=True)
    export_knowledge_base(url, tmp_path / "kb.json.gz")
    seen = []

    def spy(space, X, y, **kwargs):
        seen.append(set(X.index))
        return make_objective(space, X, y, **kwargs)

    monkeypatch.setattr("autometa.hpo.spaces.make_objective", spy)
    out = tmp_path / "bench.json"
    result = run(estimator="logistic_regression", data_dir=data_dir, datasets=["alpha1"], kb=str(tmp_path / "kb.json.gz"),
                 n_trials=4, n_seeds=2, samplers=["tpe", "meta"], out=out, verbose=False,
                 meta_options={"meta_train_steps": 5})
    assert len(seen) == 4  # 2 samplers x 2 seeds
    from autometa.hpo.spaces import get_space

    splits = [load_split("alpha1", data_dir, get_space("logistic_regression"), 1000, 3, seed) for seed in (0, 1)]
    train = [set(split[0].index) for split in splits]
    assert all(not (rows & set(split[2].index)) for rows, split in zip(train, splits))
    # every objective got exactly the training part of one seed's split: never a test row of that split
    assert sorted(train.index(rows) for rows in seen) == [0, 0, 1, 1]
    assert len(result["runs"]) == 4
    data = json.loads(out.read_text())
    for r in data["runs"]:
        assert [i["budget"] for i in r["incumbents"]] == [1, 3, 4]
        for i in r["incumbents"]:
            assert 0.0 <= i["test"] <= 1.0 and 0.0 <= i["cv"] <= 1.0
            assert i["cv"] == max(v for v in r["values"][: i["budget"]] if v is not None)  # best by CV
    assert [(d["dataset"], d["seed"]) for d in data["defaults"]] == [("alpha1", 0), ("alpha1", 1)]
    assert all(0.0 <= d["test"] <= 1.0 for d in data["defaults"])
    test = data["test_summary"]
    assert set(test["overall"]) >= {"test_at", "cv_at", "default_test", "mean_rank_at", "wilcoxon_at",
                                    "budgets_to_reach_tpe_test", "targets"}
    assert set(test["overall"]["targets"]) >= {"meta@4_minus_tpe@4_points", "meta@4_vs_tpe@4_wtl",
                                               "meta@4_worse_than_default"}
    assert hpo_pmlb.BUDGETS[:3] == (1, 3, 5)


def test_meta_sampler_best_params_is_its_incumbent():
    import optuna

    from autometa.hpo import KnowledgeBase, MetaLearnedSampler
    from autometa.hpo.encoding import FOLD_SCORES_KEY

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    earlier = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    earlier.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=10)
    sampler = MetaLearnedSampler(KnowledgeBase.from_studies([earlier]), n_warm_start=0, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with pytest.raises(ValueError, match="no completed trial"):
        sampler.best_params(study)
    folds = {"lucky": [0.60, 0.95, 0.95], "steady": [0.82, 0.83, 0.84], "poor": [0.70, 0.70, 0.70],
             "tie": [0.82, 0.83, 0.84]}
    def objective(trial, scores):
        trial.suggest_float("x", 0, 1)
        trial.set_user_attr(FOLD_SCORES_KEY, scores)
        return float(np.mean(scores))

    for scores in folds.values():
        study.enqueue_trial({"x": len(study.trials) / 10})
        study.optimize(lambda trial: objective(trial, scores), n_trials=1)
    # the lucky trial has the best mean (0.833 vs 0.830) but loses once its standard error (0.117) counts
    assert study.best_trial.number == 0
    assert sampler.best_trial(study).number == 1  # the steady one; its twin came later
    assert sampler.best_params(study) == study.trials[1].params
    # without fold scores: the best value, as study.best_trial
    plain = optuna.create_study(sampler=MetaLearnedSampler(KnowledgeBase.from_studies([earlier]), n_warm_start=0))
    plain.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=4)
    assert plain.sampler.best_trial(plain).number == plain.best_trial.number


def test_baselines_and_the_cache_resume(tmp_path, monkeypatch, capsys):
    from autometa.hpo.build import build_knowledge_base, export_knowledge_base

    data_dir = write_pmlb(tmp_path / "pmlb", {"alpha1": (60, 3), "beta": (80, 4), "gamma": (50, 2)})
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    build_knowledge_base("logistic_regression", data_dir, url, n_trials=6, quiet=True)
    kb_path = tmp_path / "kb.json.gz"
    export_knowledge_base(url, kb_path)
    cache = tmp_path / "runs.jsonl"
    options = {"estimator": "logistic_regression", "data_dir": data_dir, "datasets": ["beta"], "kb": str(kb_path),
                   "n_trials": 4, "n_seeds": 1, "samplers": ["gp", "box+random", "portfolio"], "verbose": False}
    first = run(**options, cache=cache)
    assert [r["sampler"] for r in first["runs"]] == ["gp", "box+random", "portfolio"]
    assert all(len(r["values"]) == 4 and all(v is not None for v in r["values"]) for r in first["runs"])
    assert len(cache.read_text().splitlines()) == 3 + 1  # three runs and the default's score

    def no_fit(*args, **kwargs):
        raise AssertionError("a cached run ran again")

    monkeypatch.setattr(hpo_pmlb, "_run_one", no_fit)
    monkeypatch.setattr(hpo_pmlb, "_default_score", no_fit)
    again = run(**options, cache=cache)
    assert again["runs"] == first["runs"] and again["defaults"] == first["defaults"]
    assert json.dumps(hpo_pmlb.jsonable(again["test_summary"])) == json.dumps(
        hpo_pmlb.jsonable(first["test_summary"]))
    # every budget has an incumbent, also where configurations were enqueued
    assert all(at["test"] is not None for r in first["runs"] for at in r["incumbents"])
    # other settings are other runs: nothing cached applies
    with pytest.raises(AssertionError, match="ran again"):
        run(**{**options, "n_trials": 3}, cache=cache)
    cache.write_text(cache.read_text() + "{not json\n")
    with pytest.raises(ValueError, match="line 5: not JSON"):
        run(**options, cache=cache)


def test_search_box_sampler_stays_in_the_box_of_the_best_configurations():
    import optuna

    from autometa.hpo.knowledge_base import Task
    from benchmarks.transfer_baselines import SearchBoxSampler, learned_search_box

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    tasks = []
    distributions = {"x": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True),
                         "k": optuna.distributions.IntDistribution(1, 10),
                         "kind": optuna.distributions.CategoricalDistribution(["a", "b", "c"])}
    for name, best in (("a", {"x": 0.01, "k": 3, "kind": "a"}), ("b", {"x": 0.1, "k": 8, "kind": "b"})):
        study = optuna.create_study(study_name=name, direction="maximize")
        for params, value in ((best, 1.0), ({"x": 1e-3, "k": 1, "kind": "c"}, 0.0)):
            study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value))
        tasks.append(Task.from_study(study))
    box = learned_search_box(tasks)
    assert box == {"x": (0.01, 0.1), "k": (3, 8), "kind": ["a", "b"]}

    def objective(trial):
        x = trial.suggest_float("x", 1e-4, 1.0, log=True)
        k = trial.suggest_int("k", 1, 10)
        kind = trial.suggest_categorical("kind", ["a", "b", "c"])
        other = trial.suggest_float("other", 0.0, 1.0)  # in no best configuration: its whole range
        assert 0.01 <= x <= 0.1 and 3 <= k <= 8 and kind in ("a", "b") and 0.0 <= other <= 1.0
        return x

    study = optuna.create_study(sampler=SearchBoxSampler(box, seed=0))
    study.optimize(objective, n_trials=40)
    xs = [t.params["x"] for t in study.trials]
    assert min(xs) < 0.02 and max(xs) > 0.05  # it searches the box, not a point
    assert {t.params["kind"] for t in study.trials} == {"a", "b"}
    again = optuna.create_study(sampler=SearchBoxSampler(box, seed=0))
    again.optimize(objective, n_trials=40)
    assert [t.params for t in again.trials] == [t.params for t in study.trials]  # seeded


def test_task_similarity_tpe_weighs_the_similar_source_task_and_finds_the_optimum():
    import optuna

    from autometa.hpo.knowledge_base import Task
    from benchmarks.transfer_baselines import TaskSimilarityTPESampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {"x": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True),
             "kind": optuna.distributions.CategoricalDistribution(["a", "b"])}

    def family(optimum, good):
        def objective(trial):
            x = trial.suggest_float("x", 1e-3, 1.0, log=True)
            kind = trial.suggest_categorical("kind", ["a", "b"])
            return (np.log10(x) - np.log10(optimum)) ** 2 + (kind != good)
        return objective

    def source(name, optimum, good):
        study = optuna.create_study(study_name=name, sampler=optuna.samplers.RandomSampler(seed=len(name)))
        study.optimize(family(optimum, good), n_trials=40)
        return Task.from_study(study)

    near, far = source("near", 0.01, "a"), source("faraway", 0.8, "b")
    sampler = TaskSimilarityTPESampler([far, near], space, seed=0, n_startup_trials=5)
    study = optuna.create_study(sampler=sampler)
    study.optimize(family(0.01, "a"), n_trials=25)
    target = sampler._densities([t.params for t in study.trials], [t.value for t in study.trials])
    weights = sampler.task_weights(target)
    assert weights.shape == (3,) and weights.sum() == pytest.approx(1.0)
    assert weights[2] > 1.5 * weights[1]  # the source with the same optimum counts more
    random = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    random.optimize(family(0.01, "a"), n_trials=25)
    assert np.median([t.value for t in study.trials[5:]]) < 0.5 * np.median([t.value for t in random.trials[5:]])
    # every proposal lies in the space; the first n_startup_trials are random
    assert all(1e-3 <= t.params["x"] <= 1.0 and t.params["kind"] in ("a", "b") for t in study.trials)
