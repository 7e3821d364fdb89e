"""Search spaces for common scikit-learn estimators, and the standard objective that tunes them.

A :class:`SearchSpace` suggests an estimator's hyperparameters on an Optuna
trial and builds the estimator as a :class:`sklearn.pipeline.Pipeline` whose
first step preprocesses the raw columns (see :func:`make_preprocessor`).
:data:`SEARCH_SPACES` maps a name to each space; :func:`make_objective` turns
a space and a data set into an Optuna objective.

Every space carries a ``version``. It is stored in the user attrs of each
study that ``autometa kb build`` runs (``"autometa:space_version"``) and in
the manifest of the pretrained knowledge bases, and it is bumped whenever the
space changes (a parameter, a range, a fixed setting, the preprocessing), so
a knowledge base is never used with a space it was not built on.

The spaces have no conditional parameters: every trial suggests every
parameter, which keeps them usable by CMA-ES and by the knowledge base's
distance between configurations.

The objective
-------------
- **Classification**: stratified ``cv``-fold cross-validation (shuffled,
  seeded), scored by **balanced accuracy** (the mean of per-class recalls: 1
  is perfect, ``1 / n_classes`` is chance whatever the class imbalance). It
  needs no predicted probabilities (so SVC runs without Platt scaling) and
  is comparable across data sets of different imbalance, which a knowledge
  base needs. Any scikit-learn scorer name can be passed as ``metric``
  (e.g. ``"roc_auc_ovr"``, ``"neg_log_loss"``); scorers are "greater is
  better", so studies always maximise.
- **Regression**: shuffled ``cv``-fold cross-validation scored by R^2.
- **Time limit**: a scikit-learn fit cannot be interrupted portably (no
  signal in a thread, none on Windows), so the objective checks the elapsed
  time after each fold and fails the trial once it exceeds ``time_limit``; a
  trial can thus run up to one fold's fit past the limit.
- **Failures**: any exception while building or fitting (a bad combination,
  a numerical error, the time limit) makes the objective store
  ``"<ErrorType>: <message>"`` in the trial's user attr
  ``"autometa:error"`` and return NaN, which Optuna records as a FAIL trial.
  The study goes on; nothing is raised to ``study.optimize``.
- **Threads**: each fit runs under ``threadpoolctl.threadpool_limits(n_threads)``
  (default 1), so parallel studies do not oversubscribe the cores with
  OpenMP/BLAS threads.
"""

from __future__ import annotations

import functools
import importlib
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    LabelEncoder,
    OneHotEncoder,
    OrdinalEncoder,
    QuantileTransformer,
    StandardScaler,
)
from sklearn.svm import SVC, SVR
from threadpoolctl import threadpool_limits

from autometa.hpo.encoding import FOLD_SCORES_KEY  # the objective stores each trial's fold scores there

__all__ = [
    "ERROR_KEY",
    "SEARCH_SPACES",
    "SearchSpace",
    "estimator_value",
    "get_space",
    "make_objective",
    "make_preprocessor",
    "prepare_features",
]

#: The trial user attr holding a failed trial's error.
ERROR_KEY = "autometa:error"
_MISSING_CATEGORY = "__missing__"
# One-hot columns per categorical feature at most; rarer values share one column.
_MAX_CATEGORIES = 32


