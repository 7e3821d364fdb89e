"""Meta-features: a fixed-length numeric description of a tabular data set.

:func:`compute_metafeatures` turns ``(X, y)`` into a flat ``dict`` of floats
whose keys are always those of :data:`METAFEATURES`, in that order, with NaN
where a meta-feature is undefined (a class count for a regression task, a
skewness without numeric columns); :func:`metafeature_vector` turns such a
dict into an array, so descriptors of different data sets align column by
column. A knowledge base uses them to find the earlier tasks most similar to
a new one.

How the data are read
---------------------
- ``X`` is a 2-d array-like or a :class:`pandas.DataFrame`. Columns of
  dtype bool, category, string or object (unless every value of an object
  column parses as a number) are *categorical*; they are ordinal-coded by
  their sorted string values. Other columns are *numeric*.
- NaN, None, ``pd.NA`` and +-inf are *missing*. They are counted, ignored by
  the moments, and replaced by the column mean (after standardising: by 0)
  before correlation, PCA and the landmarkers.
- Rows whose label is missing (or, for regression, not finite) are dropped
  before anything else.
- The task is ``"classification"`` or ``"regression"``; ``"auto"`` calls a
  float ``y`` regression, an integer ``y`` with more than 50 distinct values
  regression too, and anything else (integers, bool, strings, categories)
  classification. This matches every PMLB data set; pass ``task`` when the
  rule does not fit (e.g. float-coded class labels).
- Counts (size, column types, missing and constant columns, class and target
  statistics) use every row. Everything else uses a random subsample of at
  most ``max_rows`` rows (default 2,000), and correlation and PCA at most 100
  random columns, so the cost is ``O(n_rows * n_features)`` for reading the
  data plus a part bounded by ``max_rows`` (landmarkers: ``O(max_rows^2 *
  n_features)`` for 1-NN), well under a second for 100,000 x 100 floats.

The meta-features
-----------------
Size and shape

``is_classification``
    1 for a classification task, 0 for regression. Lets mixed knowledge
    bases keep the two kinds apart.
``log10_n_rows``
    ``log10(n_rows)`` after dropping unlabelled rows; ``[0, inf)``. The data
    budget decides how flexible a good model may be.
``log10_n_features``
    ``log10(n_features)``, input columns before encoding; ``[0, inf)``.
``log10_dimensionality``
    ``log10(n_features / n_rows)``; real. Above 0 means more columns than
    rows, where strong regularisation pays.

Column types

``frac_categorical``
    Fraction of columns that are categorical; ``[0, 1]``. Decides how much
    encoding matters and favours tree models.
``frac_constant``
    Fraction of columns with at most one distinct non-missing value
    (all-missing columns included); ``[0, 1]``. Dead columns: noise for
    distance-based models, harmless for trees.
``frac_missing_features``
    Fraction of columns with at least one missing value; ``[0, 1]``.
``frac_missing_values``
    Fraction of cells that are missing; ``[0, 1]``. With the previous one,
    how much imputation shapes the result.

Target

``n_classes``
    Number of distinct labels; ``[1, inf)``; NaN for regression.
``class_entropy``
    Shannon entropy of the class proportions divided by ``log(n_classes)``;
    ``[0, 1]``, 1 for perfectly balanced classes; NaN with fewer than 2
    classes or for regression. Imbalance changes which losses, class weights
    and metrics work.
``majority_class_fraction``
    Share of the most frequent class; ``(0, 1]``; NaN for regression. The
    accuracy of always predicting it, the bar the landmarkers must clear.
``minority_majority_ratio``
    Count of the rarest class over that of the most frequent; ``(0, 1]``;
    NaN for regression. The severity of the worst imbalance.
``target_skewness``
    Skewness of ``y`` (third standardised moment); real, 0 for a symmetric
    target; NaN for classification or a constant ``y``. Skewed targets favour
    robust losses or a transformed target.
``target_kurtosis``
    Excess kurtosis of ``y`` (fourth standardised moment minus 3); ``[-2,
    inf)``, 0 for a Gaussian; NaN as ``target_skewness``. Heavy tails mean
    outliers that dominate squared losses.

Numeric columns (on the subsample, missing values ignored, columns constant
in the subsample left out; NaN without such columns)

``skewness_mean``, ``skewness_std``
    Mean and standard deviation over columns of each column's skewness;
    real and ``[0, inf)``. Asymmetric features hurt models that assume
    Gaussian inputs (naive Bayes, linear models without transforms).
``kurtosis_mean``, ``kurtosis_std``
    Mean and standard deviation over columns of each column's excess
    kurtosis; ``[-2, inf)`` and ``[0, inf)``. Heavy-tailed features carry
    outliers that dominate distances and squared losses.
``mean_abs_correlation``
    Mean absolute Pearson correlation over the pairs of at most 100 random
    numeric columns; ``[0, 1]``; NaN with fewer than 2 columns. Redundancy:
    high values favour regularised and low-rank models.

PCA (on the subsample, all non-constant columns standardised, at most 100
random columns; NaN without such columns)

``pca_frac_components_95``
    Number of principal components that explain 95% of the variance, over
    the number of columns; ``(0, 1]``. Small means the data lie near a
    low-dimensional subspace: the intrinsic dimension relative to the
    apparent one.
``pca_first_component``
    Fraction of the variance explained by the first principal component;
    ``(0, 1]``. How much one direction dominates.

Landmarkers: cheap models scored by 3-fold cross-validation (stratified when
every class has at least 3 rows) on the standardised, mean-imputed subsample,
from out-of-fold predictions pooled over the folds. They place the data set
on a difficulty scale that the statistics above only hint at. NaN with fewer
than 10 rows (too few to cross-validate) and for the other kind of task.

``landmark_1nn_accuracy``
    Accuracy of 1-nearest-neighbour; ``[0, 1]``. High when classes form
    tight local clusters in the raw (standardised) feature space.
``landmark_stump_accuracy``
    Accuracy of a depth-1 decision tree; ``[0, 1]``. High when one feature
    alone separates the classes.
``landmark_naive_bayes_accuracy``
    Accuracy of Gaussian naive Bayes; ``[0, 1]``. High when features are
    informative one by one, each roughly Gaussian per class.
``landmark_1nn_r2``
    R^2 of 1-nearest-neighbour regression, clipped below at -1; ``[-1, 1]``.
    High when the target is a smooth, low-noise function of the inputs.
``landmark_stump_r2``
    R^2 of a depth-1 regression tree, clipped below at -1; ``[-1, 1]``.
    High when one threshold on one feature explains the target.
``landmark_linear_r2``
    R^2 of least-squares linear regression, clipped below at -1; ``[-1,
    1]``. How linear the problem is. The clip keeps one wild score (e.g. a
    linear fit with more columns than rows) from dominating a distance
    between descriptors.

References
----------
Rivolli et al., "Meta-features for meta-learning", Knowledge-Based Systems
240 (2022); Pfahringer, Bensusan & Giraud-Carrier, "Meta-learning by
landmarking various learning algorithms", ICML 2000.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from types import MappingProxyType

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

__all__ = ["METAFEATURES", "compute_metafeatures", "metafeature_vector"]

#: Every meta-feature's name, in vector order, with a one-line description.
#: The module docstring gives each one's range and why it matters.
METAFEATURES: Mapping[str, str] = MappingProxyType(
    {
        "is_classification": "1 for classification, 0 for regression",
        "log10_n_rows": "log10 of the number of labelled rows",
        "log10_n_features": "log10 of the number of input columns",
        "log10_dimensionality": "log10(n_features / n_rows)",
        "frac_categorical": "fraction of columns that are categorical (bool, category, string, object)",
        "frac_constant": "fraction of columns with at most one distinct non-missing value",
        "frac_missing_features": "fraction of columns with a missing (NaN/None/inf) value",
        "frac_missing_values": "fraction of cells that are missing",
        "n_classes": "number of distinct labels (classification)",
        "class_entropy": "entropy of the class proportions / log(n_classes), 1 = balanced",
        "majority_class_fraction": "share of the most frequent class",
        "minority_majority_ratio": "count of the rarest class / count of the most frequent",
        "target_skewness": "skewness of y (regression)",
        "target_kurtosis": "excess kurtosis of y (regression)",
        "skewness_mean": "mean over numeric columns of their skewness",
        "skewness_std": "standard deviation over numeric columns of their skewness",
        "kurtosis_mean": "mean over numeric columns of their excess kurtosis",
        "kurtosis_std": "standard deviation over numeric columns of their excess kurtosis",
        "mean_abs_correlation": "mean |Pearson r| over pairs of numeric columns",
        "pca_frac_components_95": "principal components for 95% of the variance / n_columns",
        "pca_first_component": "fraction of the variance on the first principal component",
        "landmark_1nn_accuracy": "3-fold CV accuracy of 1-nearest-neighbour",
        "landmark_stump_accuracy": "3-fold CV accuracy of a depth-1 decision tree",
        "landmark_naive_bayes_accuracy": "3-fold CV accuracy of Gaussian naive Bayes",
        "landmark_1nn_r2": "3-fold CV R^2 of 1-nearest-neighbour regression, clipped at -1",
        "landmark_stump_r2": "3-fold CV R^2 of a depth-1 regression tree, clipped at -1",
        "landmark_linear_r2": "3-fold CV R^2 of linear least squares, clipped at -1",
    }
)

_TASKS = ("auto", "classification", "regression")
# "auto" calls an integer target with more distinct values than this regression.
_MAX_AUTO_CLASSES = 50
# Correlation and PCA cost grows with the square of the column count.
_MAX_COLUMNS = 100
_N_FOLDS = 3
# Below this, 3-fold cross-validation trains on a handful of rows: noise.
_MIN_ROWS_FOR_LANDMARKERS = 10
_MIN_R2 = -1.0
_PCA_VARIANCE = 0.95


def compute_metafeatures(X, y, task="auto", random_state=0, max_rows=2000) -> dict[str, float]:
    """Describe a data set by the meta-features of :data:`METAFEATURES`.

    Parameters
    ----------
    X : array-like or pandas.DataFrame of shape (n_rows, n_features)
        The inputs; may hold missing values, infinities and (in a DataFrame
        or an object array) categorical columns.
    y : array-like or pandas.Series of shape (n_rows,)
        The target: class labels of any type, or real values.
    task : {"auto", "classification", "regression"}, default="auto"
        The kind of task; ``"auto"`` infers it from ``y`` (see the module
        docstring).
    random_state : int or None, default=0
        Seeds the row and column subsamples and the cross-validation folds;
        the result is deterministic for an int.
    max_rows : int, default=2000
        Rows subsampled for the moments, correlation, PCA and landmarkers.

    Returns
    -------
    dict of str to float
        One entry per name of :data:`METAFEATURES`, in that order; NaN where
        a meta-feature is undefined.

    Raises
    ------
    ValueError
        If ``X`` is not 2-d, has no column, or no row with a label; if ``y``
        does not match ``X``'s length; if ``task`` is unknown, or
        ``"regression"`` with a non-numeric ``y``.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> features = compute_metafeatures(X, y)
    >>> round(features["class_entropy"], 3), features["n_classes"]
    (1.0, 3.0)
    """
    if task not in _TASKS:
        raise ValueError(f"task must be one of {_TASKS}, got {task!r}")
    if max_rows < 1:
        raise ValueError(f"max_rows must be positive, got {max_rows}")
    numeric, categorical = _read_inputs(X)
    if numeric.shape[1] + categorical.shape[1] == 0:
        raise ValueError("X has no column")
    classification, target, labelled = _read_target(y, len(numeric), task)
    if not labelled.all():
        numeric, categorical = numeric[labelled], categorical[labelled]
    if len(target) == 0:
        raise ValueError("no row has a label")
    rng = np.random.default_rng(random_state)
    features = dict.fromkeys(METAFEATURES, np.nan)
    with _quiet():
        features.update(_shape(numeric, categorical, classification))
        features.update(_class_stats(target) if classification else _target_stats(target))
        rows = _subsample(len(target), max_rows, rng)
        table = _standardize(np.hstack([numeric[rows], categorical[rows]]))
        features.update(_numeric_stats(numeric[rows], table[:, : numeric.shape[1]], rng))
        features.update(_pca(table, rng))
        features.update(_landmarkers(table, target[rows], classification, int(rng.integers(2**31 - 1))))
    return {name: float(features[name]) for name in METAFEATURES}


def metafeature_vector(features: Mapping[str, float]) -> np.ndarray:
    """The meta-features of a :func:`compute_metafeatures` dict as an array.

    Parameters
    ----------
    features : mapping of str to float
        Meta-features by name. Names missing from it (e.g. descriptors stored
        by an older version) become NaN; names not in :data:`METAFEATURES`
        are ignored.

    Returns
    -------
    numpy.ndarray of shape (len(METAFEATURES),)
        The values in the order of :data:`METAFEATURES`, as float64.
    """
    if not isinstance(features, Mapping):
        raise TypeError(f"features must be a mapping of name to value, got {type(features).__name__}")
    return np.array([features.get(name, np.nan) for name in METAFEATURES], dtype=np.float64)


@contextmanager
def _quiet():
    # Empty or constant columns make 0/0 on purpose: NaN is the answer.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _read_inputs(X) -> tuple[np.ndarray, np.ndarray]:
    """Split ``X`` into a numeric block and a block of categorical codes.

    Both are new float64 arrays (safe to write) with NaN for missing values.
    """
    if not isinstance(X, pd.DataFrame):
        array = np.asarray(X)
        if array.ndim != 2:
            raise ValueError(f"X must be 2-d, got shape {array.shape}")
        if array.dtype.kind in "iuf":
            return _finite_or_nan(np.array(array, dtype=np.float64)), np.empty((len(array), 0))
        X = pd.DataFrame(array)
    numeric, categorical = [], []
    for _, column in X.items():
        values = _as_numeric(column)
        if values is None:
            categorical.append(_codes(column))
        else:
            numeric.append(values)
    return _finite_or_nan(_stack(numeric, len(X))), _stack(categorical, len(X))


def _as_numeric(column: pd.Series) -> np.ndarray | None:
    """The column as floats, or None when it is categorical."""
    if pd.api.types.is_bool_dtype(column.dtype) or isinstance(column.dtype, pd.CategoricalDtype):
        return None
    if not pd.api.types.is_numeric_dtype(column.dtype):
        try:
            column = pd.to_numeric(column)
        except (TypeError, ValueError):
            return None
        if pd.api.types.is_bool_dtype(column.dtype):
            return None
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _codes(column: pd.Series) -> np.ndarray:
    # Sorted string values give codes that do not depend on the row order,
    # and sort mixed-type object columns without a TypeError.
    missing = column.isna().to_numpy()
    codes = np.full(len(column), np.nan)
    codes[~missing] = pd.factorize(column[~missing].astype(str), sort=True)[0]
    return codes


def _stack(columns: list[np.ndarray], n_rows: int) -> np.ndarray:
    return np.column_stack(columns) if columns else np.empty((n_rows, 0))


def _finite_or_nan(values: np.ndarray) -> np.ndarray:
    values[~np.isfinite(values)] = np.nan
    return values


def _read_target(y, n_rows: int, task: str) -> tuple[bool, np.ndarray, np.ndarray]:
    """Whether the task is classification, the labelled targets and which rows have one.

    Class labels come back as integer codes, regression targets as floats.
    """
    series = y if isinstance(y, pd.Series) else pd.Series(_column(np.asarray(y)))
    # A list of floats with None arrives as objects; its numbers decide the task.
    series = series.infer_objects()
    if len(series) != n_rows:
        raise ValueError(f"y has {len(series)} values but X has {n_rows} rows")
    classification = _is_classification(series) if task == "auto" else task == "classification"
    if classification:
        labelled = series.notna().to_numpy()
        return True, pd.factorize(series[labelled])[0], labelled
    try:
        values = pd.to_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise ValueError("task='regression' needs a numeric y") from error
    labelled = np.isfinite(values)
    return False, values[labelled], labelled


def _column(y: np.ndarray) -> np.ndarray:
    # A one-column 2-d y is a common shape for a 1-d target.
    return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y


def _is_classification(y: pd.Series) -> bool:
    if pd.api.types.is_float_dtype(y.dtype):
        return False
    if pd.api.types.is_integer_dtype(y.dtype):
        return y.nunique() <= _MAX_AUTO_CLASSES
    return True


def _shape(numeric: np.ndarray, categorical: np.ndarray, classification: bool) -> dict[str, float]:
    n_rows = len(numeric)
    n_features = numeric.shape[1] + categorical.shape[1]
    missing = np.hstack([np.isnan(numeric).sum(axis=0), np.isnan(categorical).sum(axis=0)])
    # fmin/fmax skip NaN without warnings; an all-missing column stays NaN,
    # fails the comparison and so counts as constant.
    low = np.hstack([np.fmin.reduce(numeric, axis=0), np.fmin.reduce(categorical, axis=0)])
    high = np.hstack([np.fmax.reduce(numeric, axis=0), np.fmax.reduce(categorical, axis=0)])
    return {
        "is_classification": float(classification),
        "log10_n_rows": np.log10(n_rows),
        "log10_n_features": np.log10(n_features),
        "log10_dimensionality": np.log10(n_features / n_rows),
        "frac_categorical": categorical.shape[1] / n_features,
        "frac_constant": np.mean(~(high > low)),
        "frac_missing_features": np.mean(missing > 0),
        "frac_missing_values": missing.sum() / (n_rows * n_features),
    }


def _class_stats(codes: np.ndarray) -> dict[str, float]:
    counts = np.bincount(codes)
    proportions = counts / counts.sum()
    n_classes = len(counts)
    entropy = -np.sum(proportions * np.log(proportions))
    return {
        "n_classes": n_classes,
        "class_entropy": entropy / np.log(n_classes) if n_classes > 1 else np.nan,
        "majority_class_fraction": proportions.max(),
        "minority_majority_ratio": counts.min() / counts.max(),
    }


def _target_stats(target: np.ndarray) -> dict[str, float]:
    skewness, kurtosis = _moments(target[:, None])
    return {"target_skewness": skewness[0], "target_kurtosis": kurtosis[0]}


def _moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skewness and excess kurtosis of each column, ignoring NaN.

    NaN for a column with fewer than two distinct values.
    """
    present = ~np.isnan(values)
    count = present.sum(axis=0)
    deviation = np.where(present, values - np.where(present, values, 0).sum(axis=0) / count, 0)
    variance = (deviation**2).sum(axis=0) / count
    skewness = (deviation**3).sum(axis=0) / count / variance**1.5
    kurtosis = (deviation**4).sum(axis=0) / count / variance**2 - 3
    # A constant column's deviations are rounding noise, not zero: test it directly.
    constant = ~(np.fmax.reduce(values, axis=0) > np.fmin.reduce(values, axis=0))
    return np.where(constant, np.nan, skewness), np.where(constant, np.nan, kurtosis)


