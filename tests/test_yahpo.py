"""YAHPO Gym surrogates (autometa.data.yahpo) and the transfer-HPO benchmark on them.

The reference outputs in tests/data/yahpo_reference/ were computed with
yahpo-gym 1.0.1 itself (benchmarks/yahpo_reference.py, whose
docstring gives the exact commands).
"""

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from autometa.data.yahpo import SCENARIOS, YahpoScenario, default_root
from autometa.hpo.portfolio import greedy_portfolio

REFERENCE = Path(__file__).parent / "data" / "yahpo_reference"
ROOT = default_root()


def _skip_reason():
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "onnxruntime is not installed (pip install onnxruntime, or autometa[test])"
    if ROOT is None or not (ROOT / "lcbench").is_dir() or not (ROOT / "rbv2_xgboost").is_dir():
        return (
            f"no YAHPO data at {ROOT if ROOT is not None else '../shared/data/yahpo'}: "
            "set AUTOMETA_DATA to a folder holding yahpo/lcbench and yahpo/rbv2_xgboost"
        )
    return None


needs_yahpo = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


@pytest.fixture(scope="module")
def lcbench():
    return YahpoScenario.load("lcbench")


@pytest.fixture(scope="module")
def xgboost():
    return YahpoScenario.load("rbv2_xgboost")


def _reference(scenario):
    """(configs, tasks, outputs) of the fixture, values typed as the search space types them."""
    info = SCENARIOS[scenario.name]
    with open(REFERENCE / f"{scenario.name}.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    configs, tasks = [], []
    for row in rows:
        config = {}
        for name, text in row.items():
            if name == info.instance_name or name in scenario.metrics or text == "":
                continue
            distribution = scenario.search_space.get(name)
            if isinstance(distribution, CategoricalDistribution):
                config[name] = text
            elif isinstance(distribution, IntDistribution) or isinstance(scenario.fidelity.get(name), int):
                config[name] = int(text)
            else:
                config[name] = float(text)
        configs.append(config)
        tasks.append(row[info.instance_name])
    outputs = np.array([[float(row[m]) for m in scenario.metrics] for row in rows])
    return configs, tasks, outputs


@needs_yahpo
@pytest.mark.parametrize("name", ["lcbench", "rbv2_xgboost"])
def test_reproduces_yahpo_gym(name):
    scenario = YahpoScenario.load(name)
    configs, tasks, expected = _reference(scenario)
    assert len(configs) >= 200 and len(set(tasks)) >= 3
    if name == "rbv2_xgboost":  # the fixture covers every booster, so every condition
        assert {c["booster"] for c in configs} == {"gblinear", "gbtree", "dart"}
    # yahpo-gym evaluated the fixture in one batch; so do we, and the float32 network agrees
    got = scenario.evaluate(configs, tasks)
    assert list(got.columns) == scenario.metrics
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-5, atol=1e-6)
    # another batch (one task at a time) differs only at float32 rounding level
    for task in sorted(set(tasks))[:2]:
        rows = [i for i, t in enumerate(tasks) if t == task]
        alone = scenario.evaluate([configs[i] for i in rows], task).to_numpy()
        np.testing.assert_allclose(alone, expected[rows], rtol=1e-3, atol=1e-5)


@needs_yahpo
def test_lcbench_search_space(lcbench):
    assert len(lcbench.tasks) == 34 and "3945" in lcbench.tasks
    assert lcbench.target == "val_accuracy" and lcbench.direction == "maximize"
    assert lcbench.metric_direction("val_cross_entropy") == "minimize"
    assert lcbench.fidelity == {"epoch": 52}
    space = lcbench.search_space
    assert set(space) == {
        "batch_size", "learning_rate", "max_dropout", "max_units", "momentum", "num_layers", "weight_decay"
    }
    assert space["batch_size"] == IntDistribution(16, 512, log=True)
    assert space["max_units"] == IntDistribution(64, 1024, log=True)
    assert space["num_layers"] == IntDistribution(1, 5)
    assert isinstance(space["learning_rate"], FloatDistribution) and space["learning_rate"].log
    assert space["momentum"] == FloatDistribution(0.1, 0.99)
    assert not lcbench.conditions