@dataclass(frozen=True)
class SearchSpace:
    """A scikit-learn estimator's search space.

    Attributes
    ----------
    name : str
        The registry name, e.g. ``"hist_gradient_boosting"``.
    version : str
        Bumped whenever the space, its fixed settings or its preprocessing change.
    task : {"classification", "regression"}
        What the estimator predicts.
    suggest : callable
        ``suggest(trial) -> dict``: suggests every parameter on an Optuna trial.
    make_model : callable
        ``make_model(params, random_state) -> estimator``: the model without
        preprocessing, from a parameter dict as ``suggest`` returns it.
    categorical : {"onehot", "ordinal"}
        How categorical columns are encoded (ordinal codes suit trees).
    impute : bool
        Whether numeric missing values are imputed (by the median); false
        for estimators that handle NaN natively.
    description : str
        One line for listings.
    estimator : str
        The public path of the estimator class the space tunes, e.g.
        ``"sklearn.svm.SVC"``: :class:`~autometa.hpo.search_cv.MetaSearchCV`
        recognises its instances (and subclasses') by it.
    estimator_params : tuple of str or None
        The space's parameters that are keyword arguments of that class, with
        the same meaning (a categorical ``"none"`` stands for ``None``); None:
        all of them. The others (e.g. a scaler choice) exist only in the
        space's own pipeline.
    """

    name: str
    version: str
    task: str
    suggest: Callable[[optuna.Trial], dict[str, Any]]
    make_model: Callable[[dict[str, Any], int], BaseEstimator]
    categorical: str
    impute: bool
    description: str
    estimator: str = ""
    estimator_params: tuple[str, ...] | None = None

    def estimator_class(self) -> type | None:
        """The class of :attr:`estimator`, or None when its package is not installed."""
        module, _, name = self.estimator.rpartition(".")
        try:
            return getattr(importlib.import_module(module), name)
        except ImportError:
            return None

    def build(self, params: dict[str, Any], X=None, random_state: int = 0) -> Pipeline:
        """The estimator for ``params``: ``Pipeline([("preprocess", ...), ("model", ...)])``.

        Parameters
        ----------
        params : dict
            A value for every parameter of the space (e.g. ``study.best_params``).
        X : array-like or DataFrame or None, default=None
            Data whose column types decide the preprocessing
            (:func:`make_preprocessor`); None assumes all columns numeric.
        random_state : int, default=0
            Seeds the model.
        """
        missing = sorted(set(self.distributions()) - set(params))
        if missing:
            raise ValueError(f"params for search space {self.name!r} lack {missing}")
        model = self.make_model(params, random_state)
        return Pipeline([("preprocess", make_preprocessor(X, self.categorical, self.impute)), ("model", model)])

    def suggest_estimator(self, trial: optuna.Trial, X=None, random_state: int = 0) -> Pipeline:
        """Suggest the parameters on ``trial`` and build the estimator (see :meth:`build`)."""
        return self.build(self.suggest(trial), X, random_state)

    def distributions(self) -> dict[str, BaseDistribution]:
        """Each parameter's Optuna distribution (the space has no conditional parameters)."""
        return dict(_distributions(self.suggest))


@functools.lru_cache(maxsize=None)
def _distributions(suggest: Callable[[optuna.Trial], dict[str, Any]]) -> tuple:
    """The distributions ``suggest`` draws from, as ``(name, distribution)`` pairs, read off one throwaway trial
    (without the in-memory storage's log line for the study it creates)."""
    in_memory = logging.getLogger("optuna.storages._in_memory")
    level = in_memory.level
    in_memory.setLevel(logging.WARNING)
    try:
        study = optuna.create_study(storage=optuna.storages.InMemoryStorage(),
                                    sampler=optuna.samplers.RandomSampler(seed=0), study_name="distributions")
    finally:
        in_memory.setLevel(level)
    trial = study.ask()
    suggest(trial)
    return tuple(trial.distributions.items())


def estimator_value(value):
    """A space's categorical value as the estimator takes it: ``"none"`` stands for ``None``."""
    return None if value == "none" else value


# -- classification ------------------------------------------------------------------
def _suggest_hgb(trial: optuna.Trial, classification: bool = True) -> dict[str, Any]:
    params = {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.5, log=True),
        "max_iter": trial.suggest_int("max_iter", 20, 300, log=True),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 4, 128, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 2, 100, log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-6, 10.0, log=True),
        "max_features": trial.suggest_float("max_features", 0.2, 1.0),
    }
    if classification:
        params["class_weight"] = trial.suggest_categorical("class_weight", ["none", "balanced"])
    return params