def _subsample(n_rows: int, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    if n_rows <= max_rows:
        return np.arange(n_rows)
    return np.sort(rng.choice(n_rows, size=max_rows, replace=False))


def _numeric_stats(numeric: np.ndarray, standardized: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    """Moments of the raw numeric columns, correlation of their standardised twins."""
    skewness, kurtosis = _moments(numeric)
    varying = ~np.isnan(skewness)
    skewness, kurtosis = skewness[varying], kurtosis[varying]
    features = {"mean_abs_correlation": _mean_abs_correlation(standardized, rng)}
    if varying.any():
        features.update(
            skewness_mean=skewness.mean(),
            skewness_std=skewness.std(),
            kurtosis_mean=kurtosis.mean(),
            kurtosis_std=kurtosis.std(),
        )
    return features


def _standardize(values: np.ndarray) -> np.ndarray:
    """Columns with mean 0 and variance 1 over their present values, NaN -> 0.

    Setting a missing value to 0 after standardising imputes the column mean;
    a constant column becomes all 0 (not its rounding noise blown up to unit
    variance).
    """
    present = ~np.isnan(values)
    count = np.maximum(present.sum(axis=0), 1)
    mean = np.where(present, values, 0).sum(axis=0) / count
    centred = np.where(present, values - mean, 0)
    scale = np.sqrt((centred**2).sum(axis=0) / count)
    varying = np.fmax.reduce(values, axis=0) > np.fmin.reduce(values, axis=0)
    return np.divide(centred, scale, out=np.zeros_like(centred), where=varying & (scale > 0))


def _varying_columns(table: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The non-constant columns of a standardised table, at most ``_MAX_COLUMNS`` at random."""
    table = table[:, table.any(axis=0)]
    if table.shape[1] > _MAX_COLUMNS:
        table = table[:, np.sort(rng.choice(table.shape[1], size=_MAX_COLUMNS, replace=False))]
    return table


def _mean_abs_correlation(table: np.ndarray, rng: np.random.Generator) -> float:
    table = _varying_columns(table, rng)
    n_columns = table.shape[1]
    if n_columns < 2:
        return np.nan
    correlation = np.corrcoef(table, rowvar=False)
    return (np.abs(correlation).sum() - n_columns) / (n_columns * (n_columns - 1))


def _pca(table: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    table = _varying_columns(table, rng)
    if table.shape[1] == 0:
        return {}
    # The table is centred, so its squared singular values are the PCA variances.
    variance = np.linalg.svd(table, compute_uv=False) ** 2
    explained = np.cumsum(variance) / variance.sum()
    # The tolerance keeps rounding from adding a component at exactly 95%.
    n_components = np.searchsorted(explained, _PCA_VARIANCE - 1e-12) + 1
    return {
        "pca_frac_components_95": n_components / table.shape[1],
        "pca_first_component": explained[0],
    }


def _landmarkers(table: np.ndarray, target: np.ndarray, classification: bool, seed: int) -> dict[str, float]:
    """Out-of-fold scores of cheap models on a standardised, imputed table."""
    if len(target) < _MIN_ROWS_FOR_LANDMARKERS:
        return {}
    folds = list(_folds(target, classification, seed).split(table, target))
    if classification:
        models = {
            "landmark_1nn_accuracy": KNeighborsClassifier(n_neighbors=1),
            "landmark_stump_accuracy": DecisionTreeClassifier(max_depth=1, random_state=seed),
            "landmark_naive_bayes_accuracy": GaussianNB(),
        }
        score = _accuracy
    else:
        models = {
            "landmark_1nn_r2": KNeighborsRegressor(n_neighbors=1),
            "landmark_stump_r2": DecisionTreeRegressor(max_depth=1, random_state=seed),
            "landmark_linear_r2": LinearRegression(),
        }
        score = _clipped_r2
    return {name: score(target, _out_of_fold(model, table, target, folds)) for name, model in models.items()}


def _folds(target: np.ndarray, classification: bool, seed: int):
    # Stratification needs every class in every fold; rarer classes fall back
    # to plain folds rather than a warning.
    if classification and np.unique(target, return_counts=True)[1].min() >= _N_FOLDS:
        return StratifiedKFold(_N_FOLDS, shuffle=True, random_state=seed)
    return KFold(_N_FOLDS, shuffle=True, random_state=seed)


def _out_of_fold(model, table: np.ndarray, target: np.ndarray, folds) -> np.ndarray:
    predictions = np.empty(len(target), dtype=np.float64)
    for train, test in folds:
        predictions[test] = clone(model).fit(table[train], target[train]).predict(table[test])
    return predictions


def _accuracy(target: np.ndarray, predictions: np.ndarray) -> float:
    return np.mean(predictions == target)


def _clipped_r2(target: np.ndarray, predictions: np.ndarray) -> float:
    # Pooled over folds, R^2 stays defined when one fold's targets are constant.
    total = np.sum((target - target.mean()) ** 2)
    if total == 0:
        return np.nan
    return max(1 - np.sum((target - predictions) ** 2) / total, _MIN_R2)
