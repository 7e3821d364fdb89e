"""`autometa hpo bench --suite pmlb`: real fits, leave-data-set-out, regret and trials-to-match-TPE."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from benchmarks.hpo_pmlb import best_so_far, family, near_duplicates, run, summarise

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
    assert re.fullmatch(r"meta trials to match tpe@4: median (\d+(\.\d+)?|>4) over 2 data sets", lines[-1]), lines[-1]
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
    # portfolio+tpe starts with the enqueued portfolio: equal across seeds
    portfolio = [r["values"][:2] for r in data["runs"] if r["sampler"] == "portfolio+tpe" and r["dataset"] == "beta"]
    assert portfolio[0] == portfolio[1]
    assert result["summary"]["budgets"] == [4]


def test_benchmark_user_mistakes(tmp_path):
    data_dir = write_pmlb(tmp_path / "pmlb", {"alpha1": (40, 2)})
    with pytest.raises(ValueError, match="--datasets is required"):
        run(data_dir=data_dir, datasets=[], verbose=False)
    with pytest.raises(ValueError, match="unknown sampler"):
        run(data_dir=data_dir, datasets=["alpha1"], samplers=["smac"], verbose=False)
    with pytest.raises(FileNotFoundError, match="--kb .*no such file"):
        run(data_dir=data_dir, datasets=["alpha1"], kb=str(tmp_path / "none.json"), verbose=False)