def _hgb_classifier(params: dict[str, Any], random_state: int) -> BaseEstimator:
    kwargs = {k: v for k, v in params.items() if k != "class_weight"}
    return HistGradientBoostingClassifier(
        **kwargs, class_weight=estimator_value(params["class_weight"]), early_stopping=False,
        random_state=random_state,
    )


def _suggest_rf(trial: optuna.Trial, classification: bool = True) -> dict[str, Any]:
    params = {
        "n_estimators": trial.suggest_int("n_estimators", 32, 256, log=True),
        "max_features": trial.suggest_float("max_features", 0.05, 1.0),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 32, log=True),
        "bootstrap": trial.suggest_categorical("bootstrap", [True, False]),
    }
    if classification:
        params["criterion"] = trial.suggest_categorical("criterion", ["gini", "entropy"])
        params["class_weight"] = trial.suggest_categorical("class_weight", ["none", "balanced"])
    return params


def _rf_classifier(params: dict[str, Any], random_state: int) -> BaseEstimator:
    kwargs = {k: v for k, v in params.items() if k != "class_weight"}
    return RandomForestClassifier(
        **kwargs, class_weight=estimator_value(params["class_weight"]), n_jobs=1, random_state=random_state
    )


def _suggest_svc(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "C": trial.suggest_float("C", 1e-3, 1e3, log=True),
        "gamma": trial.suggest_float("gamma", 1e-4, 10.0, log=True),
        "class_weight": trial.suggest_categorical("class_weight", ["none", "balanced"]),
    }


def _svc(params: dict[str, Any], random_state: int) -> BaseEstimator:
    svc = SVC(C=params["C"], gamma=params["gamma"], class_weight=estimator_value(params["class_weight"]),
              kernel="rbf", cache_size=500, random_state=random_state)
    return make_pipeline(StandardScaler(), svc)


def _suggest_logistic(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "C": trial.suggest_float("C", 1e-4, 1e4, log=True),
        "class_weight": trial.suggest_categorical("class_weight", ["none", "balanced"]),
        "scaler": trial.suggest_categorical("scaler", ["standard", "quantile"]),
    }


def _scaler(name: str, random_state: int) -> BaseEstimator:
    if name == "standard":
        return StandardScaler()
    # rank-based: robust to skewed features and outliers, which linear models feel most
    return QuantileTransformer(output_distribution="normal", n_quantiles=100, random_state=random_state)


def _logistic(params: dict[str, Any], random_state: int) -> BaseEstimator:
    model = LogisticRegression(C=params["C"], class_weight=estimator_value(params["class_weight"]),
                               max_iter=500, random_state=random_state)
    return make_pipeline(_scaler(params["scaler"], random_state), model)


def _suggest_knn(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "n_neighbors": trial.suggest_int("n_neighbors", 1, 64, log=True),
        "weights": trial.suggest_categorical("weights", ["uniform", "distance"]),
        "p": trial.suggest_categorical("p", [1, 2]),
    }


def _knn(params: dict[str, Any], random_state: int) -> BaseEstimator:
    model = KNeighborsClassifier(n_neighbors=params["n_neighbors"], weights=params["weights"], p=params["p"])
    return make_pipeline(StandardScaler(), model)


#: The epochs of the ``mlp`` space's MLPClassifier at most (scikit-learn's default); it stops earlier when the
#: score on its own 10% validation part has not improved for 10 epochs.
MLP_MAX_ITER = 200


def _suggest_mlp(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "learning_rate_init": trial.suggest_float("learning_rate_init", 1e-4, 1e-1, log=True),
        "alpha": trial.suggest_float("alpha", 1e-6, 1e-1, log=True),
        "width": trial.suggest_int("width", 16, 256, log=True),
        "depth": trial.suggest_int("depth", 1, 3),
        "batch_size": trial.suggest_int("batch_size", 16, 256, log=True),
    }


