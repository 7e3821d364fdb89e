"""``autometa bench fewshot-tabular`` (benchmarks.fewshot_tabular) on tiny data."""

import numpy as np
import pytest

from autometa import FewShotClassifier
from autometa.apps.cli import main
from benchmarks import fewshot_tabular as bench

pytest.importorskip("pmlb", reason="pmlb is an optional extra: pip install 'autometa[pmlb]'")

from tests.test_tabular_benchmark import fake_cache  # noqa: F401  (the fixture)


def test_digits_splits_are_five_meta_and_five_new_classes(fake_cache):  # noqa: F811
    Xm, ym, _, yn = bench.load("digits:even")
    assert set(ym) == {0, 2, 4, 6, 8} and set(yn) == {1, 3, 5, 7, 9}
    assert Xm.max() <= 1.0
    # the fake cache's only classification set has 12 classes: design group, not held out
    assert bench.heldout_datasets(fake_cache) == ["digits:lo", "digits:hi", "digits:even", "digits:odd"]
    assert bench.design_datasets(fake_cache) == ["blobs"]


def test_episodes_are_seeded_and_the_same_for_every_method():
    _, _, Xn, yn = bench.load("digits:lo")
    a, b = (bench.episodes(Xn, yn, 5, 3, 0, "digits:lo") for _ in range(2))
    for (sx, sy, qx, qy), (sx2, sy2, qx2, qy2) in zip(a, b):
        np.testing.assert_array_equal(sx, sx2)
        np.testing.assert_array_equal(qy, qy2)
    _, sy, _, qy = a[0]
    assert len(sy) == 25 and np.unique(sy, return_counts=True)[1].tolist() == [5] * 5 and len(qy) == 75


def test_knn_leave_one_out_picks_k_on_the_support():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 10)
    X = rng.normal(size=(20, 2)) + 3 * y[:, None]
    model = bench.KNNLeaveOneOut().fit(X, y)
    assert model.model_.n_neighbors in (1, 3, 5, 7, 9)
    assert (model.predict(X) == y).mean() > 0.9
    assert bench.KNNLeaveOneOut().fit(X[[0, 10]], y[[0, 10]]).model_.n_neighbors == 1


def test_summary_counts_wins_ties_losses_and_cells_below(capsys):
    ones, zeros = np.ones(50), np.zeros(50)
    noisy = np.tile([0.0, 1.0], 25)
    base = {(b, k): 0.5 * ones for b in bench.BASELINES for k in bench.SHOTS}
    results = {"win": {"ours": {k: ones for k in bench.SHOTS}, "base": base},
               "loss": {"ours": {k: zeros for k in bench.SHOTS}, "base": base},
               "tie": {"ours": {k: noisy for k in bench.SHOTS}, "base": base}}
    summary = bench.summarise(results, "test")
    assert summary[1]["wtl"] == {"W": 1, "T": 1, "L": 1}
    assert summary[5]["below_2pt"] == 1 and summary[10]["ours"] == pytest.approx(0.5)
    assert "cells more than 2 points below the best baseline: 3/9" in capsys.readouterr().out


def test_run_on_fake_cache_reuses_cached_baselines(fake_cache, tmp_path, capsys):  # noqa: F811
    small = FewShotClassifier("protonet", n_query=2, meta_steps=5, random_state=0, device="cpu")  # fast
    first = bench.run("design", n_episodes=2, data_dir=fake_cache, cache_dir=tmp_path, figure=False,
                      estimator=small)
    assert list(first["results"]) == ["blobs"] and len(list(tmp_path.glob("blobs_2_0.pkl"))) == 1
    second = bench.run("design", n_episodes=2, data_dir=fake_cache, cache_dir=tmp_path, figure=False,
                       estimator=small)
    for k in bench.SHOTS:
        np.testing.assert_array_equal(first["results"]["blobs"]["ours"][k], second["results"]["blobs"]["ours"][k])
    out = capsys.readouterr().out
    assert "design group" in out and "W/T/L" in out


def test_cli_registers_fewshot_tabular(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "fewshot-tabular", "--help"])
    assert "--group" in capsys.readouterr().out
