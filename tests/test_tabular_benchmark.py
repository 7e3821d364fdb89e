import numpy as np
import pandas as pd
import pytest

from autometa.benchmarks import tabular
from autometa.cli import main
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
    and one regression data set that the default selection must skip."""
    rng = np.random.default_rng(0)
    counts = [12] * 11 + [4]
    y = np.repeat(np.arange(12), counts)
    centres = rng.normal(scale=3.0, size=(12, 4))
    frame = pd.DataFrame(centres[y] + rng.normal(size=(len(y), 4)), columns=[f"f{i}" for i in range(4)])
    frame["target"] = y
    (tmp_path / "blobs").mkdir()
    frame.to_csv(tmp_path / "blobs" / "blobs.tsv.gz", sep="\t", compression="gzip", index=False)
    reg = pd.DataFrame({"x": rng.normal(size=30), "target": rng.normal(size=30)})
    (tmp_path / "reg").mkdir()
    reg.to_csv(tmp_path / "reg" / "reg.tsv.gz", sep="\t", compression="gzip", index=False)
    pd.DataFrame({"name": ["blobs", "reg", "absent"], "task": ["classification", "regression", "classification"],
                  "n_rows": [len(y), 30, 100], "n_features": [4, 1, 3], "n_classes": [12, np.nan, 20]}
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
