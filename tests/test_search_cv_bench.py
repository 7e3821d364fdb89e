"""`autometa bench search-cv`: MetaSearchCV against the other tuners on held-out data sets, resumable."""

import json

import pytest

from benchmarks.search_cv_pmlb import report, run
from tests.test_hpo_pmlb import write_pmlb

pytest.importorskip("pmlb", reason="the benchmark reads PMLB's cache layout through the pmlb package")


def test_tiny_benchmark_runs_every_contender_and_resumes(tmp_path, capsys):
    pytest.importorskip("optuna_integration")
    data_dir = write_pmlb(tmp_path / "pmlb", {"alpha1": (80, 3), "beta": (90, 4)})
    cache = tmp_path / "runs.jsonl"
    contenders = ["default", "meta@2", "optuna@2"]
    result = run(estimator="hist_gradient_boosting", data_dir=data_dir, datasets=["alpha1", "beta"],
                 contenders=contenders, max_rows=None, cv=2, cache=cache, verbose=False)
    runs = result["runs"]
    assert len(runs) == 6 and {r["contender"] for r in runs} == set(contenders)
    assert all(0.0 <= r["test"] <= 1.0 and r["wall_s"] >= 0 for r in runs)
    fits = [r["fits"] for r in runs if r["dataset"] == "alpha1"]
    confirmed = next(r for r in runs if r["dataset"] == "alpha1" and r["contender"] == "meta@2")["confirm"]
    assert fits == [1, 5 + (4 if confirmed else 0), 5]  # the confirmation's two models on two new folds
    # the warm start never sees the target or its near-duplicates (PMLB's real ones here)
    meta = [r for r in runs if r["contender"] == "meta@2"]
    assert all(r["left_out"] == [] for r in meta)
    # the incumbent against the default, fold by fold, and the one not kept scored on test too
    for r in meta:
        assert len(r["folds_default"]) == len(r["folds_incumbent"]) == 2 and r["kept"] in ("default", "incumbent")
        default = next(d for d in runs if d["contender"] == "default" and d["dataset"] == r["dataset"])
        if r["kept"] == "default":
            assert r["test"] == default["test"] and 0.0 <= r["test_incumbent"] <= 1.0
        else:
            assert r["test_incumbent"] is None and sum(r["folds_incumbent"]) > sum(r["folds_default"])
        if r["confirm"] is not None:  # run only when the incumbent led on cv's folds
            assert sum(r["folds_incumbent"]) > sum(r["folds_default"]) and len(r["confirm"]["incumbent"]) == 2
            ahead = sum(r["confirm"]["incumbent"]) > sum(r["confirm"]["estimator"])
            assert r["kept"] == ("incumbent" if ahead else "default")
    out = capsys.readouterr().out
    assert "| meta@2 |" in out and "wins / ties / losses" in out and "worse than the untuned default" in out
    assert len(cache.read_text().splitlines()) == 6
    # a rerun with the same cache runs nothing again and reports the same numbers
    again = run(estimator="hist_gradient_boosting", data_dir=data_dir, datasets=["alpha1", "beta"],
                contenders=contenders, max_rows=None, cv=2, cache=cache, verbose=False)
    assert [r["test"] for r in again["runs"]] == [r["test"] for r in runs]
    assert len(cache.read_text().splitlines()) == 6
    assert json.loads(cache.read_text().splitlines()[0])["estimator"] == "hist_gradient_boosting"


def test_report_counts_wins_and_default_losses():
    runs = [{"dataset": d, "seed": 0, "contender": c, "test": t, "fits": 1, "wall_s": 1.0, "cpu_s": 1.0}
            for d, c, t in [("a", "default", 0.80), ("a", "meta@10", 0.85), ("b", "default", 0.90),
                            ("b", "meta@10", 0.85), ("c", "default", 0.70), ("c", "meta@10", 0.70)]]
    lines = report(runs, ["default", "meta@10"], "lightgbm", 5, 1000, 1)
    assert "| default | -0.0000 | 1 / 1 / 1 | 1.000 |" in lines
    assert any("on 1 of 3 data sets (33%): b" in line for line in lines)
    assert not any("kept the estimator as given" in line for line in lines)  # runs without the fold record


def test_report_says_how_often_the_default_was_kept_and_what_the_passed_over_incumbents_scored():
    runs = [{"dataset": d, "seed": 0, "contender": "default", "test": t, "fits": 1, "wall_s": 1.0, "cpu_s": 1.0}
            for d, t in [("a", 0.80), ("b", 0.90), ("c", 0.70)]]
    for d, kept, test, passed in [("a", "incumbent", 0.85, None), ("b", "default", 0.90, 0.87),
                                  ("c", "default", 0.70, 0.72)]:
        runs.append({"dataset": d, "seed": 0, "contender": "meta@10", "test": test, "fits": 51, "wall_s": 1.0,
                     "cpu_s": 1.0, "kept": kept, "test_incumbent": passed})
    lines = report(runs, ["default", "meta@10"], "lightgbm", 5, 1000, 1)
    assert any(line.startswith("meta@10 kept the estimator as given in 2 of 3 runs; the incumbents it passed over "
                               "scored -0.50 points against it on test (better / tied / worse 1 / 0 / 1; more "
                               "than 1 point worse: 1)") for line in lines), lines