@needs_yahpo
def test_xgboost_search_space_and_conditions(xgboost):
    assert len(xgboost.tasks) == 119
    assert xgboost.target == "acc" and xgboost.direction == "maximize"
    assert xgboost.fidelity == {"trainsize": 1.0, "repl": 10}
    space = xgboost.search_space
    assert len(space) == 14 and "task_id" not in space and "trainsize" not in space
    assert space["booster"] == CategoricalDistribution(("gblinear", "gbtree", "dart"))
    assert space["nrounds"] == IntDistribution(7, 2981, log=True)
    assert space["max_depth"] == IntDistribution(1, 15)
    names = list(space)
    for child, condition in xgboost.conditions.items():
        assert names.index(condition.parent) < names.index(child)  # define-by-run order
    base = {"booster": "gblinear"}
    assert not xgboost.is_active("eta", base) and not xgboost.is_active("rate_drop", base)
    assert xgboost.is_active("eta", {"booster": "gbtree"}) and not xgboost.is_active("rate_drop", {"booster": "gbtree"})
    assert xgboost.is_active("rate_drop", {"booster": "dart"}) and xgboost.is_active("alpha", base)


@needs_yahpo
@pytest.mark.parametrize("flat", [False, True])
def test_suggest_define_by_run(xgboost, flat):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(xgboost.objective("12", flat=flat), n_trials=30)
    tree_only = {"eta", "gamma", "max_depth", "min_child_weight", "colsample_bytree", "colsample_bylevel"}
    boosters = set()
    for trial in study.trials:
        booster = trial.params["booster"]
        boosters.add(booster)
        if not flat:
            assert (tree_only <= set(trial.params)) == (booster != "gblinear")
            assert ({"rate_drop", "skip_drop"} <= set(trial.params)) == (booster == "dart")
        else:
            assert set(trial.params) == set(xgboost.search_space)
        active = {n: v for n, v in trial.params.items() if xgboost.is_active(n, trial.params)}
        assert trial.value == pytest.approx(xgboost.evaluate(active, "12")["acc"].iloc[0], rel=1e-4)
        assert 0 <= trial.user_attrs["yahpo:auc"] <= 1.0 + 1e-6
    assert boosters == {"gblinear", "gbtree", "dart"}


@needs_yahpo
def test_sample_respects_space(xgboost):
    configs = xgboost.sample(300, seed=0)
    assert configs == xgboost.sample(300, seed=0)
    for config in configs:
        assert set(config) == {n for n in xgboost.search_space if xgboost.is_active(n, config)}
        for name, value in config.items():
            distribution = xgboost.search_space[name]
            assert distribution._contains(distribution.to_internal_repr(value))
    values = xgboost.evaluate(configs, "1501")["acc"]
    assert values.notna().all() and values.between(0, 1.0 + 1e-6).all()


@needs_yahpo
def test_fidelity_defaults_to_max(lcbench):
    config = lcbench.sample(1, seed=3)[0]
    at_max = lcbench.evaluate(config, "3945")
    assert at_max.equals(lcbench.evaluate(config | {"epoch": 52}, "3945"))
    assert not at_max.equals(lcbench.evaluate(config | {"epoch": 1}, "3945"))


