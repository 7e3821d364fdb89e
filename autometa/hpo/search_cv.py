"""``MetaSearchCV``: warm-started hyperparameter search as one scikit-learn estimator.

:class:`MetaSearchCV` is to :class:`~autometa.hpo.MetaLearnedSampler` what
:class:`~sklearn.model_selection.GridSearchCV` is to a grid: give it an
estimator, call ``fit``, and it tunes the estimator by cross-validation, refits
the best configuration on all the data and delegates ``predict`` & co. to it.

It recognises the estimators of the search spaces of :mod:`autometa.hpo.spaces`
(also as the last step of a :class:`~sklearn.pipeline.Pipeline`) and tunes
their parameters there; where a pretrained knowledge base ships with autometa
(:func:`autometa.hpo.pretrained_names`) the search is warm-started from it, the
new data set described by its meta-features. ``param_distributions`` adds or
overrides parameters (Optuna distributions keyed like ``set_params``): the
knowledge base proposes the parameters it knows, Optuna's TPE the others.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import numbers
import sys
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import TrialState
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.utils.metaestimators import available_if

from autometa.hpo.encoding import FOLD_SCORES_KEY, suggest
from autometa.hpo.spaces import ERROR_KEY, SEARCH_SPACES, SearchSpace, estimator_value, get_space

__all__ = ["MetaSearchCV", "recognise"]

_SCORES_KEY = "autometa:cv"
_SCORE_NAMES = ("test_score", "train_score", "fit_time", "score_time")


def _final_step(estimator) -> tuple[BaseEstimator, str]:
    """The estimator a (possibly nested) pipeline ends with, and its ``set_params`` prefix."""
    prefix = ""
    while isinstance(estimator, Pipeline):
        name, estimator = estimator.steps[-1]
        prefix += name + "__"
    return estimator, prefix


def recognise(estimator) -> SearchSpace | None:
    """The search space of :mod:`autometa.hpo.spaces` that tunes ``estimator``'s class, or None.

    ``estimator`` may be a :class:`~sklearn.pipeline.Pipeline`: its last step
    counts. An exact class match wins over a subclass's. Packages not imported
    yet are not imported (an instance of their class cannot exist).
    """
    final, _ = _final_step(estimator)
    matches = []
    for space in SEARCH_SPACES.values():
        if not space.estimator or space.estimator.split(".")[0] not in sys.modules:
            continue
        cls = space.estimator_class()
        if cls is not None and isinstance(final, cls):
            matches.append((type(final) is not cls, space))
    return min(matches, key=lambda match: match[0])[1] if matches else None


def _estimator_distribution(distribution: BaseDistribution) -> BaseDistribution:
    if isinstance(distribution, CategoricalDistribution):
        return CategoricalDistribution([estimator_value(choice) for choice in distribution.choices])
    return distribution


def _as_estimator_params(space: SearchSpace, prefix: str, mapping: dict, convert) -> dict:
    """``mapping`` of the space's parameter names, restricted to the estimator's own, keyed like
    ``set_params`` and each value passed through ``convert``."""
    names = space.estimator_params
    return {prefix + name: convert(value) for name, value in mapping.items() if names is None or name in names}


def _space_distributions(space: SearchSpace, prefix: str) -> dict[str, BaseDistribution]:
    """The space's parameters that the estimator has, keyed like ``set_params``, with its values."""
    return _as_estimator_params(space, prefix, space.distributions(), _estimator_distribution)


@functools.lru_cache(maxsize=16)
def _pretrained_tasks(name: str, prefix: str) -> tuple:
    """The tasks of the space's pretrained knowledge base, renamed by :func:`_renamed_tasks` (once per process)."""
    from autometa.hpo.pretrained import load_pretrained

    return _renamed_tasks(load_pretrained(name), get_space(name), prefix)