def _mlp(params: dict[str, Any], random_state: int) -> BaseEstimator:
    model = MLPClassifier(hidden_layer_sizes=(params["width"],) * params["depth"],
                          learning_rate_init=params["learning_rate_init"], alpha=params["alpha"],
                          batch_size=params["batch_size"], max_iter=MLP_MAX_ITER, early_stopping=True,
                          random_state=random_state)
    return make_pipeline(StandardScaler(), model)


def _suggest_lightgbm(trial: optuna.Trial, classification: bool = True) -> dict[str, Any]:
    params = {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 20, 500, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 128, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 2, 100, log=True),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-6, 10.0, log=True),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.2, 1.0),
    }
    if classification:
        params["class_weight"] = trial.suggest_categorical("class_weight", ["none", "balanced"])
    return params


def _lightgbm(params: dict[str, Any], random_state: int, classification: bool = True) -> BaseEstimator:
    import lightgbm

    kwargs = dict(params, n_jobs=1, verbosity=-1, random_state=random_state)
    if classification:
        kwargs["class_weight"] = estimator_value(params["class_weight"])
        return lightgbm.LGBMClassifier(**kwargs)
    return lightgbm.LGBMRegressor(**kwargs)


def _suggest_xgboost(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 20, 500, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 12),
        "min_child_weight": trial.suggest_float("min_child_weight", 0.01, 30.0, log=True),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 100.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.2, 1.0),
    }


def _xgboost(params: dict[str, Any], random_state: int, classification: bool = True) -> BaseEstimator:
    import xgboost

    kwargs = dict(params, tree_method="hist", n_jobs=1, verbosity=0, random_state=random_state)
    if classification:
        return LabelEncodedClassifier(xgboost.XGBClassifier(**kwargs))
    return xgboost.XGBRegressor(**kwargs)


class LabelEncodedClassifier(ClassifierMixin, BaseEstimator):
    """A classifier fitted on labels ``0 .. n_classes - 1``, predicting the original labels.

    XGBoost's classifier accepts only those codes; this lets the search space
    tune it on any labels, as scikit-learn's classifiers take them.

    Parameters
    ----------
    estimator : classifier
        Fitted (a clone) on ``LabelEncoder``-coded targets.
    """

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, X, y, **fit_params):
        self.label_encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.label_encoder_.classes_
        self.estimator_ = clone(self.estimator).fit(X, self.label_encoder_.transform(y), **fit_params)
        return self

    def predict(self, X):
        return self.label_encoder_.inverse_transform(np.asarray(self.estimator_.predict(X)).astype(int))

    def predict_proba(self, X):
        return self.estimator_.predict_proba(X)


# -- regression ----------------------------------------------------------------------
def _hgb_regressor(params: dict[str, Any], random_state: int) -> BaseEstimator:
    return HistGradientBoostingRegressor(**params, early_stopping=False, random_state=random_state)


def _rf_regressor(params: dict[str, Any], random_state: int) -> BaseEstimator:
    return RandomForestRegressor(**params, n_jobs=1, random_state=random_state)


def _suggest_svr(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "C": trial.suggest_float("C", 1e-3, 1e3, log=True),
        "gamma": trial.suggest_float("gamma", 1e-4, 10.0, log=True),
        "epsilon": trial.suggest_float("epsilon", 1e-3, 1.0, log=True),
    }


def _svr(params: dict[str, Any], random_state: int) -> BaseEstimator:
    # epsilon is in units of the standardised target, so one range fits every data set
    svr = make_pipeline(StandardScaler(), SVR(C=params["C"], gamma=params["gamma"], epsilon=params["epsilon"],
                                              cache_size=500))
    return TransformedTargetRegressor(regressor=svr, transformer=StandardScaler())


def _suggest_ridge(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "alpha": trial.suggest_float("alpha", 1e-4, 1e4, log=True),
        "scaler": trial.suggest_categorical("scaler", ["standard", "quantile"]),
    }