def test_report_compares_the_confirmation_with_the_rule_of_the_means_on_the_same_runs():
    runs = [{"dataset": d, "seed": 0, "contender": "default", "test": t, "fits": 1, "wall_s": 1.0, "cpu_s": 1.0}
            for d, t in [("a", 0.80), ("b", 0.90), ("c", 0.70)]]
    # a: the incumbent led and was confirmed; b: it led on cv's folds, not on the new ones, and scored 0.80 on
    # test; c: the default led on cv's folds already
    for d, kept, test, passed, folds, confirm in [
            ("a", "incumbent", 0.85, None, ([0.7, 0.7], [0.8, 0.8]), {"estimator": [0.7], "incumbent": [0.8]}),
            ("b", "default", 0.90, 0.80, ([0.7, 0.7], [0.8, 0.8]), {"estimator": [0.8], "incumbent": [0.7]}),
            ("c", "default", 0.70, 0.72, ([0.8, 0.8], [0.7, 0.7]), None)]:
        runs.append({"dataset": d, "seed": 0, "contender": "meta@10", "test": test, "fits": 51, "wall_s": 1.0,
                     "cpu_s": 1.0, "kept": kept, "test_incumbent": passed, "folds_default": folds[0],
                     "folds_incumbent": folds[1], "confirm": confirm})
    lines = report(runs, ["default", "meta@10"], "lightgbm", 5, 1000, 1)
    assert ("meta@10 under the rule of the means on the same runs (no confirmation): mean test 0.7833 (+3.33 points "
            "for the record's rule; per data set 1 / 2 / 0, Wilcoxon p -); worse than the untuned default by more than 1 point on 1 of 3 data sets; the "
            "confirmation ran in 2 runs (the incumbent led on cv's folds) and kept the default in 1, whose "
            "incumbents scored -10.00 points against it on test (better / tied / worse 0 / 0 / 1)") in lines, lines
    # pooled over both sets of folds, b's incumbent leads (0.767 against 0.733) and would have been kept
    assert ("meta@10 with the confirmation decided on cv's and the new folds together: mean test 0.7833 (+3.33 "
            "points for the record's rule; per data set 1 / 2 / 0, Wilcoxon p -); worse than the untuned default "
            "by more than 1 point on 1 of 3 data sets; it chooses otherwise than the record in 1 of the 2 confirmed "
            "runs") in lines, lines


def test_rejects_regression_spaces(tmp_path):
    data_dir = write_pmlb(tmp_path / "pmlb", {"alpha1": (40, 2)})
    with pytest.raises(ValueError, match="search-cv benchmarks classifiers"):
        run(estimator="ridge", data_dir=data_dir, datasets=["alpha1"], verbose=False)


def test_lightgbm_tuner_contender_counts_its_fits(tmp_path):
    pytest.importorskip("lightgbm")
    pytest.importorskip("optuna_integration")
    data_dir = write_pmlb(tmp_path / "pmlb", {"alpha1": (80, 3)})
    result = run(estimator="lightgbm", data_dir=data_dir, datasets=["alpha1"], contenders=["default", "lgbm-tuner"],
                 max_rows=None, cv=2, verbose=False)
    tuner = next(r for r in result["runs"] if r["contender"] == "lgbm-tuner")
    assert tuner["fits"] > 2 * 40 + 1 and tuner["fits"] % 2 == 1  # its stepwise default budget, 2 folds each
    assert 0.0 <= tuner["test"] <= 1.0


def test_held_out_group_is_every_other_family_representative(tmp_path):
    data_dir = write_pmlb(tmp_path / "pmlb", {"alpha1": (80, 3), "alpha2": (60, 3), "beta": (90, 4),
                                              "gamma": (70, 5)})
    design = run(estimator="hist_gradient_boosting", data_dir=data_dir, n_datasets=2, contenders=["default"],
                 max_rows=None, cv=2, verbose=False)["targets"]
    held_out = run(estimator="hist_gradient_boosting", data_dir=data_dir, n_datasets=2, group="held-out",
                   contenders=["default"], max_rows=None, cv=2, verbose=False)["targets"]
    assert len(design) == 2 and held_out and not set(design) & set(held_out)
    assert sorted(design + held_out) == ["alpha1", "beta", "gamma"]  # one per family: alpha1 is the larger
    with pytest.raises(ValueError, match="unknown group 'test'"):
        run(estimator="hist_gradient_boosting", data_dir=data_dir, group="test", verbose=False)