@needs_yahpo
def test_clear_errors(lcbench, xgboost, tmp_path):
    config = lcbench.sample(1, seed=0)[0]
    with pytest.raises(ValueError, match="unknown task of scenario 'lcbench' '999'"):
        lcbench.evaluate(config, "999")
    with pytest.raises(ValueError, match=r"lacks the active parameters \['momentum'\]"):
        lcbench.evaluate({k: v for k, v in config.items() if k != "momentum"}, "3945")
    with pytest.raises(ValueError, match="does not have"):
        lcbench.evaluate(config | {"OpenML_task_id": "3945"}, "3945")
    with pytest.raises(ValueError, match=r"momentum=2.0 is outside \[0.1, 0.99\]"):
        lcbench.evaluate(config | {"momentum": 2.0}, "3945")
    with pytest.raises(ValueError, match="epoch=60 is outside"):
        lcbench.evaluate(config | {"epoch": 60}, "3945")
    with pytest.raises(ValueError, match="booster='linear' is not one of"):
        xgboost.evaluate(xgboost.sample(1, seed=0)[0] | {"booster": "linear"}, "12")
    with pytest.raises(ValueError, match="2 tasks for 1 configurations"):
        lcbench.evaluate([config], ["3945", "7593"])
    with pytest.raises(FileNotFoundError, match="AUTOMETA_DATA") as error:
        YahpoScenario.load("lcbench", root=tmp_path)
    assert str(tmp_path / "lcbench") in str(error.value)
    # inactive values are ignored, as yahpo-gym's surrogate sees them as missing
    linear = {k: v for k, v in xgboost.sample(20, seed=1)[0].items()} | {"booster": "gblinear"}
    linear = {k: v for k, v in linear.items() if xgboost.is_active(k, linear)}
    assert xgboost.evaluate(linear, "12").equals(xgboost.evaluate(linear | {"eta": 0.5}, "12"))


def test_unknown_scenario_and_target():
    with pytest.raises(ValueError, match="unknown scenario 'lcbenc'; did you mean 'lcbench'"):
        YahpoScenario.load("lcbenc")
    if _skip_reason() is None:
        with pytest.raises(ValueError, match="unknown metric"):
            YahpoScenario.load("lcbench", target="accuracy")
        assert YahpoScenario.load("lcbench", target="val_cross_entropy").direction == "minimize"


def test_missing_data_root_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOMETA_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="AUTOMETA_DATA") as error:
        YahpoScenario.load("rbv2_xgboost")
    assert str(tmp_path / "nowhere" / "yahpo" / "rbv2_xgboost") in str(error.value)


def test_sign_test_and_ranks():
    from benchmarks.hpo_yahpo import _rank, sign_test

    assert sign_test(0, 5) == pytest.approx(2 / 32)
    assert sign_test(3, 3) == 1.0
    assert sign_test(10, 0) == pytest.approx(2 / 1024)
    ranks = _rank(np.array([[0.1, 0.5], [0.3, 0.5], [0.0, 0.2]]))
    np.testing.assert_array_equal(ranks, [[2, 2.5], [3, 2.5], [1, 1]])


# --------------------------------------------------------------------------- the benchmark


