"""MetaSearchCV: GridSearchCV's interface, warm-started from the shipped knowledge bases."""

import pickle
import warnings

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    IntDistribution,
)
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.estimator_checks import check_estimator

from autometa import MetaSearchCV
from autometa.hpo.pretrained import load_pretrained
from autometa.hpo.search_cv import recognise
from autometa.hpo.spaces import SEARCH_SPACES

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return X[::3], y[::3]


def _grid_search_study(grid: dict[str, list]):
    """An in-memory study with every point of ``grid`` enqueued, in GridSearchCV's order."""
    from sklearn.model_selection import ParameterGrid

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="grid", direction="maximize")
    points = list(ParameterGrid(grid))
    for point in points:
        study.enqueue_trial(point)
    return storage, points


def test_attributes_match_grid_search_on_the_same_grid(cancer):
    X, y = cancer
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    estimator = make_pipeline(StandardScaler(), LogisticRegression())
    keyed = {"logisticregression__C": grid["C"]}
    storage, points = _grid_search_study(keyed)
    # the pipeline's LogisticRegression is recognised: its space adds class_weight, fixed here to one choice
    distributions = {"logisticregression__C": CategoricalDistribution(grid["C"]),
                     "logisticregression__class_weight": CategoricalDistribution([None])}
    search = MetaSearchCV(estimator, n_trials=len(points), cv=3, storage=storage, study_name="grid",
                          param_distributions=distributions, return_train_score=True, random_state=0,
                          include_default=False).fit(X, y)
    reference = GridSearchCV(estimator, keyed, cv=3, return_train_score=True).fit(X, y)

    ours, theirs = search.cv_results_, reference.cv_results_
    assert set(theirs) <= set(ours)
    assert set(ours) - set(theirs) == {"param_logisticregression__class_weight"}
    for key in theirs:
        assert len(ours[key]) == len(theirs[key]), key
    for key in ("mean_test_score", "std_test_score", "split0_test_score", "split2_test_score",
                "mean_train_score", "split1_train_score", "rank_test_score"):
        np.testing.assert_allclose(ours[key], theirs[key], err_msg=key)
    assert ours["rank_test_score"].dtype == theirs["rank_test_score"].dtype
    assert isinstance(ours["param_logisticregression__C"], np.ma.MaskedArray)
    assert list(ours["param_logisticregression__C"]) == list(theirs["param_logisticregression__C"])
    assert [p["logisticregression__C"] for p in ours["params"]] == [p["logisticregression__C"] for p in theirs["params"]]
    # TPE (no surrogate yet) keeps the best mean score, as GridSearchCV does
    assert search.best_index_ == reference.best_index_
    assert search.best_score_ == pytest.approx(reference.best_score_)
    assert search.best_params_["logisticregression__C"] == reference.best_params_["logisticregression__C"]
    assert search.n_splits_ == reference.n_splits_ == 3
    assert search.refit_time_ > 0 and search.multimetric_ is False
    np.testing.assert_array_equal(search.predict(X), reference.predict(X))
    np.testing.assert_allclose(search.predict_proba(X), reference.predict_proba(X))
    np.testing.assert_allclose(search.decision_function(X), reference.decision_function(X))
    assert search.score(X, y) == pytest.approx(reference.score(X, y))
    np.testing.assert_array_equal(search.classes_, reference.classes_)
    assert search.n_features_in_ == reference.n_features_in_ == X.shape[1]


def test_recognised_estimator_is_warm_started_from_its_knowledge_base(cancer):
    X, y = cancer
    search = MetaSearchCV(make_pipeline(StandardScaler(), SVC()), n_trials=3, cv=3, random_state=0,
                          include_default=False).fit(X, y)
    assert search.search_space_ == "svc" and search.warm_started_
    assert sorted(search.best_params_) == ["svc__C", "svc__class_weight", "svc__gamma"]
    first = search.study_.trials[0]
    assert first.user_attrs["autometa:warm_start"] is True
    source = load_pretrained("svc")[first.user_attrs["autometa:source_task"]]
    record = next(t for t in source.trials if t.number == first.user_attrs["autometa:source_trial"])
    assert first.params["svc__C"] == record.params["C"] and first.params["svc__gamma"] == record.params["gamma"]
    assert first.params["svc__class_weight"] == (None if record.params["class_weight"] == "none" else "balanced")
    assert search.best_score_ > 0.9


