"""FewShotClassifier and FewShotRegressor: meta-learning behind the scikit-learn API."""

import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import blobs
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import autometa.estimators.sklearn_api as estimators
from autometa import FewShotClassifier, FewShotRegressor
from autometa.meta import MAML

X_BLOBS, Y_BLOBS = blobs()
OLD = Y_BLOBS < 60  # meta-training classes; 60-99 are new


def new_tasks(n_tasks, n_way, k_shot, n_query=10, seed=0):
    """Support and query sets of N-way K-shot tasks over the new classes."""
    rng = np.random.default_rng(seed)
    for _ in range(n_tasks):
        classes = rng.choice(np.arange(60, 100), n_way, replace=False)
        support, query = [], []
        for c in classes:
            rows = rng.permutation(np.flatnonzero(Y_BLOBS == c))
            support += list(rows[:k_shot])
            query += list(rows[k_shot : k_shot + n_query])
        yield X_BLOBS[support], Y_BLOBS[support], X_BLOBS[query], Y_BLOBS[query]


def mean_accuracy(estimator, tasks):
    return np.mean([estimator.fit(Xs, ys).score(Xq, yq) for Xs, ys, Xq, yq in tasks])


@pytest.fixture(scope="module")
def protonet():
    return FewShotClassifier("protonet", meta_steps=300, random_state=0, device="cpu").meta_fit(
        X_BLOBS[OLD], Y_BLOBS[OLD])


@pytest.fixture(scope="module")
def maml():
    return FewShotClassifier(algorithm="maml", meta_steps=200, random_state=0, device="cpu").meta_fit(
        X_BLOBS[OLD], Y_BLOBS[OLD]
    )


# -- meta-learning pays ---------------------------------------------------
@pytest.mark.parametrize("k_shot", [1, 5])
@pytest.mark.parametrize("learner", ["protonet", "maml"])
def test_meta_fit_beats_scratch_and_nearest_neighbours_on_new_classes(learner, k_shot, request):
    meta_fitted = request.getfixturevalue(learner)
    scratch = FewShotClassifier(algorithm=meta_fitted.algorithm, random_state=0, device="cpu")
    meta = mean_accuracy(meta_fitted, new_tasks(20, 5, k_shot))
    assert meta > mean_accuracy(scratch, new_tasks(20, 5, k_shot)) + 0.25
    assert meta > mean_accuracy(KNeighborsClassifier(1), new_tasks(20, 5, k_shot)) + 0.25


@pytest.mark.parametrize("n_way", [2, 20, 40])
def test_any_number_of_ways_and_shots(protonet, n_way):
    for Xs, ys, Xq, yq in new_tasks(1, n_way, k_shot=3):
        proba = protonet.fit(Xs, ys).predict_proba(Xq)
        assert proba.shape == (len(Xq), n_way)
        np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)  # float32 X: float32 computation
        np.testing.assert_array_equal(protonet.classes_, np.unique(ys))
        assert protonet.score(Xq, yq) > 0.5


def test_unbalanced_shots(protonet):
    Xs, ys, Xq, yq = next(new_tasks(1, 5, k_shot=5))
    keep = np.r_[0, 5:25]  # one shot of the first class, five of the others
    assert protonet.fit(Xs[keep], ys[keep]).score(Xq, yq) > 0.7


def test_maml_head_narrower_than_the_task_is_a_clear_error(maml):
    Xs, ys, _, _ = next(new_tasks(1, 4, k_shot=1))
    maml.fit(Xs, ys)  # 4 classes on a 5-logit head: the first four
    assert maml.decision_function(Xs).shape == (4, 4)
    Xs, ys, _, _ = next(new_tasks(1, 7, k_shot=1))
    with pytest.raises(ValueError, match="meta_fit with n_way >= 7"):
        maml.fit(Xs, ys)


def test_binary_decision_function_is_the_logit_of_the_second_class(protonet):
    Xs, ys, Xq, _ = next(new_tasks(1, 2, k_shot=2))
    protonet.fit(Xs, ys)
    decision = protonet.decision_function(Xq)
    assert decision.shape == (len(Xq),)
    np.testing.assert_array_equal(protonet.classes_[(decision > 0).astype(int)], protonet.predict(Xq))


# -- the meta-learned state survives the scikit-learn machinery -----------
def test_grid_search_in_a_pipeline_keeps_the_meta_learned_state(maml):
    Xs, ys, Xq, yq = next(new_tasks(1, 5, k_shot=4, seed=3))
    pipeline = make_pipeline(StandardScaler(), maml)
    search = GridSearchCV(pipeline, {"fewshotclassifier__inner_steps": [1, 5]}, cv=2).fit(Xs, ys)
    best = search.best_estimator_[-1]
    assert best.meta_learner_ is maml.meta_learner_
    assert search.score(Xq, yq) > 0.6  # far above chance (0.2) and what a scratch MAML reaches
    assert cross_val_score(pipeline, Xs, ys, cv=2).mean() > 0.4


