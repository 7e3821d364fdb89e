import numpy as np
import pandas as pd
import pytest

from benchmarks import tabular
from autometa.apps.cli import main
from autometa.data._paths import data_root

pytest.importorskip("pmlb", reason="pmlb is an optional extra: pip install 'autometa[pmlb]'")

SHARED = data_root() / "pmlb" if data_root() is not None else None
needs_shared = pytest.mark.skipif(
    SHARED is None or not (SHARED / "movement_libras" / "movement_libras.tsv.gz").is_file(),
    reason="the shared PMLB cache (../shared/data/pmlb or $AUTOMETA_DATA/pmlb) with movement_libras is absent",
)

TINY = {"n_episodes": 4, "meta_steps": 3, "shots": (1, 2)}


@pytest.fixture
def fake_cache(tmp_path):
    """A PMLB cache of one 12-class data set ``blobs`` (12 rows per class, class 11 too small)
    and one regression data set ``reg`` (300 rows, 3 features) that the classification selection must skip."""
    rng = np.random.default_rng(0)
    counts = [12] * 11 + [4]
    y = np.repeat(np.arange(12), counts)
    centres = rng.normal(scale=3.0, size=(12, 4))
    frame = pd.DataFrame(centres[y] + rng.normal(size=(len(y), 4)), columns=[f"f{i}" for i in range(4)])
    frame["target"] = y
    (tmp_path / "blobs").mkdir()
    frame.to_csv(tmp_path / "blobs" / "blobs.tsv.gz", sep="\t", compression="gzip", index=False)
    x = rng.uniform(-2, 2, size=(300, 3))
    reg = pd.DataFrame(x, columns=["a", "b", "c"])
    reg["target"] = np.sin(x[:, 0]) * x[:, 1] + 0.1 * rng.normal(size=300)
    (tmp_path / "reg").mkdir()
    reg.to_csv(tmp_path / "reg" / "reg.tsv.gz", sep="\t", compression="gzip", index=False)
    pd.DataFrame({"name": ["blobs", "reg", "absent"], "task": ["classification", "regression", "classification"],
                  "n_rows": [len(y), 300, 100], "n_features": [4, 3, 3], "n_classes": [12, np.nan, 20]}
                 ).to_csv(tmp_path / "index.csv", index=False)
    return tmp_path


def _check_rows(rows, datasets, algorithms, shots, n_episodes):
    methods = [*algorithms, *tabular.BASELINES]
    assert {(r["dataset"], r["method"], r["k_shot"]) for r in rows} == {
        (d, m, k) for d in datasets for m in methods for k in shots}
    assert len(rows) == len(datasets) * len(methods) * len(shots)
    for row in rows:
        assert row["kind"] == ("autometa" if row["method"] in algorithms else "baseline")
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["ci"] >= 0.0
        assert row["n_way"] == 5 and row["n_episodes"] == n_episodes and 1 <= row["n_query"] <= 15


def test_default_selection_and_run_on_fake_cache(fake_cache, capsys):
    # only local classification data sets with >= 10 classes
    assert tabular.default_datasets(fake_cache) == ["blobs"]
    rows = tabular.run(algorithms=("protonet", "maml"), data_dir=fake_cache, seed=1, **TINY)
    _check_rows(rows, ["blobs"], ("protonet", "maml"), TINY["shots"], TINY["n_episodes"])
    out = capsys.readouterr().out
    # class 11 (4 rows) is dropped; 11 classes: 5 new (>= n_way), 6 to meta-train on; 12 - 2 = 10 queries
    assert "blobs: 11 classes (6 meta-train, 5 new)" in out
    assert all(r["n_query"] == 10 for r in rows)
    assert "machine:" in out and "average over 1 data sets" in out and "K=1: best autometa" in out


def test_same_seed_same_result(fake_cache, capsys):
    first = tabular.run(algorithms=("protonet",), data_dir=fake_cache, **TINY)
    second = tabular.run(algorithms=("protonet",), data_dir=fake_cache, **TINY)
    assert [r["accuracy"] for r in first] == [r["accuracy"] for r in second]


def test_data_set_with_too_few_classes_is_skipped(fake_cache, capsys):
    rows = tabular.run(datasets=["blobs"], algorithms=("protonet",), data_dir=fake_cache, n_way=6, **TINY)
    assert rows == []
    assert "blobs: skipped" in capsys.readouterr().out