def test_the_search_uses_the_surrogate_shipped_with_the_knowledge_base_and_stores_fold_scores(cancer, monkeypatch):
    import autometa.hpo.surrogate
    from autometa.hpo.encoding import FOLD_SCORES_KEY

    def no_training(*args, **kwargs):
        raise AssertionError("meta-trained a surrogate that ships with the knowledge base")

    monkeypatch.setattr(autometa.hpo.surrogate, "meta_train_surrogate", no_training)
    X, y = cancer
    search = MetaSearchCV(make_pipeline(StandardScaler(), SVC()), n_trials=7, cv=3, random_state=0,
                          include_default=False).fit(X, y)
    model_based = [t for t in search.study_.trials if not t.user_attrs["autometa:warm_start"]]
    assert model_based and search.study_.sampler._model is not None  # the shipped surrogate, under renamed parameters
    for i, trial in enumerate(search.study_.trials):
        assert trial.user_attrs[FOLD_SCORES_KEY] == [search.cv_results_[f"split{k}_test_score"][i] for k in range(3)]


def test_parameters_the_estimator_lacks_are_left_out_of_the_space(cancer):
    # logistic_regression's space also chooses a scaler, which LogisticRegression has not
    X, y = cancer
    search = MetaSearchCV(LogisticRegression(max_iter=2000), n_trials=2, cv=2, random_state=0).fit(X, y)
    assert sorted(search.cv_results_["params"][1]) == ["C", "class_weight"]
    assert search.warm_started_


def test_param_distributions_tune_any_estimator_with_tpe():
    X, y = make_classification(n_samples=120, n_features=6, random_state=0)
    search = MetaSearchCV(DecisionTreeClassifier(random_state=0), n_trials=6, cv=3, random_state=0,
                          param_distributions={"max_depth": IntDistribution(1, 15)}).fit(X, y)
    assert search.search_space_ is None and not search.warm_started_
    assert isinstance(search.study_.sampler, optuna.samplers.TPESampler)
    assert len(search.cv_results_["params"]) == 6 and len(search.study_.trials) == 5
    assert all(1 <= p["max_depth"] <= 15 for p in search.cv_results_["params"][1:])


def test_regressor_without_knowledge_base_uses_its_space_with_tpe():
    X, y = load_diabetes(return_X_y=True)
    search = MetaSearchCV(Ridge(), n_trials=4, cv=3, random_state=0).fit(X, y)
    assert search.search_space_ == "ridge" and not search.warm_started_
    assert [list(p) for p in search.cv_results_["params"]] == [[], ["alpha"], ["alpha"], ["alpha"]]
    assert search.score(X, y) == pytest.approx(search.best_estimator_.score(X, y))


def test_same_seed_same_search_and_nested_cross_validation(cancer):
    X, y = cancer
    a = MetaSearchCV(LogisticRegression(max_iter=2000), n_trials=3, cv=3, random_state=1).fit(X, y)
    b = MetaSearchCV(LogisticRegression(max_iter=2000), n_trials=3, cv=3, random_state=1).fit(X, y)
    assert a.cv_results_["params"] == b.cv_results_["params"]
    scores = cross_val_score(MetaSearchCV(LogisticRegression(max_iter=2000), n_trials=2, cv=2, random_state=0),
                             X, y, cv=2)
    assert scores.shape == (2,) and (scores > 0.8).all()


def test_clone_pickle_and_pipeline(cancer):
    X, y = cancer
    search = MetaSearchCV(LogisticRegression(max_iter=2000), n_trials=2, cv=2, random_state=0)
    assert clone(search).get_params()["n_trials"] == 2
    pipe = Pipeline([("scale", StandardScaler()), ("search", search)]).fit(X, y)
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(restored.predict(X), pipe.predict(X))
    assert restored.named_steps["search"].best_params_ == pipe.named_steps["search"].best_params_


def test_pandas_input_keeps_feature_names(cancer):
    X, y = cancer
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    search = MetaSearchCV(LogisticRegression(max_iter=2000), n_trials=2, cv=2, random_state=0).fit(frame, pd.Series(y))
    assert list(search.feature_names_in_) == list(frame.columns)
    assert search.predict(frame).shape == (len(frame),)