def test_clone_carries_the_meta_learner_but_not_the_task(protonet):
    Xs, ys, Xq, _ = next(new_tasks(1, 5, k_shot=2))
    protonet.fit(Xs, ys)
    cloned = clone(protonet)
    assert cloned.meta_learner_ is protonet.meta_learner_
    assert cloned.n_features_in_ == 20 and not hasattr(cloned, "classes_")
    with pytest.raises(NotFittedError):
        cloned.predict(Xq)
    np.testing.assert_array_equal(cloned.fit(Xs, ys).predict_proba(Xq), protonet.predict_proba(Xq))


@pytest.mark.parametrize("learner", ["protonet", "maml"])
def test_fit_never_changes_the_meta_learned_state(learner, request):
    estimator = request.getfixturevalue(learner)
    (Xa, ya, _, _), (Xb, yb, Xq, _) = new_tasks(2, 5, k_shot=3, seed=7)
    before = {k: v.clone() for k, v in estimator.meta_learner_.state_dict().items()}
    alone = clone(estimator).fit(Xb, yb).decision_function(Xq)
    after_a = estimator.fit(Xa, ya).fit(Xb, yb).decision_function(Xq)
    np.testing.assert_array_equal(after_a, alone)
    for k, v in estimator.meta_learner_.state_dict().items():
        assert torch.equal(v, before[k])


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_persistence_roundtrip_gives_identical_predictions(maml, dump, tmp_path):
    Xs, ys, Xq, _ = next(new_tasks(1, 5, k_shot=2))
    maml.fit(Xs, ys)
    if dump == "pickle":
        loaded = pickle.loads(pickle.dumps(maml))
    else:
        joblib.dump(maml, tmp_path / "clf.joblib")
        loaded = joblib.load(tmp_path / "clf.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(Xq), maml.predict_proba(Xq))
    assert clone(loaded).fit(Xs, ys).score(Xq, maml.predict(Xq)) == 1.0


def test_unpickling_moves_the_state_to_the_device_of_the_loading_machine(protonet, monkeypatch):
    Xs, ys, _, _ = next(new_tasks(1, 5, k_shot=1))
    blob = pickle.dumps(clone(protonet).fit(Xs, ys))
    # the meta device stands in for a GPU: tensors are allocated there, never computed on
    monkeypatch.setattr(estimators, "resolve_device", lambda device, fallback=False: torch.device("meta"))
    monkeypatch.setattr(FewShotClassifier, "_adapt", lambda self: None)
    loaded = pickle.loads(blob)
    assert loaded.meta_learner_.device.type == "meta"
    assert loaded._support_x.device.type == "meta"
    assert loaded._learner is loaded.meta_learner_  # shared references stay shared


def test_an_estimator_saved_for_a_missing_gpu_loads_on_the_cpu(protonet, monkeypatch):
    Xs, ys, Xq, _ = next(new_tasks(1, 5, k_shot=1))
    fitted = clone(protonet).fit(Xs, ys)
    expected = fitted.predict(Xq)
    blob = pickle.dumps(fitted.set_params(device="cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="loaded on the CPU"):
        loaded = pickle.loads(blob)
    assert loaded.meta_learner_.device.type == "cpu"
    np.testing.assert_array_equal(loaded.predict(Xq), expected)


def test_pandas_input_with_string_labels_and_feature_names():
    columns = [f"f{i}" for i in range(20)]
    frame = pd.DataFrame(X_BLOBS, columns=columns)
    labels = np.array([f"class {c}" for c in Y_BLOBS])
    old = Y_BLOBS < 60
    clf = FewShotClassifier(meta_steps=20, random_state=0, device="cpu").meta_fit(frame[old], labels[old])
    np.testing.assert_array_equal(clf.feature_names_in_, columns)
    support = np.flatnonzero(np.isin(Y_BLOBS, [70, 80, 90]))[::20]
    clf.fit(frame.iloc[support], labels[support])
    assert set(clf.predict(frame.iloc[:5])) <= {"class 70", "class 80", "class 90"}
    with pytest.raises(ValueError, match="feature names"):
        clf.fit(frame.iloc[support].rename(columns={"f0": "other"}), labels[support])


def test_random_state_makes_meta_fit_deterministic_and_leaves_torch_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    weights = [
        FewShotClassifier("protonet", meta_steps=5, random_state=1, device="cpu").meta_fit(X_BLOBS[OLD], Y_BLOBS[OLD])
        .meta_learner_.state_dict()["backbone.0.weight"]
        for _ in range(2)
    ]
    assert torch.equal(*weights)
    assert torch.equal(torch.rand(1), expected)


# -- regression -----------------------------------------------------------
def sinusoid_table(n_tasks, n_points=20, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_tasks), n_points)
    amplitude, phase = rng.uniform(0.1, 5, n_tasks), rng.uniform(0, np.pi, n_tasks)
    X = rng.uniform(-5, 5, size=(n_tasks * n_points, 1))
    return X, amplitude[groups] * np.sin(X[:, 0] - phase[groups]), groups


@pytest.mark.parametrize("algorithm", ["maml", "reptile"])
def test_regressor_meta_fit_beats_ridge_on_new_tasks(algorithm):
    X, y, groups = sinusoid_table(500)
    reg = FewShotRegressor(algorithm=algorithm, inner_steps=10, meta_steps=1000, meta_batch=8,
                           random_state=0, device="cpu")
    reg.meta_fit(X, y, groups)
    X_new, y_new, groups_new = sinusoid_table(20, seed=1)
    errors = {"meta": [], "ridge": []}
    for g in range(20):
        rows = np.flatnonzero(groups_new == g)
        support, query = rows[:10], rows[10:]
        errors["meta"].append(np.mean((reg.fit(X_new[support], y_new[support]).predict(X_new[query]) - y_new[query]) ** 2))
        ridge = Ridge().fit(X_new[support], y_new[support])
        errors["ridge"].append(np.mean((ridge.predict(X_new[query]) - y_new[query]) ** 2))
    assert np.mean(errors["meta"]) < 0.7 * np.mean(errors["ridge"])


def test_regressor_predicts_one_value_per_row():
    X, y, groups = sinusoid_table(10)
    reg = FewShotRegressor(meta_steps=5, random_state=0, device="cpu").meta_fit(X, y, groups)
    assert reg.fit(X[:5], y[:5]).predict(X).shape == (len(X),)


# -- clear errors ---------------------------------------------------------
def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        FewShotClassifier().predict(X_BLOBS)
    meta_fitted = FewShotRegressor(meta_steps=2, k_shot=2, n_query=2, device="cpu")
    meta_fitted.meta_fit(*sinusoid_table(4)[:2], groups=sinusoid_table(4)[2])
    with pytest.raises(NotFittedError):
        meta_fitted.predict(np.zeros((2, 1)))


def test_mismatched_features_between_meta_fit_fit_and_predict(protonet):
    with pytest.raises(ValueError, match="X has 5 features, but FewShotClassifier is expecting 20"):
        clone(protonet).fit(X_BLOBS[:10, :5], Y_BLOBS[:10])
    protonet.fit(X_BLOBS[:40], Y_BLOBS[:40])
    with pytest.raises(ValueError, match="X has 5 features"):
        protonet.predict(X_BLOBS[:3, :5])


@pytest.mark.parametrize(
    "estimator, match",
    [
        (FewShotClassifier(algorithm="snail"), "algorithm must be one of"),
        (FewShotRegressor(algorithm="protonet"), "it is a classifier: use FewShotClassifier"),
        (FewShotClassifier(backbone="resnet"), "backbone must be one of"),
        (FewShotClassifier(inner_steps=0), "inner_steps must be None or a positive int"),
        (FewShotClassifier(n_way=1), "n_way must be an int >= 2"),
        (FewShotClassifier(device="gpu7"), "device must be 'auto' or a torch device"),
        (FewShotClassifier("protonet", backbone="conv4"), "not a square number: pass image_shape"),
    ],
)
def test_invalid_parameters(estimator, match):
    with pytest.raises(ValueError, match=match):
        estimator.fit(X_BLOBS[:40], Y_BLOBS[:40])


def test_too_few_classes_or_shots_for_the_episodes_name_the_fix():
    few = Y_BLOBS < 3
    with pytest.raises(ValueError, match="only 3 classes are available; lower n_way"):
        FewShotClassifier("protonet", n_way=5, device="cpu").meta_fit(X_BLOBS[few], Y_BLOBS[few])
    with pytest.raises(ValueError, match="lower k_shot or n_query"):
        FewShotClassifier("protonet", k_shot=10, n_query=15, device="cpu").meta_fit(X_BLOBS[OLD], Y_BLOBS[OLD])
    with pytest.raises(ValueError, match="needs groups="):
        FewShotRegressor("maml", device="cpu").meta_fit(*sinusoid_table(4)[:2])


def test_changing_a_meta_fit_parameter_after_meta_fit_asks_for_meta_fit(protonet):
    changed = clone(protonet).set_params(algorithm="matching")
    with pytest.raises(ValueError, match="meta-fitted with algorithm='protonet'.*call meta_fit again"):
        changed.fit(X_BLOBS[:40], Y_BLOBS[:40])


def test_conv4_on_flattened_images():
    rng = np.random.default_rng(0)
    X = rng.random((60, 256)).astype(np.float32)  # 16x16 images
    y = np.repeat(np.arange(6), 10)
    for algorithm in ["protonet", "maml"]:
        clf = FewShotClassifier(algorithm=algorithm, backbone="conv4", n_way=3, meta_steps=2, meta_batch=2,
                                random_state=0, device="cpu").meta_fit(X, y)
        assert clf.fit(X[:30:5], y[:30:5]).predict_proba(X).shape == (60, 3)


def test_custom_module_backbone_is_not_trained_in_place():
    module = torch.nn.Sequential(torch.nn.Linear(20, 8), torch.nn.ReLU())
    before = module[0].weight.detach().clone()
    clf = FewShotClassifier("protonet", backbone=module, meta_steps=5, random_state=0, device="cpu")
    clf.meta_fit(X_BLOBS[OLD], Y_BLOBS[OLD]).fit(X_BLOBS[:40], Y_BLOBS[:40])
    assert torch.equal(module[0].weight, before)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clf.predict(X_BLOBS[:3]).shape == (3,)


def test_example_script_runs_in_smoke_mode():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "examples" / "sklearn_pipeline_grid_search.py"
    spec = importlib.util.spec_from_file_location("example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(smoke=True) > 0.2


def test_skip_mlp_embedding_keeps_the_input_for_metric_learners():
    clf = FewShotClassifier("protonet", backbone="skip_mlp", hidden=(16, 8), meta_steps=20, random_state=0, device="cpu")
    clf.meta_fit(X_BLOBS[OLD], Y_BLOBS[OLD])
    embedding = clf.meta_learner_.backbone
    x = torch.as_tensor(X_BLOBS[:3])
    with torch.no_grad():
        out = embedding(x)
    assert out.shape == (3, X_BLOBS.shape[1] + 8)
    torch.testing.assert_close(out[:, : X_BLOBS.shape[1]], x)
    Xs, ys, Xq, yq = next(new_tasks(1, 5, k_shot=1))
    assert clf.fit(Xs, ys).predict(Xq).shape == yq.shape
    with pytest.raises(ValueError, match="skip_mlp' is an embedding for algorithm='protonet' or 'matching'"):
        FewShotClassifier(algorithm="maml", backbone="skip_mlp").fit(Xs, ys)


# -- defaults ------------------------------------------------------------------
@pytest.mark.parametrize(
    "estimator,expected",
    [
        (FewShotClassifier(algorithm="maml"), (0.4, 5, None)),
        (FewShotClassifier(algorithm="fomaml"), (0.4, 5, None)),
        (FewShotClassifier(algorithm="reptile"), (1e-3, 5, "adam")),
        (FewShotRegressor(algorithm="maml"), (0.01, 5, None)),
        (FewShotRegressor(algorithm="fomaml"), (0.01, 5, None)),
        (FewShotRegressor(algorithm="reptile"), (0.02, 5, "sgd")),
    ],
    ids=lambda value: value if isinstance(value, tuple) else f"{type(value).__name__}-{value.algorithm}",
)
def test_inner_loop_defaults(estimator, expected):
    """The defaults the tabular numbers of BENCHMARKS.md were run with (autometa.meta.registry's)."""
    rows = np.flatnonzero(Y_BLOBS < 2)
    learner = estimator.set_params(device="cpu", random_state=0).fit(X_BLOBS[rows], Y_BLOBS[rows])._learner
    assert (learner.inner_lr, learner.inner_steps, getattr(learner, "inner_optimizer", None)) == expected
    if isinstance(learner, MAML):
        assert learner.first_order == (estimator.algorithm == "fomaml")


def test_inner_steps_left_as_none_adapts_with_the_registry_default(maml):
    assert maml.inner_steps is None
    rows = np.flatnonzero(Y_BLOBS >= 98)
    assert maml.fit(X_BLOBS[rows], Y_BLOBS[rows])._adapt_kwargs == {"steps": 5}


@pytest.mark.parametrize("cls", [FewShotClassifier, FewShotRegressor])
def test_parameters_after_the_algorithm_are_keyword_only(cls):
    with pytest.raises(TypeError):
        cls("maml", "mlp")
    assert cls("maml", backbone="mlp").backbone == "mlp"
