"""Property-based tests (hypothesis): whatever valid data a user brings, the
estimators, the sampler and the task samplers keep their contracts; whatever
invalid data, they refuse it with a ValueError before doing any work."""

import math

import numpy as np
import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autometa import FewShotClassifier, FewShotRegressor, KnowledgeBase, MetaLearnedSampler
from autometa.tasks import GroupedRegressionTasks, SinusoidTasks

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
N_FEATURES = 4


@pytest.fixture(scope="module")
def classifier():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(12), 8)
    X = rng.normal(size=(len(y), N_FEATURES)) + y[:, None] % 3
    return FewShotClassifier(algorithm="protonet", n_way=3, k_shot=2, meta_steps=5, random_state=0,
                             device="cpu").meta_fit(X, y)


@pytest.fixture(scope="module")
def regressor():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(10), 24)
    X = rng.normal(size=(len(groups), N_FEATURES))
    y = X[:, 0] * (groups % 3) + rng.normal(scale=0.1, size=len(groups))
    return FewShotRegressor(meta_steps=5, random_state=0, device="cpu").meta_fit(X, y, groups=groups)


finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def few_shot_task(draw):
    """A support set of 2-5 classes with arbitrary labels (ints or strings), 1-4 shots each."""
    n_classes = draw(st.integers(2, 5))
    k_shot = draw(st.integers(1, 4))
    labels = draw(st.one_of(
        st.lists(st.integers(-1000, 1000), min_size=n_classes, max_size=n_classes, unique=True),
        st.lists(st.text("abcxyz", min_size=1, max_size=4), min_size=n_classes, max_size=n_classes, unique=True),
    ))
    y = np.repeat(np.array(labels), k_shot)
    X = np.array(draw(st.lists(st.lists(finite, min_size=N_FEATURES, max_size=N_FEATURES),
                               min_size=len(y), max_size=len(y))), dtype=float)
    return X, y


@SETTINGS
@given(task=few_shot_task(), n_query=st.integers(1, 7))
def test_classifier_predicts_only_support_labels_with_normalised_probabilities(classifier, task, n_query):
    X, y = task
    classifier.fit(X, y)
    query = X[:n_query] + 0.5
    proba = classifier.predict_proba(query)
    assert proba.shape == (len(query), len(np.unique(y)))
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    predicted = classifier.predict(query)
    assert set(predicted) <= set(y)
    assert np.array_equal(predicted, classifier.classes_[proba.argmax(axis=1)])


@SETTINGS
@given(task=few_shot_task(), bad=st.sampled_from([np.nan, np.inf, -np.inf]), where=st.integers(0, 10_000))
def test_classifier_refuses_non_finite_input(classifier, task, bad, where):
    X, y = task
    X = X.copy()
    X.flat[where % X.size] = bad
    with pytest.raises(ValueError):
        classifier.fit(X, y)


@SETTINGS
@given(task=few_shot_task(), extra=st.integers(1, 3))
def test_classifier_refuses_a_feature_count_it_was_not_meta_trained_on(classifier, task, extra):
    X, y = task
    with pytest.raises(ValueError, match="features"):
        classifier.fit(np.hstack([X, np.zeros((len(X), extra))]), y)


@SETTINGS
@given(n_points=st.integers(1, 12), data=st.data())
def test_regressor_predictions_are_finite_and_shaped(regressor, n_points, data):
    X = np.array(data.draw(st.lists(st.lists(finite, min_size=N_FEATURES, max_size=N_FEATURES),
                                    min_size=n_points, max_size=n_points)), dtype=float)
    y = np.array(data.draw(st.lists(finite, min_size=n_points, max_size=n_points)), dtype=float)
    predicted = regressor.fit(X / 100, y / 100).predict(X / 100)
    assert predicted.shape == (n_points,) and np.all(np.isfinite(predicted))