def _renamed_tasks(tasks, space: SearchSpace, prefix: str) -> tuple:
    """``tasks`` with their trials keyed and valued as the estimator's parameters."""
    from autometa.hpo.knowledge_base import Task, TrialRecord

    def record(trial: TrialRecord) -> TrialRecord:
        return TrialRecord(
            number=trial.number,
            state=trial.state,
            params=_as_estimator_params(space, prefix, trial.params, estimator_value),
            distributions=_as_estimator_params(space, prefix, trial.distributions, _estimator_distribution),
            values=trial.values,
        )

    return tuple(Task(task.name, task.directions, tuple(record(t) for t in task.trials), task.descriptor)
                 for task in tasks)


def _estimator_has(attr: str):
    """Whether the refit best estimator, or before fit the estimator, has ``attr``."""

    def check(self):
        estimator = self.best_estimator_ if hasattr(self, "best_estimator_") else self.estimator
        getattr(estimator, attr)
        return True

    return check


class MetaSearchCV(MetaEstimatorMixin, BaseEstimator):
    """Hyperparameter search warm-started from earlier studies, as one scikit-learn estimator.

    ``fit`` scores ``estimator`` as given and an Optuna study of further
    configurations, ``n_trials`` in all, each by cross-validation on the
    training data, then refits the best on all of it. The fitted attributes
    are :class:`~sklearn.model_selection.GridSearchCV`'s.

    **What is tuned.** An estimator of one of the search spaces of
    :mod:`autometa.hpo.spaces` (``HistGradientBoostingClassifier``,
    ``RandomForestClassifier``, ``SVC``, ``LogisticRegression``,
    ``lightgbm.LGBMClassifier``, ``xgboost.XGBClassifier`` and their
    regressors), alone or as the last step of a ``Pipeline``, is tuned on the
    space's parameters that it has. With a pretrained knowledge base for the
    space, the search is a :class:`~autometa.hpo.MetaLearnedSampler`: its
    first trials are the configurations that did best on the earlier data
    sets most similar to this one (by meta-features of ``(X, y)``), later
    ones come from its meta-learned surrogate. Without one, Optuna's
    ``TPESampler``. ``param_distributions`` adds parameters, or replaces the
    space's distribution of one; any estimator can be tuned that way.

    **The incumbent.** A cross-validated score is a noisy estimate, and the
    best of many noisy estimates is optimistic: ``best_index_`` is the trial
    :meth:`MetaLearnedSampler.best_trial <autometa.hpo.MetaLearnedSampler.best_trial>`
    believes best, the best mean score made worse by one standard error of
    its fold scores (a steady configuration beats one lucky in one fold),
    with TPE the trial of best mean score; the estimator as given replaces
    it when that scores at least as high (``include_default``). Having been
    chosen as the best of many on these folds, the incumbent's score there
    is optimistic, so before it replaces the estimator as given both are
    scored once more on new folds (another shuffle of the data), where
    neither was chosen, and the incumbent has to be ahead there too
    (``confirm_incumbent``).

    Parameters
    ----------
    estimator : estimator or Pipeline
        The model to tune; cloned, never modified.
    n_trials : int or None, default=20
        Configurations to try in this ``fit``; None runs until ``timeout``.
    cv : int, cross-validation generator or iterable, default=5
        As in ``GridSearchCV`` (stratified folds for classifiers). Every
        trial is scored on the same folds.
    scoring : str, callable or None, default=None
        One scikit-learn scorer (greater is better); None: the estimator's
        ``score``. Several metrics are not supported.
    refit : bool or callable, default=True
        Refit the best configuration on the whole data. A callable takes
        ``cv_results_`` and returns ``best_index_`` (then, as in
        ``GridSearchCV``, there is no ``best_score_``).
    n_jobs : int, default=1
        Trials run in parallel threads (Optuna's ``n_jobs``); -1: one per CPU.
    timeout : float or None, default=None
        Stop starting trials after this many seconds.
    storage : str, optuna.storages.BaseStorage or None, default=None
        Optuna storage of the study; None keeps it in memory. Processes that
        fit with the same RDB storage and ``study_name`` share one study:
        each sees every worker's trials, in ``cv_results_`` too.
    study_name : str or None, default=None
        The study's name; an existing study of that name is continued.
    random_state : int or None, default=None
        Seeds the sampler.
    search_space : str or None, default=None
        A name of :data:`autometa.hpo.spaces.SEARCH_SPACES` whose parameters
        (and knowledge base) to use; None recognises the estimator's class.
    param_distributions : dict of str to optuna.distributions.BaseDistribution or None, default=None
        More parameters to tune, keyed like ``estimator.set_params``.
    knowledge_base : KnowledgeBase or None, default=None
        The earlier studies to warm-start from, instead of the shipped ones:
        studies of the search space (``autometa kb build``; keyed by the
        space's parameter names), e.g. on your own data sets. None: the
        pretrained knowledge base of the space, if one ships.
    include_default : bool, default=True
        Score ``estimator`` with its own parameters first, as one of the
        ``n_trials`` (the first row of ``cv_results_``, with ``params`` ``{}``),
        and keep it unless the search's incumbent scores higher: tuning
        then never picks a configuration that cross-validates worse than
        the model you gave it.
    confirm_incumbent : bool, default=True
        With ``include_default``, when the incumbent cross-validates higher
        than the estimator as given, score both again on new folds (``cv``'s
        number of folds, shuffled with a seed drawn from ``random_state``)
        and keep the estimator as given unless the incumbent's mean score is
        higher there as well: 2 x ``n_splits_`` more fits, only then. Needs
        new folds to exist: ``cv`` an int or None, or a splitter with
        ``shuffle=True`` and a ``random_state`` parameter (e.g.
        ``KFold(5, shuffle=True)``); with any other ``cv`` (groups,
        predefined or ordered splits, an iterable) the means on ``cv``'s
        folds decide alone.
    error_score : "raise" or float, default=np.nan
        The score of a fold whose fit fails; "raise" raises. A trial with a
        NaN score fails and ranks last.
    return_train_score : bool, default=False
        Also score the training folds (``split{i}_train_score`` & co.).
    verbose : int, default=0
        0: quiet; 1: a progress bar; 2: also Optuna's log line per trial.

    Attributes
    ----------
    best_estimator_ : estimator
        ``estimator`` with ``best_params_``, refit on all the data (``refit`` set).
    best_params_ : dict
        The incumbent's parameters, keyed like ``set_params``.
    best_score_ : float
        Its mean cross-validated score (not with a callable ``refit``).
    best_index_ : int
        Its row in ``cv_results_``.
    incumbent_index_ : int or None
        The row of the trial the search believes best (see "The
        incumbent"), before the estimator as given may replace it: equal to
        ``best_index_`` unless ``include_default`` kept the estimator as
        given (``best_index_`` 0) or a callable ``refit`` chose; None when
        no trial of the search scored.
    confirm_scores_ : dict of str to ndarray, or None
        The new folds' scores of ``confirm_incumbent``: ``"estimator"`` (as
        given) and ``"incumbent"``, one per fold; None when no
        confirmation ran.
    cv_results_ : dict of numpy arrays
        One row per finished trial of the study, in trial order, with
        ``GridSearchCV``'s keys: ``params``, ``param_<name>`` (masked where a
        trial lacks the parameter), ``split<i>_test_score``,
        ``mean_test_score``, ``std_test_score``, ``rank_test_score``,
        ``mean_fit_time``, ``std_fit_time``, ``mean_score_time``,
        ``std_score_time`` (and the train scores when asked).
    n_splits_ : int
        Cross-validation folds.
    refit_time_ : float
        Seconds to refit the best estimator.
    scorer_ : callable
        The scorer used.
    multimetric_ : bool
        Always False.
    study_ : optuna.Study
        The study, with every trial's fold scores in its user attrs.
    search_space_ : str or None
        The name of the search space used, None for ``param_distributions`` alone.
    warm_started_ : bool
        Whether a pretrained knowledge base warm-started the search.
    classes_ : ndarray
        The refit classifier's classes.
    n_features_in_ : int
        Features seen in ``fit``.

    See Also
    --------
    autometa.hpo.MetaLearnedSampler : The sampler, for a study you write yourself.
    sklearn.model_selection.GridSearchCV : The same interface over a grid.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from autometa import MetaSearchCV
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> search = MetaSearchCV(make_pipeline(StandardScaler(), LogisticRegression()), n_trials=4, cv=3,
    ...                       random_state=0).fit(X, y)
    >>> search.search_space_, search.warm_started_
    ('logistic_regression', True)
    >>> sorted(search.cv_results_["params"][1])
    ['logisticregression__C', 'logisticregression__class_weight']
    >>> search.best_score_ > 0.95
    True
    """

    def __init__(
        self,
        estimator,
        *,
        n_trials: int | None = 20,
        cv=5,
        scoring=None,
        refit=True,
        n_jobs: int = 1,
        timeout: float | None = None,
        storage=None,
        study_name: str | None = None,
        random_state: int | None = None,
        search_space: str | None = None,
        param_distributions: Mapping[str, BaseDistribution] | None = None,
        knowledge_base=None,
        include_default: bool = True,
        confirm_incumbent: bool = True,
        error_score: Any = np.nan,
        return_train_score: bool = False,
        verbose: int = 0,
    ):
        self.estimator = estimator
        self.n_trials = n_trials
        self.cv = cv
        self.scoring = scoring
        self.refit = refit
        self.n_jobs = n_jobs
        self.timeout = timeout
        self.storage = storage
        self.study_name = study_name
        self.random_state = random_state
        self.search_space = search_space
        self.param_distributions = param_distributions
        self.knowledge_base = knowledge_base
        self.include_default = include_default
        self.confirm_incumbent = confirm_incumbent
        self.error_score = error_score
        self.return_train_score = return_train_score
        self.verbose = verbose

    # -- setup -------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.n_trials is None:
            if self.timeout is None:
                raise ValueError("n_trials=None runs until timeout: set timeout (seconds) or n_trials")
        elif isinstance(self.n_trials, bool) or not isinstance(self.n_trials, numbers.Integral) or self.n_trials < 1:
            raise ValueError(f"n_trials must be a positive int or None, got {self.n_trials!r}")
        if self.timeout is not None and not (isinstance(self.timeout, numbers.Real) and self.timeout > 0):
            raise ValueError(f"timeout must be positive seconds or None, got {self.timeout!r}")
        if not (isinstance(self.n_jobs, numbers.Integral) and (self.n_jobs >= 1 or self.n_jobs == -1)):
            raise ValueError(f"n_jobs must be a positive int or -1, got {self.n_jobs!r}")
        if not (isinstance(self.refit, bool) or callable(self.refit)):
            raise TypeError(f"refit must be a bool or a callable taking cv_results_, got {self.refit!r}")
        for name in ("include_default", "confirm_incumbent"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not (self.error_score == "raise" or isinstance(self.error_score, numbers.Real)):
            raise ValueError(f"error_score must be 'raise' or a number, got {self.error_score!r}")
        if self.random_state is not None and (
            isinstance(self.random_state, bool) or not isinstance(self.random_state, numbers.Integral)
        ):
            raise TypeError(f"random_state must be an int or None, got {self.random_state!r}")

    def _space(self) -> SearchSpace | None:
        if self.search_space is not None:
            return get_space(self.search_space)
        return recognise(self.estimator)

    def _distributions(self, space: SearchSpace | None) -> dict[str, BaseDistribution]:
        """Every parameter to tune, keyed like ``set_params``; raises for unknown names."""
        _, prefix = _final_step(self.estimator)
        distributions = _space_distributions(space, prefix) if space is not None else {}
        extra = dict(self.param_distributions or {})
        for name, distribution in extra.items():
            if not isinstance(distribution, BaseDistribution):
                raise TypeError(
                    f"param_distributions[{name!r}] must be an Optuna distribution (e.g. "
                    f"optuna.distributions.FloatDistribution(1e-3, 1e3, log=True)), got {distribution!r}"
                )
        distributions.update(extra)
        if not distributions:
            known = ", ".join(sorted(space.estimator.rpartition(".")[2] for space in SEARCH_SPACES.values()))
            raise ValueError(
                f"MetaSearchCV has no search space for {type(_final_step(self.estimator)[0]).__name__}: pass "
                f"param_distributions (Optuna distributions keyed like set_params), or tune one of {known}"
            )
        valid = self.estimator.get_params(deep=True)
        unknown = sorted(name for name in distributions if name not in valid)
        if unknown:
            raise ValueError(
                f"{type(self.estimator).__name__} has no parameter {', '.join(map(repr, unknown))}; "
                f"its parameters are {', '.join(sorted(valid))}"
            )
        return distributions

    def _scorer(self):
        if self.scoring is not None and not isinstance(self.scoring, str) and not callable(self.scoring):
            raise ValueError(
                f"scoring must be one scorer name or callable; several metrics are not supported, got {self.scoring!r}"
            )
        try:
            return check_scoring(self.estimator, scoring=self.scoring)
        except ValueError as error:
            raise ValueError(f"unknown scoring {self.scoring!r}: use a scikit-learn scorer name ({error})") from None

    def _sampler(self, space: SearchSpace | None, X, y):
        from autometa.hpo.pretrained import pretrained_descriptor, pretrained_names

        seed = self.random_state
        shipped = space is not None and space.name in pretrained_names()
        if space is None or (self.knowledge_base is None and not shipped):
            if self.knowledge_base is not None:
                raise ValueError("knowledge_base needs a search space: pass search_space, or tune an estimator "
                                 "that MetaSearchCV recognises")
            return optuna.samplers.TPESampler(seed=seed), False
        from autometa.hpo.knowledge_base import KnowledgeBase
        from autometa.hpo.metafeatures import compute_metafeatures
        from autometa.hpo.sampler import MetaLearnedSampler

        _, prefix = _final_step(self.estimator)
        if self.knowledge_base is None:
            knowledge_base = KnowledgeBase(_pretrained_tasks(space.name, prefix))
        else:
            knowledge_base = KnowledgeBase(_renamed_tasks(self.knowledge_base, space, prefix))
        try:
            target = y if hasattr(y, "iloc") else np.asarray(y)
            target = target.reshape(len(target), -1)[:, 0] if target.ndim > 1 else target
            features = X if hasattr(X, "iloc") else np.asarray(X)
            if shipped:  # described as the shipped knowledge base's data sets were (subsampled alike)
                descriptor = pretrained_descriptor(space.name, features, target)
            else:
                descriptor = compute_metafeatures(features, target, task=space.task)
        except Exception as error:  # noqa: BLE001 - a descriptor is a hint; the search works without one
            warnings.warn(
                f"could not describe the data ({type(error).__name__}: {error}); the warm start serves "
                "every earlier data set equally",
                stacklevel=3,
            )
            descriptor = None
        return MetaLearnedSampler(knowledge_base, descriptor=descriptor, seed=seed), True

    # -- fit ---------------------------------------------------------------------------
    def fit(self, X, y=None, *, groups=None, **fit_params):
        """Tune ``estimator`` on ``(X, y)`` and refit the best configuration.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or None
        groups : array-like of shape (n_samples,) or None
            Group labels for a group-aware ``cv`` splitter.
        **fit_params
            Passed to the estimator's ``fit`` in every fold and in the refit.

        Returns
        -------
        self
        """
        self._check_params()
        with _optuna_log_level(optuna.logging.INFO if self.verbose >= 2 else optuna.logging.WARNING):
            return self._fit(X, y, groups, fit_params)

    def _fit(self, X, y, groups, fit_params):
        if y is None and _requires_y(self.estimator):
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        space = self._space()
        distributions = self._distributions(space)
        self.scorer_ = self._scorer()
        self.multimetric_ = False
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        splits = list(cv.split(X, y, groups))
        self.n_splits_ = len(splits)
        sampler, self.warm_started_ = self._sampler(space, X, y)
        self.search_space_ = None if space is None else space.name

        study = optuna.create_study(
            storage=self.storage, sampler=sampler, study_name=self.study_name, direction="maximize",
            load_if_exists=True,
        )
        objective = _Objective(self.estimator, distributions, X, y, splits, self.scorer_, fit_params,
                               self.error_score, self.return_train_score)
        rows = [({}, objective.default_scores())] if self.include_default else []
        n_trials = self.n_trials if self.n_trials is None else self.n_trials - len(rows)
        if n_trials is None or n_trials > 0:
            study.optimize(objective, n_trials=n_trials, timeout=self.timeout, n_jobs=self.n_jobs,
                           catch=() if self.error_score == "raise" else (ValueError,),
                           show_progress_bar=self.verbose >= 1)
        self.study_ = study

        trials = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
        offset = len(rows)
        rows += [(dict(t.params), t.user_attrs.get(_SCORES_KEY, {})) for t in trials]
        self.cv_results_ = _cv_results(rows, self.n_splits_, self.return_train_score)
        means = self.cv_results_["mean_test_score"]
        if not np.isfinite(means).any():
            errors = sorted({t.user_attrs.get(ERROR_KEY, "no score") for t in trials} or {"no score"})
            raise ValueError(f"every trial failed, e.g.: {errors[0]}; set error_score='raise' to see the traceback")
        self.incumbent_index_ = None
        if any(t.state == TrialState.COMPLETE and np.isfinite(t.value) for t in trials):
            incumbent = sampler.best_trial(study) if hasattr(sampler, "best_trial") else study.best_trial
            self.incumbent_index_ = offset + next(i for i, t in enumerate(trials) if t.number == incumbent.number)
        self.confirm_scores_ = None
        if callable(self.refit):
            self.best_index_ = int(self.refit(self.cv_results_))
        else:
            best = self.incumbent_index_
            if offset and np.isfinite(means[0]):
                if best is None or means[0] >= means[best]:
                    best = 0
                elif self.confirm_incumbent:
                    splits = self._new_splits(X, y, groups)
                    if splits is not None:
                        given = objective.test_scores({}, splits)
                        incumbent = objective.test_scores(self.cv_results_["params"][best], splits)
                        self.confirm_scores_ = {"estimator": given, "incumbent": incumbent}
                        if np.isfinite(given.mean()) and not incumbent.mean() > given.mean():
                            best = 0
            self.best_index_ = best
            self.best_score_ = float(means[best])
        self.best_params_ = dict(self.cv_results_["params"][self.best_index_])
        if self.refit:
            start = time.perf_counter()
            self.best_estimator_ = clone(self.estimator).set_params(**self.best_params_)
            self.best_estimator_.fit(X, y, **fit_params)
            self.refit_time_ = time.perf_counter() - start
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        n_features = getattr(X, "shape", (None, None))
        if len(n_features) > 1 and n_features[1] is not None:
            self.n_features_in_ = int(n_features[1])
        return self

    def _new_splits(self, X, y, groups) -> list | None:
        """Folds of the data other than ``cv``'s, for ``confirm_incumbent``: ``cv`` reshuffled, or None
        when ``cv`` cannot be (not an int, None, or a shuffling splitter with a ``random_state``)."""
        if self.cv is None or (isinstance(self.cv, numbers.Integral) and not isinstance(self.cv, bool)):
            splitter = check_cv(self.cv, y, classifier=is_classifier(self.estimator))  # cv's own fold class
        elif getattr(self.cv, "shuffle", False) is True and hasattr(self.cv, "random_state"):
            splitter = copy.deepcopy(self.cv)
        else:
            return None
        splitter.shuffle = True
        splitter.random_state = int(np.random.default_rng(self.random_state).integers(2**31 - 1))
        return list(splitter.split(X, y, groups))

    # -- the refit best estimator ------------------------------------------------------
    def _check_refit(self, method: str):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        if not self.refit:
            raise AttributeError(
                f"{method} is available only after refitting on the best parameters; fit with refit=True"
            )
        return self.best_estimator_

    @available_if(_estimator_has("predict"))
    def predict(self, X):
        """``best_estimator_.predict(X)``."""
        return self._check_refit("predict").predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """``best_estimator_.predict_proba(X)``."""
        return self._check_refit("predict_proba").predict_proba(X)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """``best_estimator_.predict_log_proba(X)``."""
        return self._check_refit("predict_log_proba").predict_log_proba(X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """``best_estimator_.decision_function(X)``."""
        return self._check_refit("decision_function").decision_function(X)

    @available_if(_estimator_has("transform"))
    def transform(self, X):
        """``best_estimator_.transform(X)``."""
        return self._check_refit("transform").transform(X)

    @available_if(_estimator_has("inverse_transform"))
    def inverse_transform(self, X):
        """``best_estimator_.inverse_transform(X)``."""
        return self._check_refit("inverse_transform").inverse_transform(X)

    @available_if(_estimator_has("score_samples"))
    def score_samples(self, X):
        """``best_estimator_.score_samples(X)``."""
        return self._check_refit("score_samples").score_samples(X)

    def score(self, X, y=None):
        """The search's scorer (``scoring``) of the refit best estimator on ``(X, y)``."""
        return self.scorer_(self._check_refit("score"), X, y)

    @property
    def classes_(self):
        return self._check_refit("classes_").classes_

    def __sklearn_tags__(self):
        from sklearn.utils import get_tags

        tags = super().__sklearn_tags__()
        sub = get_tags(self.estimator)
        tags.estimator_type = sub.estimator_type
        tags.classifier_tags = sub.classifier_tags
        tags.regressor_tags = sub.regressor_tags
        tags.input_tags.pairwise = sub.input_tags.pairwise
        tags.input_tags.sparse = sub.input_tags.sparse
        tags.input_tags.allow_nan = sub.input_tags.allow_nan
        tags.target_tags.required = sub.target_tags.required
        tags.target_tags.multi_output = sub.target_tags.multi_output
        tags.target_tags.single_output = sub.target_tags.single_output
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"pairwise": getattr(self.estimator, "_pairwise", False)}

    @property
    def _estimator_type(self):  # scikit-learn < 1.6
        return getattr(self.estimator, "_estimator_type", None)


@contextlib.contextmanager
def _optuna_log_level(level: int):
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(level)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _requires_y(estimator) -> bool:
    try:
        from sklearn.utils import get_tags
    except ImportError:  # scikit-learn < 1.6
        return is_classifier(estimator) or getattr(estimator, "_estimator_type", None) == "regressor"
    return get_tags(estimator).target_tags.required


class _Objective:
    """One trial: the configuration's cross-validated scores, kept in the trial's user attrs."""

    def __init__(self, estimator, distributions, X, y, splits, scorer, fit_params, error_score, return_train_score):
        self.estimator = estimator
        self.distributions = distributions
        self.X, self.y = X, y
        self.splits = splits
        self.scorer = scorer
        self.fit_params = fit_params
        self.error_score = error_score
        self.return_train_score = return_train_score

    def scores(self, params: dict[str, Any], splits=None) -> dict[str, list[float]]:
        """The cross-validated scores and times of ``estimator`` with ``params``, per fold of ``splits``
        (default: the search's folds).

        Raises what ``cross_validate`` raises: ``error_score="raise"`` and a failing fit, or every fit failing.
        """
        model = clone(self.estimator).set_params(**params)
        scores = cross_validate(
            model, self.X, self.y, cv=self.splits if splits is None else splits, scoring=self.scorer,
            params=self.fit_params or None,
            error_score=self.error_score, return_train_score=self.return_train_score, n_jobs=1,
        )
        return {key: [float(v) for v in scores[key]] for key in _SCORE_NAMES if key in scores}

    def test_scores(self, params: dict[str, Any], splits) -> np.ndarray:
        """The test-fold scores of ``estimator`` with ``params`` on other ``splits``; NaN for a failed fold
        (every fold failing too, unless ``error_score="raise"``)."""
        try:
            return np.asarray(self.scores(params, splits)["test_score"], dtype=float)
        except ValueError:
            if self.error_score == "raise":
                raise
            return np.full(len(splits), np.nan)

    def default_scores(self) -> dict[str, list[float]]:
        """:meth:`scores` of the estimator as given; ``{}`` (a row of NaN) when every fold failed."""
        try:
            return self.scores({})
        except ValueError as error:
            if self.error_score == "raise":
                raise
            warnings.warn(f"the estimator as given failed in every fold ({error}); the search goes on",
                          stacklevel=4)
            return {}

    def __call__(self, trial: optuna.Trial) -> float:
        params = {name: suggest(trial, name, d) for name, d in self.distributions.items()}
        try:
            record = self.scores(params)
        except ValueError as error:  # every fold failed
            trial.set_user_attr(ERROR_KEY, f"{type(error).__name__}: {error}")
            raise
        trial.set_user_attr(_SCORES_KEY, record)
        trial.set_user_attr(FOLD_SCORES_KEY, record["test_score"])  # the sampler's measure of noise
        value = float(np.mean(record["test_score"]))
        if not np.isfinite(value):
            trial.set_user_attr(ERROR_KEY, f"non-finite mean score (fold scores {record['test_score']})")
            return float("nan")
        return value


def _cv_results(rows, n_splits: int, return_train_score: bool) -> dict[str, Any]:
    """``GridSearchCV``'s ``cv_results_`` for ``rows`` of ``(params, per-fold scores)``, one row each.

    The scores are :meth:`_Objective.scores`' dict; an empty one (a failed trial) is a row of NaN.
    """
    n = len(rows)
    results: dict[str, Any] = {}
    nan = [float("nan")] * n_splits

    def folds(record, key):
        values = record.get(key, nan)
        return values if len(values) == n_splits else nan

    for name in ("fit_time", "score_time"):
        matrix = np.array([folds(record, name) for _, record in rows], dtype=float).reshape(n, n_splits)
        results[f"mean_{name}"] = matrix.mean(axis=1)
        results[f"std_{name}"] = matrix.std(axis=1)
    for name in sorted({name for params, _ in rows for name in params}):
        column = np.ma.MaskedArray(np.empty(n, dtype=object), mask=True)
        for i, (params, _) in enumerate(rows):
            if name in params:
                column[i] = params[name]
        results[f"param_{name}"] = column
    results["params"] = [dict(params) for params, _ in rows]
    for split in ("test", "train") if return_train_score else ("test",):
        matrix = np.array([folds(record, f"{split}_score") for _, record in rows], dtype=float).reshape(n, n_splits)
        for i in range(n_splits):
            results[f"split{i}_{split}_score"] = matrix[:, i]
        mean = matrix.mean(axis=1)
        results[f"mean_{split}_score"] = mean
        results[f"std_{split}_score"] = matrix.std(axis=1)
        if split == "test":
            results["rank_test_score"] = _rank(mean)
    return results


def _rank(mean: np.ndarray) -> np.ndarray:
    """1 for the best mean score, ties sharing the lowest rank, NaN last (as ``GridSearchCV``)."""
    filled = np.where(np.isnan(mean), -np.inf, mean)
    order = np.sort(filled)[::-1]
    return np.searchsorted(-order, -filled, side="left").astype(np.int32) + 1