def _ridge(params: dict[str, Any], random_state: int) -> BaseEstimator:
    return make_pipeline(_scaler(params["scaler"], random_state), Ridge(alpha=params["alpha"]))


#: name -> :class:`SearchSpace`.
SEARCH_SPACES: dict[str, SearchSpace] = {
    space.name: space
    for space in (
        SearchSpace("hist_gradient_boosting", "1", "classification", _suggest_hgb, _hgb_classifier, "ordinal", False,
                    "HistGradientBoostingClassifier: learning rate, iterations, leaves, leaf size, L2, "
                    "feature fraction, class weight",
                    estimator="sklearn.ensemble.HistGradientBoostingClassifier"),
        SearchSpace("random_forest", "1", "classification", _suggest_rf, _rf_classifier, "ordinal", True,
                    "RandomForestClassifier: trees, feature fraction, leaf size, bootstrap, criterion, class weight",
                    estimator="sklearn.ensemble.RandomForestClassifier"),
        SearchSpace("svc", "1", "classification", _suggest_svc, _svc, "onehot", True,
                    "StandardScaler + RBF SVC: C, gamma, class weight",
                    estimator="sklearn.svm.SVC"),
        SearchSpace("logistic_regression", "1", "classification", _suggest_logistic, _logistic, "onehot", True,
                    "scaler (standard or quantile-normal) + L2 LogisticRegression: C, class weight",
                    estimator="sklearn.linear_model.LogisticRegression", estimator_params=('C', 'class_weight')),
        SearchSpace("k_nearest_neighbors", "1", "classification", _suggest_knn, _knn, "onehot", True,
                    "StandardScaler + KNeighborsClassifier: neighbours, weights, Minkowski p (1 or 2)",
                    estimator="sklearn.neighbors.KNeighborsClassifier"),
        SearchSpace("mlp", "1", "classification", _suggest_mlp, _mlp, "onehot", True,
                    "StandardScaler + MLPClassifier (adam, early stopping): learning rate, L2 alpha, width, depth, "
                    "batch size",
                    estimator="sklearn.neural_network.MLPClassifier",
                    estimator_params=("learning_rate_init", "alpha", "batch_size")),
        SearchSpace("lightgbm", "1", "classification", _suggest_lightgbm, _lightgbm, "ordinal", False,
                    "lightgbm.LGBMClassifier: learning rate, trees, leaves, leaf size, L2, column fraction, "
                    "class weight (extra 'gbm')",
                    estimator="lightgbm.LGBMClassifier"),
        SearchSpace("xgboost", "1", "classification", _suggest_xgboost, _xgboost, "ordinal", False,
                    "xgboost.XGBClassifier (hist): learning rate, trees, depth, child weight, L2, row and column "
                    "fractions (extra 'gbm')",
                    estimator="xgboost.XGBClassifier"),
        SearchSpace("hist_gradient_boosting_regressor", "1", "regression",
                    lambda trial: _suggest_hgb(trial, classification=False), _hgb_regressor, "ordinal", False,
                    "HistGradientBoostingRegressor: learning rate, iterations, leaves, leaf size, L2, "
                    "feature fraction",
                    estimator="sklearn.ensemble.HistGradientBoostingRegressor"),
        SearchSpace("random_forest_regressor", "1", "regression",
                    lambda trial: _suggest_rf(trial, classification=False), _rf_regressor, "ordinal", True,
                    "RandomForestRegressor: trees, feature fraction, leaf size, bootstrap",
                    estimator="sklearn.ensemble.RandomForestRegressor"),
        SearchSpace("svr", "1", "regression", _suggest_svr, _svr, "onehot", True,
                    "StandardScaler + RBF SVR on a standardised target: C, gamma, epsilon",
                    estimator="sklearn.svm.SVR", estimator_params=('C', 'gamma')),
        SearchSpace("ridge", "1", "regression", _suggest_ridge, _ridge, "onehot", True,
                    "scaler (standard or quantile-normal) + Ridge: alpha",
                    estimator="sklearn.linear_model.Ridge", estimator_params=('alpha',)),
        SearchSpace("lightgbm_regressor", "1", "regression",
                    lambda trial: _suggest_lightgbm(trial, classification=False),
                    lambda params, seed: _lightgbm(params, seed, classification=False), "ordinal", False,
                    "lightgbm.LGBMRegressor: learning rate, trees, leaves, leaf size, L2, column fraction "
                    "(extra 'gbm')",
                    estimator="lightgbm.LGBMRegressor"),
        SearchSpace("xgboost_regressor", "1", "regression", _suggest_xgboost,
                    lambda params, seed: _xgboost(params, seed, classification=False), "ordinal", False,
                    "xgboost.XGBRegressor (hist): learning rate, trees, depth, child weight, L2, row and column "
                    "fractions (extra 'gbm')",
                    estimator="xgboost.XGBRegressor"),
    )
}