@needs_yahpo
def test_bench_end_to_end(tmp_path, monkeypatch, capsys):
    from benchmarks import hpo_yahpo

    monkeypatch.setenv("AUTOMETA_CACHE", str(tmp_path / "cache"))
    parser = hpo_yahpo.add_arguments(argparse.ArgumentParser())
    out = tmp_path / "out" / "bench.json"
    args = parser.parse_args(
        [
            "--scenario", "rbv2_xgboost", "--tasks", "12,1501", "--seeds", "2", "--n-trials", "5",
            "--samplers", "random,ws-cmaes,portfolio+tpe,meta-portfolio", "--source-trials", "6",
            "--n-random", "200", "--portfolio-size", "3", "--out", str(out),
        ]
    )
    # a smaller source pool keeps the test fast: the knowledge base is the other *targets'* studies
    monkeypatch.setattr(hpo_yahpo, "_source_pool", lambda bench, targets: list(targets) + ["16"])
    hpo_yahpo.main(args)
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert out.with_suffix(".md").read_text() in printed
    assert "| meta-portfolio |" in printed and "| paired test |" in printed

    samplers = ["random", "ws-cmaes", "portfolio+tpe", "meta-portfolio"]
    assert result["samplers"] == samplers and result["tasks"] == ["12", "1501"] and result["seeds"] == [0, 1]
    assert result["budgets"] == [5] and result["direction"] == "maximize"
    assert len(result["runs"]) == 2 * 2 * len(samplers)
    for run in result["runs"]:
        assert len(run["values"]) == len(run["best_values"]) == 5
        assert run["best_values"] == list(np.maximum.accumulate(run["values"]))
        bounds = result["bounds"][run["task"]]
        regret = hpo_yahpo.normalised_regret(run["best_values"], (bounds["best"], bounds["worst"]))
        assert np.all((regret >= 0) & (regret <= 1)) and np.all(np.diff(regret) <= 0)
    for sampler in samplers:
        stat = result["summary"]["regret"]["5"][sampler]
        assert 0 <= stat["mean"] <= 1 and stat["n"] == 2 and math.isfinite(stat["ci95"])
        assert 1 <= result["summary"]["rank"]["5"][sampler]["mean"] <= len(samplers)
        curve = result["summary"]["mean_curve"][sampler]
        assert len(curve) == 5 and np.all(np.diff(curve) <= 1e-12)
    # the mean rank over samplers is the mean of 1..n
    mean_rank = np.mean([result["summary"]["rank"]["5"][s]["mean"] for s in samplers])
    assert mean_rank == pytest.approx((len(samplers) + 1) / 2)
    paired = result["summary"]["paired"]["5"]["meta-portfolio vs portfolio+tpe"]
    assert paired["n_pairs"] == 4 and paired["wins"] + paired["ties"] + paired["losses"] == 4
    assert 0 <= paired["p_value"] <= 1
    # portfolio+tpe tried the portfolio first, built from the other tasks' cached studies
    bench = YahpoScenario.load("rbv2_xgboost")
    sources = [hpo_yahpo.source_task(bench, task, n_trials=6) for task in ("1501", "16")]
    portfolio = greedy_portfolio(sources, 3)
    first = next(r for r in result["runs"] if (r["task"], r["seed"], r["sampler"]) == ("12", 1, "portfolio+tpe"))
    assert first["values"][:3] == pytest.approx(list(bench.evaluate(portfolio, "12")["acc"]), rel=1e-4)
    cached = sorted((tmp_path / "cache" / "yahpo").glob("rbv2_xgboost-acc-*-tpe6-seed0-*.json"))
    assert [p.name.split("-")[2] for p in cached] == ["12", "1501", "16"]
    # a rerun reads the cached source studies and gives the same numbers
    again = hpo_yahpo.run(
        "rbv2_xgboost", tasks=["12", "1501"], n_trials=5, n_seeds=2, samplers=samplers, source_trials=6,
        n_random=200, portfolio_size=3, verbose=False,
    )
    assert [r["values"] for r in again["runs"]] == [r["values"] for r in result["runs"]]


@needs_yahpo
def test_meta_variant_is_guarded(tmp_path, monkeypatch):
    from benchmarks import hpo_yahpo

    # as if MetaLearnedSampler had no surrogate= argument (autometa before the meta-learned surrogate)
    monkeypatch.setattr(hpo_yahpo, "meta_surrogate_available", lambda: False)
    monkeypatch.setenv("AUTOMETA_CACHE", str(tmp_path))
    assert "meta" not in hpo_yahpo.default_samplers()
    with pytest.raises(RuntimeError, match="no 'surrogate' argument"):
        hpo_yahpo.run("lcbench", tasks=["3945"], n_trials=2, n_seeds=1, samplers=["tpe", "meta"], verbose=False)


@needs_yahpo
def test_bench_rejects_bad_input():
    from benchmarks import hpo_yahpo

    with pytest.raises(ValueError, match="unknown samplers"):
        hpo_yahpo.run("lcbench", tasks=["3945"], samplers=["smac"], verbose=False)
    with pytest.raises(ValueError, match="unknown task"):
        hpo_yahpo.run("lcbench", tasks=["1"], samplers=["random"], verbose=False)