# -- the sampler -----------------------------------------------------------------------
@st.composite
def search_space(draw):
    """1-4 parameters: floats (maybe log), ints (maybe log or stepped), categoricals."""
    space = {}
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["float", "int", "categorical"]))
        if kind == "float":
            log = draw(st.booleans())
            low = draw(st.floats(1e-4, 10.0)) if log else draw(st.floats(-100.0, 100.0))
            high = low * draw(st.floats(1.5, 100.0)) if log else low + draw(st.floats(0.1, 100.0))
            space[f"p{i}"] = optuna.distributions.FloatDistribution(low, high, log=log)
        elif kind == "int":
            low = draw(st.integers(1, 50))
            space[f"p{i}"] = optuna.distributions.IntDistribution(low, low + draw(st.integers(1, 200)),
                                                                  log=draw(st.booleans()))
        else:
            choices = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4, unique=True))
            space[f"p{i}"] = optuna.distributions.CategoricalDistribution(choices)
    return space


def _objective(space, shift):
    def objective(trial):
        value = 0.0
        for name, distribution in space.items():
            x = trial._suggest(name, distribution)
            value += float(x) ** 2 * 1e-3 if not isinstance(x, str) else float(ord(x[0]) % 3)
        return value + shift

    return objective


@settings(max_examples=12, deadline=None)
@given(space=search_space(), seed=st.integers(0, 2**16), surrogate=st.sampled_from([None, "meta"]))
def test_sampler_suggests_valid_values_for_any_space(space, seed, surrogate):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    earlier = []
    for shift in (0.0, 1.0):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        study.optimize(_objective(space, shift), n_trials=8)
        earlier.append(study)
    sampler = MetaLearnedSampler(KnowledgeBase.from_studies(earlier), n_warm_start=3, surrogate=surrogate,
                                 meta_train_steps=5, seed=seed)
    study = optuna.create_study(sampler=sampler)
    study.optimize(_objective(space, 0.5), n_trials=6)
    assert len(study.trials) == 6
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        for name, distribution in space.items():
            assert distribution._contains(distribution.to_internal_repr(trial.params[name]))


# -- task samplers ------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(k_shot=st.integers(1, 20), n_query=st.integers(1, 30), meta_batch=st.integers(1, 16),
       seed=st.integers(0, 2**16))
def test_sinusoid_tasks_have_the_asked_shapes_and_bounded_targets(k_shot, n_query, meta_batch, seed):
    tasks = SinusoidTasks(k_shot=k_shot, n_query=n_query, random_state=seed).sample(meta_batch)
    assert tuple(tasks.support_x.shape) == (meta_batch, k_shot, 1)
    assert tuple(tasks.query_y.shape) == (meta_batch, n_query)
    assert float(tasks.support_y.abs().max()) <= 5.0 + 1e-5  # amplitude at most 5


@settings(max_examples=30, deadline=None)
@given(n_groups=st.integers(1, 6), per_group=st.integers(4, 12), k_shot=st.integers(1, 3), seed=st.integers(0, 99))
def test_grouped_regression_tasks_stay_within_one_group(n_groups, per_group, k_shot, seed):
    groups = np.repeat(np.arange(n_groups), per_group)
    X = np.column_stack([groups, np.arange(len(groups))]).astype(np.float32)  # column 0 names the group
    y = groups.astype(np.float32)
    tasks = GroupedRegressionTasks(X, y, groups, k_shot=k_shot, n_query=per_group - k_shot,
                                   random_state=seed).sample(4)
    for i in range(4):
        group = float(tasks.support_x[i, 0, 0])
        assert bool((tasks.support_x[i, :, 0] == group).all()) and bool((tasks.query_x[i, :, 0] == group).all())
        assert math.isclose(float(tasks.query_y[i].mean()), group, abs_tol=1e-6)


def test_a_tie_breaks_the_same_way_in_predict_and_predict_proba(classifier):
    # hypothesis found it: identical support rows make every class equally likely
    X = np.zeros((5, N_FEATURES), dtype=np.float32)
    y = np.array([0, 1, -1, 2, -2])
    classifier.fit(X, y)
    proba = classifier.predict_proba(X[:1])
    assert np.array_equal(classifier.predict(X[:1]), classifier.classes_[proba.argmax(axis=1)])
