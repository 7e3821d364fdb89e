"""The default ``algorithm="auto"`` of FewShotClassifier and FewShotRegressor (the validated choice)."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from autometa import FewShotClassifier, FewShotRegressor
from autometa.estimators.validated import (
    HEADS,
    REPRESENTATIONS,
    Head,
    ValidatedChoice,
    batched_predict,
    support_check,
    support_folds,
    within_class_whitener,
)
from autometa.estimators.validated_regression import CANDIDATES

FAST = {"meta_steps": 30, "random_state": 0}


def correlated_noise_classes(n_classes=30, per_class=25, d=12, seed=0):
    """Classes whose means differ weakly in every direction, under a strong noise shared by all classes
    along one direction: raw distances are mostly noise, the within-class whitening learned from other
    classes removes it."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)
    means = rng.normal(scale=0.6, size=(n_classes, d))
    y = np.repeat(np.arange(n_classes), per_class)
    X = means[y] + 4.0 * rng.normal(size=(len(y), 1)) * direction + 0.3 * rng.normal(size=(len(y), d))
    return X, y


X_TOY, Y_TOY = correlated_noise_classes()
OLD = Y_TOY < 20


def tasks(k_shot, n_tasks=30, n_way=5, seed=1):
    rng = np.random.default_rng(seed)
    for _ in range(n_tasks):
        support, query = [], []
        for c in rng.choice(np.arange(20, 30), n_way, replace=False):
            rows = rng.permutation(np.flatnonzero(Y_TOY == c))
            support += list(rows[:k_shot])
            query += list(rows[k_shot : k_shot + 10])
        yield X_TOY[support], Y_TOY[support], X_TOY[query], Y_TOY[query]


@pytest.fixture
def few_validation_episodes(monkeypatch):
    """Meta-fits in the tests that check bookkeeping, not accuracy, validate on 10 episodes (not 50)."""
    init = ValidatedChoice.__init__
    monkeypatch.setattr(ValidatedChoice, "__init__", lambda self, *args, val_episodes=10, **kwargs: init(
        self, *args, val_episodes=val_episodes, **kwargs))


@pytest.fixture(scope="module")
def auto():
    return FewShotClassifier(**FAST).meta_fit(X_TOY[OLD], Y_TOY[OLD])


def test_auto_is_the_default_of_both_estimators():
    assert FewShotClassifier().algorithm == "auto"
    assert FewShotRegressor().algorithm == "auto"


def test_validation_picks_the_meta_learned_whitening_and_beats_raw_feature_baselines(auto):
    assert auto.validated_
    assert auto.choices_[1][0] != "raw" and auto.choices_[5][0] != "raw"
    for k in (1, 5):
        scores = {"auto": [], "1-NN": [], "logistic": []}
        for Xs, ys, Xq, yq in tasks(k):
            scores["auto"].append(auto.fit(Xs, ys).score(Xq, yq))
            scores["1-NN"].append(make_pipeline(StandardScaler(), KNeighborsClassifier(1)).fit(Xs, ys).score(Xq, yq))
            scores["logistic"].append(make_pipeline(StandardScaler(), LogisticRegression()).fit(Xs, ys).score(Xq, yq))
        means = {m: np.mean(v) for m, v in scores.items()}
        margin = 0.1 if k == 1 else 0.01
        assert means["auto"] > max(means["1-NN"], means["logistic"]) + margin, (k, means)


def test_fitted_attributes_say_what_was_chosen_and_why(auto):
    assert set(auto.choices_) == {1, 5, 10}
    for k, (rep, head) in auto.choices_.items():
        assert rep in REPRESENTATIONS and head in HEADS
        assert auto.validation_scores_[k, rep, head] == max(
            v for (kk, r, h), v in auto.validation_scores_.items() if kk == k and r in ("raw", rep))
    sizes = auto.episode_sizes_
    assert sizes["folds"] == 3 and sizes["episodes_per_fold"] == 50
    assert sizes["per_k"][5] == {"n_way": 5, "k_shot": 5, "n_query": 10}
    Xs, ys, _, _ = next(tasks(3))
    auto.fit(Xs, ys)
    assert auto.k_used_ == 5  # 3 is nearer 5 than 1 on a log scale
    assert (auto.representation_, auto.head_) == auto.choices_[5]
    assert auto.embedding_used_ == ("emb" in auto.representation_)


