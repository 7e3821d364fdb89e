"""Search spaces of scikit-learn estimators and the standard objective."""

import dataclasses

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.base import is_classifier, is_regressor

from autometa.hpo.spaces import (
    ERROR_KEY,
    FOLD_SCORES_KEY,
    SEARCH_SPACES,
    get_space,
    make_objective,
    prepare_features,
)

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _tiny(task, seed=0, n=48):
    """Numeric, categorical (strings with a missing value) and NaN columns."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    X = pd.DataFrame({
        "x": x,
        "noise": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "colour": pd.Series(rng.choice(["red", "green", "blue"], size=n), dtype=object),
    })
    X.loc[3, "colour"] = None
    y = (x > 0).astype(int) if task == "classification" else 2 * x + rng.normal(scale=0.1, size=n)
    return X, y


@pytest.mark.parametrize("name", sorted(SEARCH_SPACES))
def test_every_space_builds_an_estimator_that_fits(name):
    space = SEARCH_SPACES[name]
    assert space.name == name and isinstance(space.version, str) and space.version
    X, y = _tiny(space.task)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    model = space.suggest_estimator(trial, X)
    assert set(trial.params) == set(space.distributions())
    model.fit(X, y)
    assert (is_classifier if space.task == "classification" else is_regressor)(model.steps[-1][1])
    predictions = model.predict(X)
    assert predictions.shape == (len(X),) and np.all(pd.notna(predictions))
    # build() from plain params gives the same model
    rebuilt = space.build(trial.params, X)
    np.testing.assert_allclose(rebuilt.fit(X, y).predict(X).astype(float), predictions.astype(float))


@pytest.mark.parametrize("name", sorted(SEARCH_SPACES))
def test_objective_completes_and_stores_fold_scores(name):
    space = SEARCH_SPACES[name]
    X, y = _tiny(space.task, seed=1)
    objective = make_objective(name, X, y, cv=3)
    study = optuna.create_study(direction=objective.direction, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs
    assert len(trial.user_attrs[FOLD_SCORES_KEY]) == 3
    assert trial.value == pytest.approx(np.mean(trial.user_attrs[FOLD_SCORES_KEY]))


def test_a_failing_fit_is_a_failed_trial_with_the_error():
    def broken(params, random_state):
        raise RuntimeError("this combination is impossible")

    space = dataclasses.replace(get_space("logistic_regression"), make_model=broken)
    X, y = _tiny("classification")
    objective = make_objective(space, X, y)
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=2)  # no catch=: the objective itself must not raise
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2
    assert study.trials[0].user_attrs[ERROR_KEY] == "RuntimeError: this combination is impossible"


def test_time_limit_fails_the_trial_between_folds():
    X, y = _tiny("classification")
    objective = make_objective("logistic_regression", X, y, cv=3, time_limit=1e-9)
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs[ERROR_KEY].startswith("TimeoutError: time limit of 1e-09 s exceeded after 1 of 3 folds")


def test_equal_params_score_equally_and_metric_is_configurable():
    X, y = _tiny("classification", seed=2)
    objective = make_objective("random_forest", X, y, metric="roc_auc")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=1)
    study.enqueue_trial(study.trials[0].params)
    study.optimize(objective, n_trials=1)
    assert study.trials[0].value == study.trials[1].value
    assert objective.metric == "roc_auc" and 0.5 < study.trials[0].value <= 1.0


def test_user_mistakes_are_clear():
    with pytest.raises(ValueError, match="unknown search space 'catboost'; choose one of hist_gradient_boosting"):
        get_space("catboost")
    X, y = _tiny("classification")
    with pytest.raises(ValueError, match="unknown metric 'accuracy_score'"):
        make_objective("svc", X, y, metric="accuracy_score")
    with pytest.raises(ValueError, match="cv must be an int of at least 2"):
        make_objective("svc", X, y, cv=1)
    with pytest.raises(ValueError, match="y must be 1-d"):
        make_objective("svc", X, y[:-1])
    with pytest.raises(ValueError, match="lack"):
        get_space("svc").build({"C": 1.0})


def test_prepare_features_types():
    X = pd.DataFrame({"n": [1, np.inf, 3], "s": ["a", None, "b"], "b": [True, False, True]})
    prepared = prepare_features(X)
    assert prepared["n"].dtype == np.float64 and np.isnan(prepared["n"][1])
    assert prepared["s"].tolist() == ["a", "__missing__", "b"]
    assert prepared["b"].tolist() == ["True", "False", "True"]
    assert prepare_features(np.ones((2, 3))).shape == (2, 3)


def test_cli_lists_the_same_space_names():
    from autometa.apps.cli.kb import SPACE_NAMES

    assert tuple(SEARCH_SPACES) == SPACE_NAMES


def test_label_encoded_classifier_predicts_the_original_labels():
    pytest.importorskip("xgboost")
    X, y = _tiny("classification", seed=3)
    labels = np.array(["no", "yes"])[np.asarray(y) % 2]
    model = get_space("xgboost").build(get_space("xgboost").suggest(
        optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()), X).fit(X, labels)
    assert set(model.predict(X)) <= {"no", "yes"}
    assert list(model.classes_) == ["no", "yes"]
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.allclose(proba.sum(1), 1)
    assert (model.classes_[proba.argmax(1)] == model.predict(X)).all()


def test_distributions_are_read_quietly_and_copied():
    import logging

    import optuna

    from autometa.hpo import spaces

    class Recorder(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    spaces._distributions.cache_clear()
    recorder, before = Recorder(), optuna.logging.get_verbosity()
    logging.getLogger("optuna").addHandler(recorder)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        first = get_space("mlp").distributions()
        first["width"] = None  # the caller's copy: the space is not changed
        assert get_space("mlp").distributions()["width"] == optuna.distributions.IntDistribution(16, 256, log=True)
    finally:
        optuna.logging.set_verbosity(before)
        logging.getLogger("optuna").removeHandler(recorder)
    assert not any("A new study created" in m for m in recorder.messages), recorder.messages
