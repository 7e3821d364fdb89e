"""Configurations and values as numbers (hpo.encoding) and the meta-learned surrogate: meta-training, adaptation."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from autometa.hpo.encoding import (
    NumericScale,
    SpaceEncoder,
    choice_index,
    contains,
    FOLD_SCORES_KEY,
    normalised_ranks,
    normalised_values,
    rank_noise,
    standard_error,
)
from autometa.hpo.knowledge_base import TrialRecord
from autometa.hpo.surrogate import DeepKernelRegressor, expected_improvement, meta_train_surrogate


def test_normalised_ranks_and_values_handle_ties_direction_and_rows():
    assert normalised_ranks([2.0, 2.0, 1.0]).tolist() == [0.75, 0.75, 0.0]
    assert normalised_ranks([5.0]).tolist() == [0.0]
    rows = normalised_ranks([[1.0, 3.0, 2.0], [3.0, 3.0, 3.0]], direction="maximize")
    assert rows.tolist() == [[1.0, 0.0, 0.5], [0.5, 0.5, 0.5]]
    assert normalised_values([1.0, 3.0, 2.0], direction="maximize").tolist() == [1.0, 0.0, 0.5]


def test_space_encoder_scales_one_hots_and_marks_missing_and_unknown():
    lr = FloatDistribution(1e-4, 1e-2, log=True)
    records = [
        TrialRecord(0, "COMPLETE", {"lr": 1e-3, "depth": 2, "kind": "a"},
                    {"lr": lr, "depth": IntDistribution(1, 5), "kind": CategoricalDistribution(["a", "b", "c"])}, (0.0,)),
        TrialRecord(1, "COMPLETE", {"lr": 1e-2, "depth": 9, "kind": "b", "clash": 1.0},
                    {"lr": lr, "depth": IntDistribution(1, 9), "kind": CategoricalDistribution(["a", "b", "c"]),
                     "clash": FloatDistribution(0, 1)}, (1.0,)),
        TrialRecord(2, "COMPLETE", {"clash": "x"}, {"clash": CategoricalDistribution(["x"])}, (2.0,)),
    ]
    encoder = SpaceEncoder(records)
    assert set(encoder.numeric) == {"depth", "lr"} and set(encoder.categorical) == {"kind"}  # clash: both kinds
    x = encoder.encode([{"lr": 1e-3, "depth": 5, "kind": "b"}, {"kind": "c"}])
    assert x.shape == (2, encoder.n_columns) == (2, 4)
    assert x[0].tolist() == pytest.approx([0.5, 0.5, 0.0, 1.0])  # depth over the union range 1..9; lr on a log scale
    assert x[1].tolist() == [-1.0, -1.0, 0.0, 0.0]  # missing numerics are -1; "c" was never tried: no column
    assert encoder.knows("lr", FloatDistribution(1e-5, 1.0, log=True))
    assert encoder.knows("kind", CategoricalDistribution(["b", "a"]))
    assert not encoder.knows("kind", CategoricalDistribution(["a", "c"]))  # "c" never tried
    assert not encoder.knows("clash", FloatDistribution(0, 1)) and not encoder.knows("new", FloatDistribution(0, 1))


def test_one_numeric_scale_and_one_notion_of_the_same_choice():
    lr = FloatDistribution(1e-4, 1e-2, log=True)
    assert NumericScale.of(lr).unit([1e-3, 1e-4, 0.0, None, "x"]).tolist()[:2] == pytest.approx([0.5, 0.0])
    assert np.isnan(NumericScale.of(lr).unit([0.0, None, "x"])).all()  # not on a log scale: missing
    assert NumericScale.of(IntDistribution(3, 3)).unit([3, None]).tolist()[0] == 0.0
    # the encoder's union scale is the same scale over the union of the ranges
    encoder = SpaceEncoder([TrialRecord(0, "COMPLETE", {"lr": 1e-3}, {"lr": lr}, (0.0,))])
    assert encoder.encode([{"lr": 1e-3}, {"lr": "a"}])[:, 0].tolist() == pytest.approx([0.5, -1.0])
    # 1, 1.0, True and "1" are four choices; NaN is one
    choices = CategoricalDistribution([1, 1.0, True, "1", float("nan")])
    assert [choice_index(choices, v) for v in (1, 1.0, True, "1", float("nan"), 2)] == [0, 1, 2, 3, 4, -1]
    assert contains(choices, float("nan")) and not contains(CategoricalDistribution([1]), True)


def bowls(n_tasks, n_points, rng):
    """Related functions: normalised ranks of 2-D quadratic bowls with centres near (0.5, 0.5)."""
    xs, ys = [], []
    for _ in range(n_tasks):
        centre = rng.uniform(0.3, 0.7, size=2)
        x = rng.uniform(0, 1, size=(n_points, 2))
        xs.append(x)
        ys.append(normalised_ranks(((x - centre) ** 2).sum(1)))
    return xs, ys


def test_meta_training_then_adapting_beats_an_untrained_model_on_new_tasks():
    rng = np.random.default_rng(0)
    train_x, train_y = bowls(30, 60, rng)
    meta = meta_train_surrogate(train_x, train_y, steps=150, seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = DeepKernelRegressor(2).to_numpy()  # same model, prior and noise at their initial values
    errors = {"meta": [], "untrained": []}
    for x, y in zip(*bowls(20, 55, rng)):
        y = normalised_ranks(y)
        support, query = slice(0, 5), slice(5, None)
        for name, model in (("meta", meta), ("untrained", untrained)):
            prediction, std = model.predict(x[support], y[support], x[query])
            assert np.all(std > 0)
            errors[name].append(np.mean((prediction - y[query]) ** 2))
    print({name: round(float(np.mean(e)), 4) for name, e in errors.items()})
    assert np.mean(errors["meta"]) < 0.6 * np.mean(errors["untrained"])


def test_meta_training_is_deterministic_for_a_seed():
    xs, ys = bowls(4, 20, np.random.default_rng(1))
    a, b = (meta_train_surrogate(xs, ys, steps=10, seed=5) for _ in range(2))
    c = meta_train_surrogate(xs, ys, steps=10, seed=6)
    assert all(np.array_equal(wa, wb) for (wa, _), (wb, _) in zip(a.layers, b.layers))
    assert np.array_equal(a.task_heads, b.task_heads) and a.task_heads.shape[0] == 4
    assert not np.array_equal(a.layers[0][0], c.layers[0][0])


def test_torch_and_numpy_predictions_agree():
    xs, ys = bowls(3, 30, np.random.default_rng(2))
    torch.manual_seed(0)
    model = DeepKernelRegressor(2, n_features=8, hidden=(16,))
    support_x, support_y = torch.tensor(xs[0][:6], dtype=torch.float32), torch.tensor(ys[0][:6], dtype=torch.float32)
    query_x = torch.tensor(xs[0][6:], dtype=torch.float32)
    loc, std = model.predict(support_x, support_y, query_x)
    fast = model.to_numpy()
    loc_np, std_np = fast.predict(xs[0][:6], ys[0][:6], xs[0][6:])
    assert np.allclose(loc.numpy(), loc_np, atol=1e-4) and np.allclose(std.numpy(), std_np, atol=1e-4)
    # the same posterior, in the same order: (mean of the head, Cholesky factor of its precision)
    phi = torch.tensor(fast.features(xs[0][:6]), dtype=torch.float32)
    with torch.no_grad():
        mean, chol = model.posterior(phi, support_y)
    mean_np, chol_np = fast.posterior(fast.features(xs[0][:6]), ys[0][:6])
    assert np.allclose(mean.numpy(), mean_np, rtol=1e-3, atol=1e-3)
    assert np.allclose(chol.numpy(), chol_np, rtol=1e-3, atol=1e-3)
    assert model.adapt(support_x, support_y)(query_x).shape == (len(query_x), 1)


def test_expected_improvement_matches_the_closed_form():
    mean, std = np.array([0.0, 0.5, 1.0]), np.array([0.1, 0.2, 0.3])
    ei = expected_improvement(mean, std, best=0.4)
    z = (0.4 - mean) / std
    cdf = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in z])
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    assert ei == pytest.approx((0.4 - mean) * cdf + std * pdf, abs=1e-6)
    assert ei[0] > ei[1] > ei[2] > 0


def test_standard_error_reads_the_fold_scores_and_rank_noise_is_the_rank_width_of_that_error():
    def trial(attrs):
        return SimpleNamespace(user_attrs=attrs)

    assert standard_error(trial({FOLD_SCORES_KEY: [0.8, 0.9, 1.0, float("nan")]})) == pytest.approx(0.1 / math.sqrt(3))
    assert standard_error(trial({FOLD_SCORES_KEY: [0.9]})) == 0.0
    assert standard_error(trial({})) == 0.0
    values = [0.50, 0.60, 0.61, 0.62, 0.63, 0.90]
    noise = rank_noise(values, [0.0, 0.02, 0.0, 0.0, 0.0, 0.05])
    # 0.60 +- 0.02 spans 0.61 and 0.62: two of the five others, half of that in rank units
    assert noise.tolist() == pytest.approx([0.0, 0.2, 0.0, 0.0, 0.0, 0.0])
    assert rank_noise([0.5], [0.1]).tolist() == [0.0]
    assert rank_noise([0.5, 0.6], [np.nan, 1.0]).tolist() == [0.0, 0.5]


def test_a_noisy_target_pulls_the_posterior_less_and_the_difference_bound_ties_near_points():
    xs, ys = bowls(6, 30, np.random.default_rng(3))
    model = meta_train_surrogate(xs, ys, steps=30, seed=0)
    x, y = xs[0][:8], ys[0][:8].copy()
    y[0] = 1.0  # an outlier at the first point
    quiet, _ = model.predict(x, y, x[:1])
    noisy, _ = model.predict(x, y, x[:1], noise=np.r_[1.0, np.zeros(7)])
    assert abs(noisy[0] - 1.0) > abs(quiet[0] - 1.0)  # its own large noise: the model trusts it less
    # no per-point noise is the learned noise alone
    assert np.allclose(model.predict(x, y, xs[0][8:])[0], model.predict(x, y, xs[0][8:], noise=np.zeros(8))[0])
    near = x[:1] + 1e-4
    far = xs[0][20:21] + 0.5
    bound = model.difference_bound(x, y, np.concatenate([x[:1], near, far]), x[:1])
    assert bound.shape == (3, 1)
    assert bound[0, 0] < 1e-6 < bound[1, 0] < bound[2, 0]
    mean, _ = model.predict(x, y, np.concatenate([far, x[:1]]))
    assert bound[2, 0] >= abs(mean[0] - mean[1])
