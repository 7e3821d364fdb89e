"""Task descriptors: fixed keys, determinism, robustness, known values, real data, speed."""

import math
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest

from autometa.data._paths import data_root
from autometa.hpo import METAFEATURES, compute_metafeatures, metafeature_vector

PMLB = data_root() / "pmlb" if data_root() is not None else None
needs_pmlb = pytest.mark.skipif(
    PMLB is None or not (PMLB / "index.csv").is_file(),
    reason="the shared PMLB cache (../shared/data/pmlb or $AUTOMETA_DATA/pmlb) is absent",
)
LANDMARKERS = [name for name in METAFEATURES if name.startswith("landmark_")]


def blobs(n_rows=200, n_features=5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n_rows)
    return rng.normal(size=(n_rows, n_features)) + y[:, None], y


def compute(X, y, **kwargs):
    """compute_metafeatures that fails on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return compute_metafeatures(X, y, **kwargs)


def assert_well_formed(features):
    assert list(features) == list(METAFEATURES)
    assert all(type(value) is float for value in features.values())


def test_fixed_keys_and_float_values_for_both_tasks():
    X, y = blobs()
    classification = compute(X, y)
    regression = compute(X, X[:, 0] + 0.1 * y, task="regression")
    for features in (classification, regression):
        assert_well_formed(features)
    assert classification["is_classification"] == 1.0 and regression["is_classification"] == 0.0
    assert math.isnan(classification["target_skewness"]) and math.isnan(regression["n_classes"])
    assert math.isnan(classification["landmark_linear_r2"]) and math.isnan(regression["landmark_1nn_accuracy"])


def test_every_metafeature_is_documented():
    import autometa.hpo.metafeatures as module

    for name, line in METAFEATURES.items():
        assert line and f"``{name}``" in module.__doc__


def test_deterministic_given_random_state_and_subsampled():
    X, y = blobs(n_rows=600)
    first = compute(X, y, random_state=3, max_rows=100)
    again = compute(X, y, random_state=3, max_rows=100)
    other = compute(X, y, random_state=4, max_rows=100)
    np.testing.assert_array_equal(metafeature_vector(first), metafeature_vector(again))
    assert first["landmark_1nn_accuracy"] != other["landmark_1nn_accuracy"]
    # counts use every row, whatever the subsample
    assert first["log10_n_rows"] == pytest.approx(math.log10(600))


def test_metafeature_vector_orders_and_fills_missing_names():
    X, y = blobs()
    features = compute(X, y)
    vector = metafeature_vector(features)
    assert vector.shape == (len(METAFEATURES),) and vector.dtype == np.float64
    np.testing.assert_array_equal(vector, [features[name] for name in METAFEATURES])
    older = metafeature_vector({"log10_n_rows": 2.0, "not_a_metafeature": 1.0})
    assert older[list(METAFEATURES).index("log10_n_rows")] == 2.0
    assert np.isnan(older).sum() == len(METAFEATURES) - 1
    with pytest.raises(TypeError):
        metafeature_vector([1.0, 2.0])


def test_balanced_two_classes_have_entropy_one():
    X, y = blobs(n_rows=100)
    features = compute(X, np.repeat([0, 1], 50))
    assert features["class_entropy"] == pytest.approx(1.0)
    assert features["minority_majority_ratio"] == 1.0
    assert features["majority_class_fraction"] == 0.5


def test_imbalanced_classes():
    X, _ = blobs(n_rows=100)
    features = compute(X, np.repeat([0, 1], [90, 10]))
    assert features["minority_majority_ratio"] == pytest.approx(10 / 90)
    assert features["majority_class_fraction"] == pytest.approx(0.9)
    expected = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)
    assert features["class_entropy"] == pytest.approx(expected)


def test_constant_feature_is_counted_and_ignored():
    X, y = blobs(n_rows=100, n_features=3)
    with_constant = np.column_stack([X, np.full(100, 0.1)])
    features = compute(with_constant, y)
    assert features["frac_constant"] == pytest.approx(0.25)
    # the constant column adds nothing to the moments or the correlations
    plain = compute(X, y)
    for name in ("skewness_mean", "kurtosis_std", "mean_abs_correlation", "pca_first_component"):
        assert features[name] == pytest.approx(plain[name])


def test_separable_single_feature_gives_perfect_stump():
    x = np.concatenate([np.arange(20.0), 100 + np.arange(20.0)])
    y = np.repeat([0, 1], 20)
    features = compute(x[:, None], y)
    assert features["landmark_stump_accuracy"] == 1.0
    assert features["landmark_1nn_accuracy"] == 1.0
    assert features["pca_first_component"] == pytest.approx(1.0)
    assert features["pca_frac_components_95"] == 1.0
    assert math.isnan(features["mean_abs_correlation"])


def test_linear_target_gives_linear_r2_one():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    features = compute(X, X @ [1.0, -2.0, 0.5, 3.0], task="regression")
    assert features["landmark_linear_r2"] == pytest.approx(1.0)
    assert features["landmark_stump_r2"] < 0.9


def test_duplicated_columns_are_perfectly_correlated():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 1))
    features = compute(np.hstack([x, 2 * x + 1, -x]), rng.integers(0, 2, 200))
    assert features["mean_abs_correlation"] == pytest.approx(1.0)
    assert features["pca_frac_components_95"] == pytest.approx(1 / 3)


def test_nan_and_inf_are_missing():
    X, y = blobs(n_rows=100, n_features=4)
    X[::10, 0] = np.nan
    X[5, 1] = np.inf
    X[7, 1] = -np.inf
    features = compute(X, y)
    assert features["frac_missing_features"] == 0.5
    assert features["frac_missing_values"] == pytest.approx(12 / 400)
    # missing values are ignored or imputed: what clean data defines stays defined
    clean = metafeature_vector(compute(*blobs(n_rows=100, n_features=4)))
    assert np.isfinite(metafeature_vector(features)[np.isfinite(clean)]).all()


def test_all_missing_column_counts_as_constant_and_missing():
    X, y = blobs(n_rows=50, n_features=2)
    X = np.column_stack([X, np.full(50, np.nan)])
    features = compute(X, y)
    assert features["frac_constant"] == pytest.approx(1 / 3)
    assert features["frac_missing_features"] == pytest.approx(1 / 3)
    assert np.isfinite(features["landmark_naive_bayes_accuracy"])


def test_input_is_not_modified():
    X, y = blobs(n_rows=50)
    X[0, 0] = np.inf
    before = X.copy()
    compute(X, y)
    np.testing.assert_array_equal(X, before)


def test_pandas_categorical_object_and_bool_columns():
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
            "city": rng.choice(["Oslo", "Lima", None], n).astype(object),
            "flag": rng.integers(0, 2, n).astype(bool),
            "numbers_as_text": rng.integers(0, 5, n).astype(str).astype(object),
            "count": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 9, n)), dtype="Int64"),
        }
    )
    y = pd.Series(rng.choice(["yes", "no"], n), index=np.arange(n) + 1000)
    features = compute(frame, y)
    assert_well_formed(features)
    assert features["frac_categorical"] == pytest.approx(3 / 6)
    assert features["frac_missing_features"] == pytest.approx(2 / 6)
    assert features["n_classes"] == 2.0
    assert all(np.isfinite(features[name]) for name in LANDMARKERS[:3])
    # the same frame as a numpy object array gives the same column types
    assert compute(frame.to_numpy(), y.to_numpy())["frac_categorical"] == features["frac_categorical"]


def test_string_labels_and_missing_labels():
    X, y = blobs(n_rows=60)
    labels = np.where(y == 1, "cat", "dog").astype(object)
    labels[:6] = None
    features = compute(X, labels)
    assert features["n_classes"] == 2.0
    assert features["log10_n_rows"] == pytest.approx(math.log10(54))


def test_one_row_per_class():
    rng = np.random.default_rng(0)
    features = compute(rng.normal(size=(12, 3)), np.arange(12))
    assert features["n_classes"] == 12.0
    assert features["class_entropy"] == pytest.approx(1.0)
    # no training row shares a test row's class: every landmarker scores 0
    assert features["landmark_1nn_accuracy"] == 0.0


def test_single_class():
    X, _ = blobs(n_rows=30)
    features = compute(X, np.zeros(30, dtype=int))
    assert features["n_classes"] == 1.0
    assert math.isnan(features["class_entropy"])
    assert features["landmark_stump_accuracy"] == 1.0


@pytest.mark.parametrize("n_rows", [1, 2, 5, 9])
def test_tiny_data_sets_have_nan_landmarkers(n_rows):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_rows, 3))
    for task, y in (("classification", np.arange(n_rows) % 2), ("regression", rng.normal(size=n_rows))):
        features = compute(X, y, task=task)
        assert_well_formed(features)
        assert all(math.isnan(features[name]) for name in LANDMARKERS)
        assert features["log10_n_rows"] == pytest.approx(math.log10(n_rows))


def test_constant_regression_target():
    X, _ = blobs(n_rows=40)
    features = compute(X, np.full(40, 3.0), task="regression")
    assert math.isnan(features["target_skewness"]) and math.isnan(features["landmark_linear_r2"])


def test_auto_task_rule():
    X, _ = blobs(n_rows=100)
    rng = np.random.default_rng(0)
    assert compute(X, rng.normal(size=100))["is_classification"] == 0.0
    assert compute(X, rng.integers(0, 3, 100))["is_classification"] == 1.0
    assert compute(X, np.arange(100))["is_classification"] == 0.0
    assert compute(X, [0.5, None] * 50)["is_classification"] == 0.0
    assert compute(X, rng.integers(0, 3, 100).astype(float), task="classification")["n_classes"] == 3.0


@pytest.mark.parametrize(
    "X, y, kwargs, message",
    [
        (np.zeros(5), np.zeros(5), {}, "2-d"),
        (np.zeros((5, 0)), np.zeros(5), {}, "no column"),
        (np.zeros((5, 2)), np.zeros(4), {}, "y has 4"),
        (np.zeros((5, 2)), np.zeros(5), {"task": "ranking"}, "task must be"),
        (np.zeros((5, 2)), np.array(["a"] * 5), {"task": "regression"}, "numeric y"),
        (np.zeros((3, 2)), [None, None, None], {}, "no row has a label"),
    ],
)
def test_invalid_input_is_a_clear_error(X, y, kwargs, message):
    with pytest.raises(ValueError, match=message):
        compute_metafeatures(X, y, **kwargs)


def test_importing_metafeatures_does_not_import_optuna():
    code = "import sys, autometa.hpo.metafeatures, autometa.hpo; print('optuna' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@needs_pmlb
@pytest.mark.parametrize(
    "name, task",
    [("iris", "classification"), ("breast-w", "classification"), ("1089_USCrime", "regression")],
)
def test_real_pmlb_data_sets(name, task):
    from autometa.data import load_pmlb

    X, y = load_pmlb(name, download=False)
    features = compute(X, y)
    assert features["is_classification"] == float(task == "classification")
    core = [n for n in METAFEATURES if n.startswith(("log10", "frac", "skewness", "kurtosis", "pca", "mean_abs"))]
    if task == "classification":
        core += ["n_classes", "class_entropy", *LANDMARKERS[:3]]
    else:
        core += ["target_skewness", "target_kurtosis", *LANDMARKERS[3:]]
    assert all(np.isfinite(features[n]) for n in core), {n: features[n] for n in core}
    if name == "iris":
        assert features["n_classes"] == 3.0 and features["class_entropy"] == pytest.approx(1.0)
        assert features["landmark_1nn_accuracy"] > 0.9


def test_speed_on_100k_by_100():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100_000, 100))
    y = (X[:, 0] + rng.normal(size=100_000) > 0).astype(int)
    start = time.perf_counter()
    compute_metafeatures(X, y)
    elapsed = time.perf_counter() - start
    print(f"compute_metafeatures on 100,000 x 100 floats: {elapsed:.2f} s")
    # the target is 2 s; the margin absorbs a loaded test machine
    assert elapsed < 6.0