def test_cli_on_fake_cache(fake_cache, capsys):
    assert main(["bench", "tabular", "--data", str(fake_cache), "--episodes", "3", "--meta-steps", "2",
                 "--algorithms", "matching", "--shots", "1", "--device", "cpu", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "blobs:" in out and "matching" in out and "forest" in out


def test_cli_reports_an_empty_cache(tmp_path, capsys):
    pd.DataFrame({"name": [], "task": [], "n_rows": [], "n_features": [], "n_classes": []}).to_csv(
        tmp_path / "index.csv", index=False)
    assert main(["bench", "tabular", "--data", str(tmp_path), "--device", "cpu"]) == 2
    assert "no PMLB classification data set" in capsys.readouterr().err


@needs_shared
def test_run_on_a_shared_pmlb_data_set(capsys):
    rows = tabular.run(datasets=["movement_libras"], algorithms=("protonet", "reptile"), **TINY)
    _check_rows(rows, ["movement_libras"], ("protonet", "reptile"), TINY["shots"], TINY["n_episodes"])
    assert "movement_libras: 15 classes (9 meta-train, 6 new)" in capsys.readouterr().out


REG_TINY = {"n_tasks": 4, "meta_steps": 2, "shots": (2, 3), "n_groups": 4, "max_rows": 200}


def _check_regression_rows(rows, datasets, algorithms, shots, n_tasks):
    methods = [*algorithms, *tabular.REGRESSION_BASELINES]
    assert {(r["dataset"], r["method"], r["k_shot"]) for r in rows} == {
        (d, m, k) for d in datasets for m in methods for k in shots}
    assert len(rows) == len(datasets) * len(methods) * len(shots)
    for row in rows:
        assert row["kind"] == ("autometa" if row["method"] in algorithms else "baseline")
        assert np.isfinite(row["mse"]) and row["mse"] >= 0.0 and row["ci"] >= 0.0
        assert row["n_tasks"] == n_tasks


def test_regression_run_on_sinusoids_and_fake_cache(fake_cache, capsys):
    # none of the default PMLB regression data sets is in the fake cache: the sinusoids only
    assert tabular.default_regression_datasets(fake_cache) == ["sinusoid"]
    rows = tabular.run_regression(datasets=["sinusoid", "reg"], data_dir=fake_cache, seed=1, **REG_TINY)
    _check_regression_rows(rows, ["sinusoid", "reg"], tabular.REGRESSION_ALGORITHMS, REG_TINY["shots"],
                           REG_TINY["n_tasks"])
    assert {r["n_query"] for r in rows if r["dataset"] == "sinusoid"} == {tabular.N_QUERY_SINUSOID}
    assert all(1 <= r["n_query"] <= tabular.MAX_QUERY_REGRESSION for r in rows if r["dataset"] == "reg")
    out = capsys.readouterr().out
    assert "reg: 200 of 300 rows, 3 features" in out and "machine:" in out
    assert "average over 1 PMLB data sets" in out
    assert "sinusoid K=2: best autometa" in out and "PMLB average K=3: best autometa" in out


def test_regression_same_seed_same_result(fake_cache, capsys):
    kwargs = dict(datasets=["reg"], algorithms=("reptile",), data_dir=fake_cache, **REG_TINY)
    first, second = tabular.run_regression(**kwargs), tabular.run_regression(**kwargs)
    assert [r["mse"] for r in first] == [r["mse"] for r in second]


def test_regression_data_set_with_too_small_groups_is_skipped(fake_cache, capsys):
    # 30 rows in 10 groups: at most one group can reach the 2 + 10 rows an episode needs
    rows = tabular.run_regression(datasets=["reg"], data_dir=fake_cache, n_tasks=2, meta_steps=1, shots=(2,),
                                  n_groups=10, max_rows=30)
    assert rows == []
    assert "reg: skipped" in capsys.readouterr().out


def test_cli_regression_on_fake_cache(fake_cache, capsys):
    assert main(["bench", "tabular", "--task", "regression", "--data", str(fake_cache), "--datasets", "reg",
                 "--episodes", "3", "--meta-steps", "2", "--algorithms", "maml", "--shots", "2", "--groups", "3",
                 "--device", "cpu", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "reg:" in out and "maml" in out and "ridge" in out and "knn" in out
    assert "PMLB average K=2: best autometa maml" in out