def get_space(name: str | SearchSpace) -> SearchSpace:
    """The search space called ``name`` (a :class:`SearchSpace` is returned as is).

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    if isinstance(name, SearchSpace):
        return name
    try:
        return SEARCH_SPACES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown search space {name!r}; choose one of {', '.join(SEARCH_SPACES)}"
        ) from None


def _is_categorical(column: pd.Series) -> bool:
    dtype = column.dtype
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
    )


def prepare_features(X) -> pd.DataFrame:
    """A copy of ``X`` as a DataFrame with float numeric columns and string categorical ones.

    Columns of dtype object, string, category or bool are categorical: their
    values become strings and missing ones (NaN, None, ``pd.NA``) the
    category ``"__missing__"``. Other columns become float64 with +-inf as
    NaN. Column labels are kept (a NumPy array gets 0, 1, ...).
    """
    frame = X.copy() if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X) if not hasattr(X, "iloc") else X)
    out = {}
    for label in frame.columns:
        column = frame[label]
        if _is_categorical(column):
            values = column.astype(object)
            out[label] = values.where(values.notna(), _MISSING_CATEGORY).astype(str).astype(object)
        else:
            out[label] = pd.to_numeric(column, errors="coerce").astype(np.float64).replace([np.inf, -np.inf], np.nan)
    return pd.DataFrame(out, index=frame.index, columns=frame.columns)


def make_preprocessor(X=None, categorical: str = "onehot", impute: bool = True) -> ColumnTransformer:
    """Preprocessing for the raw columns of ``X`` (as :func:`prepare_features` returns them).

    Numeric columns: the median imputed where ``impute`` (else passed
    through, NaN kept for estimators that handle it). Categorical columns
    (object, string, category, bool): one-hot (at most 32 columns per
    feature, rarer and unseen values in one shared column) or ordinal codes
    (unseen and missing values coded -1).

    Parameters
    ----------
    X : DataFrame, array-like or None, default=None
        Decides which columns are categorical; None treats all as numeric.
    categorical : {"onehot", "ordinal"}, default="onehot"
    impute : bool, default=True
    """
    if categorical not in ("onehot", "ordinal"):
        raise ValueError(f"categorical must be 'onehot' or 'ordinal', got {categorical!r}")
    if X is None:
        numeric, categories = slice(None), []
    else:
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
        flags = [_is_categorical(frame.iloc[:, i]) for i in range(frame.shape[1])]
        numeric = [i for i, flag in enumerate(flags) if not flag]
        categories = [i for i, flag in enumerate(flags) if flag]
    numeric_step = SimpleImputer(strategy="median", keep_empty_features=True) if impute else "passthrough"
    if categorical == "onehot":
        encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=_MAX_CATEGORIES,
                                sparse_output=False)
    else:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
    return ColumnTransformer(
        [("numeric", numeric_step, numeric), ("categorical", encoder, categories)],
        remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False,
    )


def make_objective(
    space: str | SearchSpace,
    X,
    y,
    cv: int = 3,
    metric: str | None = None,
    time_limit: float | None = None,
    random_state: int = 0,
    n_threads: int | None = 1,
) -> Callable[[optuna.Trial], float]:
    """The standard objective: cross-validated score of the space's estimator on ``(X, y)``.

    See the module docstring for the protocol (folds, metric, time limit,
    failures). The study must maximise (the returned function has
    ``direction = "maximize"``).

    Parameters
    ----------
    space : str or SearchSpace
        A name of :data:`SEARCH_SPACES` or a space.
    X : array-like or DataFrame of shape (n_samples, n_features)
        Raw features; categorical and missing values are handled by the pipeline.
    y : array-like of shape (n_samples,)
        Class labels or regression targets, per the space's task.
    cv : int, default=3
        Number of folds (stratified for classification).
    metric : str or None, default=None
        A scikit-learn scorer name; None: ``"balanced_accuracy"`` for
        classification, ``"r2"`` for regression.
    time_limit : float or None, default=None
        Seconds per trial, checked after each fold; None: no limit.
    random_state : int, default=0
        Seeds the folds and the estimators, so equal parameters score equally.
    n_threads : int or None, default=1
        OpenMP/BLAS threads per fit; None leaves the libraries' default.

    Returns
    -------
    callable
        ``objective(trial) -> float``; NaN (a FAIL trial) on any error.

    Examples
    --------
    >>> import optuna
    >>> from sklearn.datasets import load_iris
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> objective = make_objective("logistic_regression", *load_iris(return_X_y=True), cv=3)
    >>> study = optuna.create_study(direction=objective.direction, sampler=optuna.samplers.RandomSampler(seed=0))
    >>> study.optimize(objective, n_trials=3)
    >>> study.best_value > 0.8
    True
    """
    space = get_space(space)
    if not isinstance(cv, int) or cv < 2:
        raise ValueError(f"cv must be an int of at least 2, got {cv!r}")
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be positive seconds or None, got {time_limit!r}")
    classification = space.task == "classification"
    metric = metric or ("balanced_accuracy" if classification else "r2")
    try:
        scorer = get_scorer(metric)
    except ValueError as error:
        raise ValueError(f"unknown metric {metric!r}: use a scikit-learn scorer name ({error})") from None
    features = prepare_features(X)
    target = np.asarray(y)
    if target.ndim != 1 or len(target) != len(features):
        raise ValueError(f"y must be 1-d with one value per row of X ({len(features)}), got shape {target.shape}")
    splitter = (StratifiedKFold if classification else KFold)(n_splits=cv, shuffle=True, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "the least populated class has only 2 members"
        folds = list(splitter.split(features, target))

    def objective(trial: optuna.Trial) -> float:
        start = time.perf_counter()
        try:
            model = space.suggest_estimator(trial, features, random_state)
            scores = []
            for i, (train, test) in enumerate(folds):
                with warnings.catch_warnings(), threadpool_limits(limits=n_threads):
                    warnings.simplefilter("ignore")  # convergence and small-class warnings, per fold
                    fitted = clone(model).fit(features.iloc[train], target[train])
                    scores.append(float(scorer(fitted, features.iloc[test], target[test])))
                elapsed = time.perf_counter() - start
                if time_limit is not None and elapsed > time_limit:
                    raise TimeoutError(
                        f"time limit of {time_limit:g} s exceeded after {i + 1} of {cv} folds ({elapsed:.1f} s)"
                    )
            value = float(np.mean(scores))
            if not np.isfinite(value):
                raise FloatingPointError(f"non-finite {metric} {value} (fold scores {scores})")
        except Exception as error:  # noqa: BLE001 - every failure becomes a FAIL trial, never a crash
            trial.set_user_attr(ERROR_KEY, f"{type(error).__name__}: {error}")
            return float("nan")
        trial.set_user_attr(FOLD_SCORES_KEY, scores)
        return value

    objective.direction = "maximize"
    objective.metric = metric
    return objective