def test_predict_is_the_argmax_of_predict_proba_even_on_ties(auto):
    X = np.zeros((5, X_TOY.shape[1]))
    y = np.array([0, 1, -1, 2, -2])
    for clf in (auto, FewShotClassifier()):
        clf.fit(X, y)
        proba = clf.predict_proba(X[:1])
        np.testing.assert_allclose(proba.sum(1), 1)
        assert clf.predict(X[:1])[0] == clf.classes_[proba.argmax(1)][0]
    for Xs, ys, Xq, _ in tasks(5, n_tasks=3):
        auto.fit(Xs, ys)
        np.testing.assert_array_equal(auto.predict(Xq), auto.classes_[auto.predict_proba(Xq).argmax(1)])


def test_without_meta_fit_the_raw_feature_rule():
    clf = FewShotClassifier()
    clf.fit(X_TOY[:60:30], Y_TOY[:60:30])
    assert (clf.representation_, clf.head_, clf.k_used_) == ("raw", "centroid", None)
    clf.fit(X_TOY[:90], Y_TOY[:90])
    assert clf.head_ == "logistic" and not clf.embedding_used_


@pytest.mark.parametrize("counts", [[2, 2, 3], [5, 5, 5, 5, 5], [10, 12, 10], [3, 7]])
def test_support_folds_leave_every_class_a_training_row(counts):
    codes = np.repeat(np.arange(len(counts)), counts)
    folds = support_folds(codes, seed=3)
    assert folds.max() + 1 == min(min(counts), 5)
    for f in range(folds.max() + 1):
        assert set(codes[folds != f]) == set(codes)
        assert np.bincount(codes[folds == f]).max() <= -(-max(counts) // (folds.max() + 1))
    np.testing.assert_array_equal(folds, support_folds(codes, seed=3))


def test_support_check_falls_back_only_on_significant_evidence():
    rng = np.random.default_rng(0)
    codes = np.repeat(np.arange(5), 10)
    X = rng.normal(size=(5, 8))[codes] * 3 + rng.normal(size=(50, 8))
    # a feature map that shrinks the informative signal away: logistic regression (C=1) on it guesses
    shrunk = support_check(lambda Z: Z * 1e-4, "logistic", X, codes, 5)
    assert shrunk["switched"] and shrunk["p_value"] < 0.05 and shrunk["folds"] == 5
    assert shrunk["support_rule"] > shrunk["validated"] + 0.3
    kept = support_check(lambda Z: Z, "centroid", X, codes, 5)
    assert not kept["switched"] and kept["validated"] >= 0.9
    same = support_check(lambda Z: (Z - X.mean(0)) / X.std(0), "logistic", X, codes, 5)
    assert not same["switched"] and same["p_value"] == 1.0


def scale_shifted_classes(seed=0):
    """Old classes that differ in every feature, feature 0 in thousands of units, and new classes that
    differ on feature 0 alone, in units: the meta-training standardisation shrinks the new classes' signal
    a thousandfold and validation on old classes cannot see it."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(16), 30)
    X = rng.normal(size=(len(y), 6))
    old = y < 10
    X[old] += rng.normal(size=(10, 6))[y[old]]
    X[old, 0] *= 1000
    X[~old, 0] = 2.0 * (y[~old] - 13) + 0.3 * rng.normal(size=(~old).sum())
    return X, y


def test_fit_falls_back_to_the_raw_feature_rule_when_the_support_shows_it_better(few_validation_episodes):
    X, y = scale_shifted_classes()
    old = y < 10
    clf = FewShotClassifier(**FAST).meta_fit(X[old], y[old])
    rng = np.random.default_rng(1)
    scores, rule = [], []
    for _ in range(5):
        support, query = [], []
        for c in rng.choice(np.arange(10, 16), 5, replace=False):
            rows = rng.permutation(np.flatnonzero(y == c))
            support += list(rows[:10])
            query += list(rows[10:20])
        clf.fit(X[support], y[support])
        check = clf.support_check_
        assert check["switched"] and check["support_rule"] > check["validated"] + 0.2 and clf.k_used_ is None
        assert (clf.representation_, clf.head_) == ("raw", "logistic")
        scores.append(clf.score(X[query], y[query]))
        rule.append(FewShotClassifier().fit(X[support], y[support]).score(X[query], y[query]))
    np.testing.assert_allclose(scores, rule)
    clf.fit(X[support][::10], y[support][::10])  # one example per class: nothing to cross-validate
    assert clf.support_check_ is None and clf.k_used_ == 1


def test_fit_keeps_the_validated_choice_when_the_support_agrees(auto):
    for Xs, ys, _, _ in tasks(5, n_tasks=5):
        auto.fit(Xs, ys)
        assert not auto.support_check_["switched"]
        assert (auto.representation_, auto.head_) == auto.choices_[5]


@pytest.mark.parametrize("n_classes", [2, 4])
def test_small_meta_training_sets_work_and_say_what_was_used(n_classes, few_validation_episodes):
    few = Y_TOY < n_classes
    clf = FewShotClassifier(**FAST).meta_fit(X_TOY[few], Y_TOY[few])
    if n_classes == 2:
        assert not clf.validated_ and clf.episode_sizes_["folds"] == 0
        assert clf.choices_ == {1: ("raw", "centroid"), 5: ("raw", "logistic")}
    else:
        assert clf.validated_ and clf.episode_sizes_["per_k"][1]["n_way"] == 2
    Xs, ys, Xq, yq = next(tasks(1))
    assert clf.fit(Xs, ys).predict(Xq).shape == yq.shape
    # an explicit episodic setting that cannot be met keeps its clear error
    with pytest.raises(ValueError, match="lower n_way"):
        FewShotClassifier("protonet", n_way=5, device="cpu").meta_fit(X_TOY[few], Y_TOY[few])


def test_random_state_makes_the_default_deterministic(few_validation_episodes):
    Xs, ys, Xq, _ = next(tasks(5))
    few = Y_TOY < 6
    fitted = [FewShotClassifier(**FAST).meta_fit(X_TOY[few], Y_TOY[few]).fit(Xs, ys) for _ in range(2)]
    assert fitted[0].choices_ == fitted[1].choices_
    assert fitted[0].validation_scores_ == fitted[1].validation_scores_
    np.testing.assert_array_equal(fitted[0].predict_proba(Xq), fitted[1].predict_proba(Xq))


def test_clone_pickle_and_grid_search_keep_the_meta_learned_state(auto):
    Xs, ys, Xq, _ = next(tasks(5))
    expected = auto.fit(Xs, ys).predict_proba(Xq)
    copy = clone(auto)
    assert copy.meta_learner_ is auto.meta_learner_ and copy.choices_ == auto.choices_
    assert not hasattr(copy, "classes_")
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(auto)).predict_proba(Xq), expected)
    search = GridSearchCV(make_pipeline(StandardScaler(with_mean=False, with_std=False), auto),
                          {"fewshotclassifier__random_state": [0, 1]}, cv=2).fit(Xs, ys)
    assert search.best_estimator_[-1].meta_learner_ is auto.meta_learner_


def test_changing_the_algorithm_after_meta_fit_asks_for_meta_fit(auto):
    with pytest.raises(ValueError, match="call meta_fit again"):
        clone(auto).set_params(algorithm="protonet").fit(X_TOY[:60], Y_TOY[:60])


def test_bad_input_keeps_its_errors(auto):
    X = X_TOY[:60].copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clone(auto).fit(X, Y_TOY[:60])
    with pytest.raises(ValueError, match="NaN"):
        FewShotClassifier().meta_fit(X, Y_TOY[:60])
    with pytest.raises(ValueError, match="features"):
        clone(auto).fit(X_TOY[:60, :5], Y_TOY[:60])
    with pytest.raises(ValueError, match="at least 2 classes"):
        clone(auto).fit(X_TOY[:10], Y_TOY[:10])


# -- building blocks -------------------------------------------------------------
def test_within_class_whitener_whitens_the_pooled_covariance():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 200)
    Z = rng.normal(size=(1000, 3)) @ np.array([[3.0, 0, 0], [1, 1, 0], [0, 0, 0.2]])
    W = within_class_whitener(Z, y, shrink=0.0)
    cov = np.cov((Z @ W).T)
    np.testing.assert_allclose(cov / cov[0, 0], np.eye(3), atol=0.05)


@pytest.mark.parametrize("head", HEADS)
def test_heads_agree_batched_and_single(head):
    rng = np.random.default_rng(0)
    Fs, ys = rng.normal(size=(4, 15, 6)) + np.repeat(np.eye(3, 6) * 3, 5, axis=0), np.tile(np.repeat(np.arange(3), 5), (4, 1))
    Fq = rng.normal(size=(4, 9, 6)) + np.repeat(np.eye(3, 6) * 3, 3, axis=0)
    batched = batched_predict(head, Fs, ys, Fq, 3)
    single = np.stack([Head(head, Fs[e], ys[e], 3).log_proba(Fq[e]).argmax(1) for e in range(4)])
    assert (batched == single).mean() > 0.9


# -- regression ----------------------------------------------------------------------
def sinusoids(n_tasks, n_points=20, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_tasks), n_points)
    amplitude, phase = rng.uniform(0.1, 5, n_tasks), rng.uniform(0, np.pi, n_tasks)
    X = rng.uniform(-5, 5, size=(n_tasks * n_points, 1))
    return X, amplitude[groups] * np.sin(X[:, 0] - phase[groups]), groups


def test_regressor_default_beats_ridge_on_new_sinusoids():
    X, y, groups = sinusoids(200)
    reg = FewShotRegressor(meta_steps=400, random_state=0).meta_fit(X, y, groups)
    assert reg.validated_ and set(reg.choices_) == {2, 5, 10}
    assert all(c in CANDIDATES for c in reg.choices_.values())
    Xn, yn, gn = sinusoids(20, seed=1)
    errors = {"auto": [], "ridge": []}
    for g in range(20):
        rows = np.flatnonzero(gn == g)
        s, q = rows[:10], rows[10:]
        errors["auto"].append(np.mean((reg.fit(Xn[s], yn[s]).predict(Xn[q]) - yn[q]) ** 2))
        errors["ridge"].append(np.mean((Ridge().fit(Xn[s], yn[s]).predict(Xn[q]) - yn[q]) ** 2))
    assert reg.k_used_ == 10 and reg.method_ == reg.choices_[10]
    assert np.mean(errors["auto"]) < 0.5 * np.mean(errors["ridge"])
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(Xn[:5]), reg.predict(Xn[:5]))


def test_regressor_without_meta_fit_is_ridge_on_standardised_features():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3)) * [1, 100, 0.01]
    y = X @ [1.0, 0.01, 100.0]
    reg = FewShotRegressor().fit(X, y)
    assert reg.method_ == "ridge" and reg.k_used_ is None
    expected = make_pipeline(StandardScaler(), Ridge(1.0)).fit(X, y).predict(X)
    np.testing.assert_allclose(reg.predict(X), expected)


def test_regressor_with_too_few_groups_to_validate_uses_the_offset_rule():
    X, y, groups = sinusoids(1)
    reg = FewShotRegressor(meta_steps=5, random_state=0).meta_fit(X, y, groups)
    assert not reg.validated_ and reg.choices_ == {2: "offset"}
    assert reg.fit(X[:3], y[:3]).predict(X).shape == (len(X),)