def test_refit_false_and_callable_refit(cancer):
    X, y = cancer
    search = MetaSearchCV(Ridge(), n_trials=3, cv=2, random_state=0, refit=False).fit(X, y)
    assert not hasattr(search, "best_estimator_") and search.best_params_ == search.cv_results_["params"][
        search.best_index_]
    with pytest.raises(AttributeError, match="refit=True"):
        search.predict(X)
    lowest = MetaSearchCV(Ridge(), n_trials=3, cv=2, random_state=0,
                          refit=lambda results: int(np.argmin(results["mean_test_score"]))).fit(X, y)
    assert lowest.best_index_ == int(np.argmin(lowest.cv_results_["mean_test_score"]))
    assert lowest.incumbent_index_ != lowest.best_index_  # the search's own choice stays recorded
    assert not hasattr(lowest, "best_score_") and hasattr(lowest, "best_estimator_")


def test_failed_trials_rank_last_and_error_score_raise():
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    # min_samples_split=0 is invalid: those trials fail, the others count
    distributions = {"min_samples_split": CategoricalDistribution([3, 0]), "criterion": CategoricalDistribution(["gini"])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = MetaSearchCV(DecisionTreeClassifier(random_state=0), n_trials=10, cv=2, random_state=0,
                              param_distributions=distributions, include_default=False).fit(X, y)
    results = search.cv_results_
    failed = np.array([p["min_samples_split"] == 0 for p in results["params"]])
    assert failed.any() and (~failed).any()
    assert np.isnan(results["mean_test_score"][failed]).all()
    assert results["rank_test_score"][failed].min() > results["rank_test_score"][~failed].max()
    assert search.best_params_["min_samples_split"] == 3
    with pytest.raises(ValueError, match="min_samples_split"):
        MetaSearchCV(DecisionTreeClassifier(random_state=0), n_trials=10, cv=2, random_state=0, error_score="raise",
                     param_distributions=distributions).fit(X, y)


def test_n_jobs_and_shared_storage(tmp_path, cancer):
    X, y = cancer
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = MetaSearchCV(Ridge(), n_trials=4, cv=2, random_state=0, n_jobs=2, storage=storage,
                         study_name="ridge").fit(X, y)
    assert len(first.cv_results_["params"]) == 4 and len(first.study_.trials) == 3
    # a second worker on the same storage continues the study and sees every trial
    second = MetaSearchCV(Ridge(), n_trials=3, cv=2, random_state=1, storage=storage, study_name="ridge").fit(X, y)
    assert len(second.study_.trials) == 5 and len(second.cv_results_["params"]) == 6
    assert second.best_score_ >= first.best_score_


def test_clear_errors(cancer):
    X, y = cancer
    with pytest.raises(ValueError, match="no search space for DecisionTreeClassifier: pass param_distributions"):
        MetaSearchCV(DecisionTreeClassifier(), n_trials=2).fit(X, y)
    with pytest.raises(ValueError, match="has no parameter 'max_dept'"):
        MetaSearchCV(DecisionTreeClassifier(), param_distributions={"max_dept": IntDistribution(1, 5)}).fit(X, y)
    with pytest.raises(TypeError, match="must be an Optuna distribution"):
        MetaSearchCV(DecisionTreeClassifier(), param_distributions={"max_depth": [1, 3, 5]}).fit(X, y)
    with pytest.raises(ValueError, match="unknown scoring 'acuracy'"):
        MetaSearchCV(Ridge(), scoring="acuracy").fit(X, y)
    with pytest.raises(ValueError, match="several metrics are not supported"):
        MetaSearchCV(Ridge(), scoring=["r2", "neg_mean_squared_error"]).fit(X, y)
    with pytest.raises(ValueError, match="n_trials must be a positive int"):
        MetaSearchCV(Ridge(), n_trials=0).fit(X, y)
    with pytest.raises(ValueError, match="set timeout"):
        MetaSearchCV(Ridge(), n_trials=None).fit(X, y)
    with pytest.raises(ValueError, match="unknown search space 'catboost'"):
        MetaSearchCV(Ridge(), search_space="catboost").fit(X, y)
    with pytest.raises(ValueError, match="requires y to be passed"):
        MetaSearchCV(Ridge()).fit(X, None)


def test_recognise_every_space_and_subclasses():
    pytest.importorskip("lightgbm")
    pytest.importorskip("xgboost")
    for name, space in SEARCH_SPACES.items():
        assert recognise(space.estimator_class()()).name == name

    class MyForest(RandomForestRegressor):
        pass

    assert recognise(MyForest()).name == "random_forest_regressor"
    assert recognise(make_pipeline(StandardScaler(), make_pipeline(HistGradientBoostingClassifier()))).name == (
        "hist_gradient_boosting"
    )
    assert recognise(DecisionTreeClassifier()) is None


def test_lightgbm_is_warm_started_when_its_knowledge_base_ships(cancer):
    lightgbm = pytest.importorskip("lightgbm")
    X, y = cancer
    search = MetaSearchCV(lightgbm.LGBMClassifier(verbosity=-1, n_jobs=1), n_trials=2, cv=2, random_state=0)
    search.fit(X, y)
    assert search.search_space_ == "lightgbm"
    from autometa.hpo.pretrained import pretrained_names

    assert search.warm_started_ == ("lightgbm" in pretrained_names())
    incumbent = search.cv_results_["params"][search.incumbent_index_]
    assert set(incumbent) == {"learning_rate", "n_estimators", "num_leaves", "min_child_samples",
                              "reg_lambda", "colsample_bytree", "class_weight"}


@pytest.mark.parametrize("estimator", [LogisticRegression(), Ridge()], ids=["warm-started", "tpe"])
def test_check_estimator(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(MetaSearchCV(estimator, n_trials=2, cv=2, random_state=0, error_score="raise"))


def test_custom_cv_splitter_and_groups(cancer):
    X, y = cancer
    search = MetaSearchCV(Ridge(), n_trials=2, cv=KFold(4, shuffle=True, random_state=0), random_state=0).fit(X, y)
    assert search.n_splits_ == 4 and "split3_test_score" in search.cv_results_


def test_own_knowledge_base_replaces_the_shipped_one(cancer):
    from autometa.hpo.knowledge_base import KnowledgeBase

    X, y = cancer
    kept = [task for task in load_pretrained("svc") if "breast" not in task.name and "wdbc" not in task.name]
    search = MetaSearchCV(SVC(), n_trials=3, cv=2, random_state=0, knowledge_base=KnowledgeBase(kept)).fit(X, y)
    names = {task.name for task in kept}
    sources = [t.user_attrs["autometa:source_task"] for t in search.study_.trials]
    assert search.warm_started_ and set(sources) <= names
    with pytest.raises(ValueError, match="knowledge_base needs a search space"):
        MetaSearchCV(DecisionTreeClassifier(), param_distributions={"max_depth": IntDistribution(1, 5)},
                     knowledge_base=KnowledgeBase(kept)).fit(X, y)


def test_progress_bar_and_optuna_logging_follow_verbose(cancer, capsys):
    X, y = cancer
    before = optuna.logging.get_verbosity()  # other test modules set their own level when imported
    MetaSearchCV(Ridge(), n_trials=3, cv=2, random_state=0, verbose=1).fit(X, y)
    assert "2/2" in capsys.readouterr().err  # the study's trials, after the estimator as given
    MetaSearchCV(Ridge(), n_trials=2, cv=2, random_state=0).fit(X, y)
    assert capsys.readouterr().err == ""
    assert optuna.logging.get_verbosity() == before  # restored after fit


def test_the_estimator_as_given_is_scored_first_and_kept_unless_beaten():
    X, y = make_classification(n_samples=80, n_features=5, random_state=0)
    # a space of bad leaf sizes only: the estimator's own min_samples_leaf=1 wins
    bad = {"min_samples_leaf": IntDistribution(30, 39)}
    tree = DecisionTreeClassifier(random_state=0)
    search = MetaSearchCV(tree, n_trials=4, cv=2, random_state=0, param_distributions=bad).fit(X, y)
    assert search.cv_results_["params"][0] == {} and len(search.study_.trials) == 3
    assert search.best_index_ == 0 and search.best_params_ == {}
    # the search's own incumbent, passed over: the trial of best mean (TPE), among the study's rows
    means = search.cv_results_["mean_test_score"]
    assert search.incumbent_index_ == 1 + int(np.argmax(means[1:])) and means[search.incumbent_index_] < means[0]
    assert search.best_estimator_.get_params()["min_samples_leaf"] == 1
    assert np.ma.is_masked(search.cv_results_["param_min_samples_leaf"][0])
    assert search.best_score_ == search.cv_results_["mean_test_score"].max()
    good = {"min_samples_leaf": IntDistribution(1, 3)}
    worse_default = MetaSearchCV(DecisionTreeClassifier(min_samples_leaf=39, random_state=0), n_trials=4, cv=2,
                                 random_state=0, param_distributions=good).fit(X, y)
    assert worse_default.best_index_ > 0 and worse_default.best_params_["min_samples_leaf"] <= 3
    assert worse_default.incumbent_index_ == worse_default.best_index_
    only = MetaSearchCV(tree, n_trials=1, cv=2, param_distributions=good).fit(X, y)
    assert only.best_params_ == {} and len(only.study_.trials) == 0 and only.incumbent_index_ is None


def test_docstring_example_runs():
    import doctest

    from autometa.hpo import search_cv

    result = doctest.testmod(search_cv, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_the_incumbent_replaces_the_estimator_as_given_only_if_ahead_on_new_folds_too():
    X, y = make_classification(n_samples=80, n_features=5, random_state=0)
    good = {"min_samples_leaf": IntDistribution(1, 3)}
    weak = DecisionTreeClassifier(min_samples_leaf=39, random_state=0)
    search = MetaSearchCV(weak, n_trials=4, cv=3, random_state=0, param_distributions=good).fit(X, y)
    confirm = search.confirm_scores_
    assert set(confirm) == {"estimator", "incumbent"} and all(len(v) == search.n_splits_ for v in confirm.values())
    assert confirm["incumbent"].mean() > confirm["estimator"].mean() and search.best_index_ == search.incumbent_index_
    # the new folds are other folds: the incumbent scores differently there than in cv_results_
    row = search.incumbent_index_
    assert not np.allclose(confirm["incumbent"], [search.cv_results_[f"split{k}_test_score"][row] for k in range(3)])

    # labels that are noise: every trial's lead over the estimator as given is luck, and the decision follows
    # the new folds alone
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 2, size=80)
    seeds = {"random_state": IntDistribution(1, 1000)}
    tree = DecisionTreeClassifier(splitter="random", max_depth=2, random_state=0)
    kept, replaced = 0, 0
    for seed in range(6):
        lucky = MetaSearchCV(tree, n_trials=8, cv=3, random_state=seed, param_distributions=seeds).fit(X, noise)
        means = lucky.cv_results_["mean_test_score"]
        if lucky.confirm_scores_ is None:
            assert means[0] >= means[lucky.incumbent_index_] and lucky.best_index_ == 0
            continue
        ahead = lucky.confirm_scores_["incumbent"].mean() > lucky.confirm_scores_["estimator"].mean()
        assert lucky.best_index_ == (lucky.incumbent_index_ if ahead else 0)
        assert lucky.best_score_ == means[lucky.best_index_]
        kept, replaced = kept + (not ahead), replaced + ahead
    assert kept > 0  # luck on cv's folds did not carry over to the new ones every time

    same_seed = MetaSearchCV(tree, n_trials=8, cv=3, random_state=3, param_distributions=seeds).fit(X, noise)
    again = MetaSearchCV(tree, n_trials=8, cv=3, random_state=3, param_distributions=seeds).fit(X, noise)
    assert same_seed.best_index_ == again.best_index_
    if same_seed.confirm_scores_ is not None:
        np.testing.assert_array_equal(same_seed.confirm_scores_["incumbent"], again.confirm_scores_["incumbent"])


def test_confirmation_is_skipped_when_off_or_when_cv_cannot_be_reshuffled():
    from sklearn.model_selection import GroupKFold

    X, y = make_classification(n_samples=80, n_features=5, random_state=0)
    good = {"min_samples_leaf": IntDistribution(1, 3)}
    weak = DecisionTreeClassifier(min_samples_leaf=39, random_state=0)
    off = MetaSearchCV(weak, n_trials=3, cv=3, random_state=0, param_distributions=good,
                       confirm_incumbent=False).fit(X, y)
    assert off.confirm_scores_ is None and off.best_index_ == off.incumbent_index_ > 0
    groups = np.arange(80) % 4
    for cv in (GroupKFold(4), KFold(4), list(KFold(4).split(X))):
        search = MetaSearchCV(weak, n_trials=3, cv=cv, random_state=0, param_distributions=good).fit(X, y, groups=groups)
        assert search.confirm_scores_ is None and search.best_index_ == search.incumbent_index_ > 0
    shuffled = MetaSearchCV(weak, n_trials=3, cv=KFold(4, shuffle=True, random_state=0), random_state=0,
                            param_distributions=good).fit(X, y)
    assert len(shuffled.confirm_scores_["incumbent"]) == 4
    regressor = MetaSearchCV(Ridge(alpha=1e4), n_trials=3, cv=3, random_state=0,
                             param_distributions={"alpha": CategoricalDistribution([0.1])}).fit(X, y.astype(float))
    assert len(regressor.confirm_scores_["estimator"]) == 3  # KFold for a regressor
    with pytest.raises(TypeError, match="confirm_incumbent must be True or False"):
        MetaSearchCV(weak, confirm_incumbent="yes").fit(X, y)
