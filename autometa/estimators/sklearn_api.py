"""The scikit-learn estimators ``FewShotClassifier`` and ``FewShotRegressor``.

Two verbs, two kinds of state:

``meta_fit(X, y, groups=None)``
    meta-trains a learner on many small tasks drawn from ``(X, y)`` and keeps
    it as ``meta_learner_``, the *meta-learned state*;
``fit(X, y)``
    adapts that learner to one new task from its few labelled examples, the
    *task state* (``classes_``, the support set and its predictor).

``fit`` never changes the meta-learned state, and :func:`sklearn.base.clone`
carries it (not the task state), so a meta-fitted estimator can be fitted
again and again inside pipelines, grid searches and cross-validation.

The default ``algorithm="auto"`` of both estimators is the validated choice
of :mod:`autometa.estimators.validated` (classification) and
:mod:`autometa.estimators.validated_regression`; the other algorithms are the
episodic meta-learners of :mod:`autometa.meta`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.linear_model import Ridge
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d, validate_data
from torch import nn

from autometa._common import is_int, is_positive, resolve_device
from autometa.estimators._validated_common import Standardiser
from autometa.estimators.validated import FALLBACK, Head, ValidatedChoice, support_check
from autometa.estimators.validated_regression import ValidatedRegression, predict_with
from autometa.meta import meta_train, registry
from autometa.tasks import EpisodeSampler, GroupedRegressionTasks

GRADIENT_BASED = registry.GRADIENT_BASED
METRIC_BASED = registry.METRIC_BASED
AUTO = "auto"
BACKBONES = ("mlp", "skip_mlp", "conv4")
# parameters that take effect in fit; every other one shapes the meta-learner
FIT_PARAMS = frozenset({"inner_steps", "random_state", "device", "verbose"})
# The two kinds of fitted state, each listed once: meta_fit sets the first
# (sklearn.base.clone carries it over), fit replaces the second as a whole.
META_STATE = ("meta_learner_", "meta_history_", "n_features_in_", "feature_names_in_", "_meta_params",
              "choices_", "validation_scores_", "episode_sizes_", "validated_")
TASK_STATE = ("classes_", "_learner", "_support_x", "_support_y", "_adapt_kwargs", "_predictor",
              "_head", "representation_", "embedding_used_", "head_", "k_used_", "support_check_", "method_")
PREDICT_BATCH = 4096  # rows per forward pass in predict: bounds (GPU) memory


class _FewShotEstimator(BaseEstimator):
    """What both estimators share: building, meta-training, adapting, persisting.

    A subclass sets the three class attributes below and the parameters its
    ``__init__`` stores (``algorithm``, ``backbone``, ``hidden``,
    ``image_shape``, ``inner_lr``, ``inner_steps``, ``meta_steps``,
    ``meta_batch``, ``lr``, ``random_state``, ``device``, ``verbose`` and the
    episode sizes it lists in ``_episode_params``).
    """

    #: the algorithms the estimator accepts
    _algorithms: tuple[str, ...]
    #: "classification" or "regression": picks the registry's defaults and the target checks
    _task_type: str
    #: (parameter, smallest value) of the integer episode and training sizes
    _episode_params: tuple[tuple[str, int], ...]

    # -- meta-learned state ------------------------------------------------
    def _meta_fit(self, X, y, groups, make_tasks, n_outputs: int):
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float32, y_numeric=self._task_type == "regression")
        if groups is not None:
            groups = column_or_1d(groups)
            check_consistent_length(X, groups)
        device = resolve_device(self.device)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        tasks = make_tasks(self._inputs(X, device, torch.float32), y, groups, seed)
        with _seeded(seed, device):
            learner = self._new_learner(X.shape[1], n_outputs).to(device)
            history = meta_train(learner, tasks, steps=self._meta_steps(), meta_batch=self.meta_batch,
                                 optimizer=self._outer_optimizer(learner), verbose=bool(self.verbose))
        self._forget_task()
        self.meta_learner_ = learner.eval()
        self.meta_history_ = history
        self._meta_params = {k: v for k, v in self.get_params(deep=False).items() if k not in FIT_PARAMS}
        return self

    def __sklearn_clone__(self):
        clone = super().__sklearn_clone__()
        # fit never mutates the meta-learner, so the clone may share it
        if hasattr(self, "meta_learner_"):
            for name in META_STATE:
                if hasattr(self, name):
                    setattr(clone, name, getattr(self, name))
        return clone

    # -- task state --------------------------------------------------------
    def _validate_task(self, X, y):
        """Validated task data; after meta_fit, X must have meta_fit's features."""
        self._check_params()
        meta_fitted = hasattr(self, "meta_learner_")
        if meta_fitted:
            self._check_meta_params()
        return validate_data(self, X, y, reset=not meta_fitted, dtype=(np.float64, np.float32),
                             y_numeric=self._task_type == "regression")

    def _fit_task(self, X, support_y: np.ndarray, n_outputs: int, classes: np.ndarray | None = None):
        """Adapt to the task ``(X, support_y)``; ``n_outputs`` sizes a new learner's head.

        Replaces the whole task state (:data:`TASK_STATE`), ``classes_`` included
        when ``classes`` is given.
        """
        device = resolve_device(self.device)
        dtype = torch.float64 if X.dtype == np.float64 else torch.float32
        if hasattr(self, "meta_learner_"):
            # float64 input computes in float64 (as MLPClassifier does): a
            # float32 prediction would change in its last digits with the
            # batch it is computed in
            learner = _converted(self.meta_learner_, device, dtype)
        else:
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            with _seeded(seed, device):
                learner = self._new_learner(X.shape[1], n_outputs).to(device=device, dtype=dtype).eval()
        support_x = self._inputs(X, device, dtype)
        if self.algorithm in GRADIENT_BASED:
            with torch.no_grad():
                self._check_width(learner.backbone(support_x).shape[-1], n_outputs)
        self._forget_task()
        if classes is not None:
            self.classes_ = classes
        self._learner = learner
        self._support_x = support_x
        self._support_y = torch.as_tensor(support_y, device=device)
        self._adapt_kwargs = {"steps": self._inner()["inner_steps"]} if self.algorithm in GRADIENT_BASED else {}
        self._adapt()

    def _adapt(self):
        # a closure: kept out of the pickled state and rebuilt from the support set
        self._predictor = self._learner.adapt(self._support_x, self._support_y, **self._adapt_kwargs)

    def _forget_task(self):
        for name in TASK_STATE:
            self.__dict__.pop(name, None)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_predictor") or hasattr(self, "_head")

    def _outputs(self, X) -> np.ndarray:
        """The learner's outputs for ``X``, ``(n_samples, n_outputs)``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        x = self._inputs(X, self._support_x.device, self._support_x.dtype)
        with torch.no_grad():
            outputs = [self._predictor(x[i : i + PREDICT_BATCH]) for i in range(0, len(x), PREDICT_BATCH)]
        return torch.cat(outputs).cpu().numpy()

    def _meta_fit_auto(self, X, y, groups):
        """``algorithm="auto"``: validate and keep the subclass's :meth:`_auto_meta_fit` selector."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=self._task_type == "regression")
        if groups is not None:
            groups = column_or_1d(groups)
            check_consistent_length(X, groups)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        with _seeded(seed, torch.device("cpu")):
            selector = self._auto_meta_fit(X, y, groups, seed)
        self._forget_task()
        for name in META_STATE:
            if name not in ("n_features_in_", "feature_names_in_"):
                self.__dict__.pop(name, None)
        self.meta_learner_ = selector
        for name in ("choices_", "validation_scores_", "episode_sizes_", "validated_"):
            setattr(self, name, copy.deepcopy(getattr(selector, name)))
        self._meta_params = {k: v for k, v in self.get_params(deep=False).items() if k not in FIT_PARAMS}
        return self

    # -- persistence -------------------------------------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())
        if "_support_x" in state:  # an episodic learner's closure, rebuilt by __setstate__
            state.pop("_predictor", None)
        # CPU tensors unpickle anywhere; __setstate__ moves them to self.device
        return _moved(state, torch.device("cpu"))

    def __setstate__(self, state):
        super().__setstate__(state)
        self.__dict__.update(_moved(self.__dict__, resolve_device(self.device, fallback=True)))
        if hasattr(self, "_support_x"):
            self._adapt()

    # -- building blocks ---------------------------------------------------
    def _inner(self) -> dict:
        """``inner_lr`` and ``inner_steps``, ``None`` filled in from :mod:`autometa.meta.registry`."""
        return registry.with_defaults(self.algorithm, self._task_type, inner_lr=self.inner_lr,
                                      inner_steps=self.inner_steps)

    def _outer_optimizer(self, learner) -> torch.optim.Optimizer:
        # Reptile's outer step interpolates towards the fine-tuned weights
        # (SGD, step 1.0 by default, as in Nichol et al. 2018); the others
        # descend the meta-gradient with Adam
        if self.algorithm == "reptile":
            return torch.optim.SGD(learner.parameters(), lr=1.0 if self.lr is None else self.lr)
        return torch.optim.Adam(learner.parameters(), lr=1e-3 if self.lr is None else self.lr)

    def _input_shape(self, n_features: int) -> tuple[int, ...]:
        """The shape of one example as the backbone takes it."""
        if self.image_shape is not None:
            shape = tuple(int(s) for s in self.image_shape)
            if int(np.prod(shape)) != n_features:
                raise ValueError(f"image_shape={shape} has {int(np.prod(shape))} pixels but X has "
                                 f"{n_features} features; pass the (channels, height, width) of X's rows")
            return shape
        if self.backbone == "conv4":
            side = int(round(n_features**0.5))
            if side * side != n_features:
                raise ValueError(f"backbone='conv4' needs image rows; X has {n_features} features, not a "
                                 f"square number: pass image_shape=(channels, height, width)")
            return (1, side, side)
        return (n_features,)

    def _inputs(self, X: np.ndarray, device, dtype) -> torch.Tensor:
        # torch cannot share read-only memory (e.g. a memory map) and warns
        array = X if X.flags.writeable else X.copy()
        x = torch.from_numpy(array).to(device=device, dtype=dtype)
        return x.reshape(len(x), *self._input_shape(X.shape[1]))

    def _new_learner(self, n_features: int, n_outputs: int):
        """A randomly initialised learner for inputs of ``n_features`` (a head of ``n_outputs``)."""
        gradient_based = self.algorithm in GRADIENT_BASED
        out = n_outputs if gradient_based else None  # metric learners end on the embedding
        hidden = [int(h) for h in self._hidden()]
        if isinstance(self.backbone, nn.Module):
            backbone = copy.deepcopy(self.backbone)  # training must leave the parameter untouched
        elif self.backbone == "skip_mlp":
            if gradient_based:
                raise ValueError("backbone='skip_mlp' is an embedding for algorithm='protonet' or 'matching'; "
                                 "use backbone='mlp' with MAML and Reptile")
            # [x, MLP(x)]: the prototypes keep the raw features' distances, and
            # meta-learning adds to them (autometa.nn.SkipMLP)
            backbone = {"name": "skip_mlp", "in_features": n_features, "out_features": hidden[-1],
                        "hidden": hidden[:-1]}
        elif self.backbone == "mlp":
            backbone = {"name": "mlp", "in_features": n_features, "out_features": out, "hidden": hidden}
        else:
            channels, height, width = self._input_shape(n_features)
            if height != width:
                raise ValueError(f"backbone='conv4' needs square images, got image_shape={self.image_shape}")
            # MAML's batch norm uses the statistics of the batch it is given,
            # which would make a prediction depend on the rest of the batch
            backbone = {"name": "conv4", "in_channels": channels, "image_size": height,
                        "out_features": out, "norm": not gradient_based}
        inner = self._inner() if gradient_based else {}
        return registry.build(self.algorithm, backbone, self._task_type, **inner)

    def _hidden(self):
        """``hidden``, ``None`` filled in with the subclass's default for the algorithm."""
        return self._default_hidden[self.algorithm == AUTO] if self.hidden is None else self.hidden

    def _meta_steps(self):
        return 500 if self.meta_steps is None else self.meta_steps

    def _check_params(self):
        name = type(self).__name__
        if self.algorithm not in self._algorithms:
            hint = "; it is a classifier: use FewShotClassifier" if self.algorithm in METRIC_BASED else ""
            raise ValueError(f"{name} algorithm must be one of {self._algorithms}, got {self.algorithm!r}{hint}")
        if not (isinstance(self.backbone, nn.Module) or self.backbone in BACKBONES):
            raise ValueError(f"backbone must be one of {BACKBONES} or an nn.Module, got {self.backbone!r}")
        if self.hidden is not None and not (
            isinstance(self.hidden, Sequence) and len(self.hidden) and all(is_int(h, 1) for h in self.hidden)
        ):
            raise ValueError(f"hidden must be None or a non-empty sequence of positive ints, got {self.hidden!r}")
        if self.image_shape is not None and not (
            isinstance(self.image_shape, Sequence) and len(self.image_shape) == 3
            and all(is_int(s, 1) for s in self.image_shape)
        ):
            raise ValueError(f"image_shape must be None or (channels, height, width), got {self.image_shape!r}")
        if self.inner_lr is not None and not is_positive(self.inner_lr):
            raise ValueError(f"inner_lr must be None or a positive number, got {self.inner_lr!r}")
        if self.inner_steps is not None and not is_int(self.inner_steps, 1):
            raise ValueError(f"inner_steps must be None or a positive int, got {self.inner_steps!r}")
        for param, low in self._episode_params:
            if not is_int(getattr(self, param), low):
                raise ValueError(f"{param} must be an int >= {low}, got {getattr(self, param)!r}")
        if self.meta_steps is not None and not is_int(self.meta_steps, 1):
            raise ValueError(f"meta_steps must be None or an int >= 1, got {self.meta_steps!r}")
        if self.lr is not None and not is_positive(self.lr):
            raise ValueError(f"lr must be None or a positive number, got {self.lr!r}")
        resolve_device(self.device)

    def _check_meta_params(self):
        """Parameters that shape the meta-learner must be those it was meta-fitted with."""
        for param, fitted in self._meta_params.items():
            value = getattr(self, param)
            same = type(value) is type(fitted) if isinstance(value, nn.Module) else value == fitted
            if not same:
                raise ValueError(
                    f"{param}={value!r} but this estimator was meta-fitted with {param}={fitted!r}; "
                    f"{param} only takes effect in meta_fit: call meta_fit again, or set it back"
                )


class FewShotClassifier(ClassifierMixin, _FewShotEstimator):
    """A few-shot classifier: meta-learn on many classes, then fit new classes from a few examples.

    :meth:`meta_fit` learns from the classes of ``y``; :meth:`fit` then
    adapts to a new task, possibly of classes never seen in meta-training,
    with any number of classes and examples per class.

    The default, ``algorithm="auto"``, is a validated choice
    (:mod:`autometa.estimators.validated`): :meth:`meta_fit` standardises
    the features with the meta-training rows, builds candidate
    representations (the standardised raw features; the features whitened
    by the within-class covariance of the meta-training classes, shrunk
    halfway to the identity; the penultimate layer of an MLP pre-trained by
    plain softmax classification over the meta-training classes, as in Tian
    et al., ECCV 2020; raw features and that embedding side by side) and
    support-set heads (nearest centroid, logistic regression, 1-nearest
    neighbour, extra trees on raw features), and scores every pair on
    N-way K-shot episodes of meta-training classes held out from building
    the representations, for K = 1, 5 and 10. Per K it keeps the best pair,
    but keeps the best raw-feature pair unless the winner beats it by more
    than one point of accuracy: a representation is only used where it
    generalised to classes it was not built on. :meth:`fit` uses the choice
    of the validated K nearest (on a log scale) to the support's smallest
    class. With fewer than three meta-training classes nothing can be
    validated: raw features with nearest centroid (the choice for K = 1,
    used up to K = 2) and logistic regression (the choice for K = 5, used
    from K = 3). Without :meth:`meta_fit`, :meth:`fit` standardises the
    features with the support rows and uses nearest centroid at K = 1,
    logistic regression from K = 2 (the raw-feature rule). Validation sees
    only meta-training classes, and a task's new classes may live on other
    scales or use other features; so with two or more examples per class
    :meth:`fit` also cross-validates the validated choice and the
    raw-feature rule on the support set and uses the rule instead when the
    support set shows it significantly better (one-sided sign test at 5%,
    ``support_check_``).

    The other algorithms are the episodic meta-learners of
    :mod:`autometa.meta`: :meth:`meta_fit` meta-trains one on N-way K-shot
    episodes; without it, :meth:`fit` adapts a randomly initialised learner
    (a nearest-prototype rule in a random embedding for ``"protonet"`` and
    ``"matching"``, a network trained from scratch for ``inner_steps`` steps
    for the others).

    Parameters
    ----------
    algorithm : {"auto", "protonet", "matching", "maml", "fomaml", "reptile"}, default="auto"
        The validated choice described above, or Prototypical Networks,
        Matching Networks, MAML, first-order MAML or Reptile (see
        :mod:`autometa.meta`).
    backbone : {"mlp", "skip_mlp", "conv4"} or nn.Module, default="mlp"
        The network: a ReLU MLP on the rows of ``X`` (``"skip_mlp"``: see
        ``hidden``), the four-block
        convolutional network on images (rows of ``X`` are flattened images
        of ``image_shape``), or any module (it is copied, never trained in
        place). For the gradient-based algorithms a module must output at
        least as many logits as a task has classes; ``"conv4"`` is then
        built without batch norm, whose batch statistics would make a
        prediction depend on the rest of the batch.
    hidden : sequence of int or None, default=None
        Layer widths of the ``"mlp"`` and ``"skip_mlp"`` backbones; ``None``:
        (64, 64), and for ``"auto"`` the pre-trained embedding's (256, 128).
        ``"skip_mlp"`` (metric learners only) embeds a row as ``[x, MLP(x)]``,
        the MLP ending on a linear layer of ``hidden[-1]`` features
        (:func:`autometa.nn.SkipMLP`): prototypes keep the distances of the
        standardised input and meta-learning adds to them, which helps when
        the raw features are informative and there are few past classes, and
        hurts when raw distances are mostly noise.
    image_shape : (int, int, int) or None, default=None
        ``(channels, height, width)`` of the images the rows of ``X`` hold;
        ``None`` with ``"conv4"`` takes square one-channel images.
    inner_lr : float or None, default=None
        Inner-loop step size of MAML and Reptile (Reptile's inner optimiser is
        Adam); ``None``: 0.4 for MAML, 1e-3 for Reptile.
    inner_steps : int or None, default=None
        Inner-loop steps of MAML and Reptile, in meta-training and in
        :meth:`fit`; after :meth:`meta_fit` it may be changed, e.g. by a grid
        search, to adapt with more steps than meta-training took.
        ``None``: 5.
    n_way, k_shot, n_query : int, default=5, 1, 5
        Classes per meta-training episode, and support and query examples per
        class, of the episodic algorithms; a setting the data cannot meet is
        an error. ``n_way`` is also the width of MAML's and Reptile's output
        layer: such a meta-fitted classifier fits tasks of up to ``n_way``
        classes, using the first logits. ``"auto"`` takes ``n_way`` as the
        most classes of a validation episode and sizes the rest of its
        episodes from the held-out classes and their rows
        (``episode_sizes_``).
    meta_steps : int or None, default=None
        Meta-training steps (one meta-batch each); ``None``: 500. For
        ``"auto"``, the embedding's pre-training steps (batches of 128 rows);
        ``None``: 30 epochs of the meta-training rows, clipped to 300-1500.
    meta_batch : int, default=8
        Episodes per meta-training step.
    lr : float or None, default=None
        Meta-training's outer learning rate, decayed on a cosine: of Adam
        (``None``: 1e-3), or for Reptile of SGD on its interpolation step
        (``None``: 1.0, the paper's).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and the episodes; the global torch random
        state is left as it was.
    device : str or torch.device, default="auto"
        Where the networks run; ``"auto"`` takes CUDA when available. An
        unpickled estimator moves to ``device`` as resolved on the loading
        machine (to the CPU, with a warning, if it names a missing GPU).
        ``algorithm="auto"`` computes on the CPU.
    verbose : bool, default=False
        Show a progress bar during :meth:`meta_fit` (episodic algorithms).

    Attributes
    ----------
    meta_learner_ : autometa.meta.MetaLearner or autometa.estimators.validated.ValidatedChoice
        The meta-trained learner, or for ``"auto"`` the standardisation,
        representations and choices (set by :meth:`meta_fit`; kept by
        :func:`sklearn.base.clone` and never changed by :meth:`fit`).
    meta_history_ : list of dict
        Meta-training metrics per step (``loss``, ``accuracy``); episodic
        algorithms only.
    choices_ : dict of int to (str, str)
        ``"auto"``: the (representation, head) kept per validated K, with
        representation in {"raw", "white", "emb", "raw+emb"} and head in
        {"centroid", "logistic", "1nn", "forest"}.
    validation_scores_ : dict of (int, str, str) to float
        ``"auto"``: mean accuracy of each (K, representation, head) on the
        validation episodes (empty when nothing could be validated).
    validated_ : bool
        ``"auto"``: whether ``choices_`` come from validation (False: too few
        meta-training classes, the raw-feature rule described above).
    episode_sizes_ : dict
        ``"auto"``: the validation actually run: ``folds``,
        ``episodes_per_fold``, ``held_out_classes`` per fold, and per K the
        ``n_way``, ``k_shot`` and ``n_query`` of its episodes.
    embedding_used_ : bool
        ``"auto"``, after :meth:`fit`: whether the task's representation
        uses the pre-trained embedding.
    representation_, head_ : str
        ``"auto"``, after :meth:`fit`: the representation and head used.
    k_used_ : int or None
        ``"auto"``, after :meth:`fit`: the validated K whose choice was used
        (None when the raw-feature rule was used).
    support_check_ : dict or None
        ``"auto"``, after :meth:`fit` on a meta-fitted classifier with at
        least two examples per class: the support-set cross-validation of
        the validated choice against the raw-feature rule
        (:func:`autometa.estimators.validated.support_check`: ``folds``,
        ``validated`` and ``support_rule`` accuracies, ``p_value``,
        ``switched``); None otherwise.
    classes_ : ndarray of shape (n_classes,)
        The classes of the task seen in :meth:`fit`.
    n_features_in_ : int
        Number of features seen in :meth:`meta_fit`, or in :meth:`fit`
        without it.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of those features, when ``X`` was a DataFrame with string
        column names.

    See Also
    --------
    sklearn.neighbors.NearestCentroid : The prototype rule without a learned embedding.
    FewShotRegressor : The regression counterpart.

    Notes
    -----
    The parameters other than ``inner_steps``, ``random_state``, ``device``
    and ``verbose`` shape the meta-learner; changing one after
    :meth:`meta_fit` makes :meth:`fit` raise until :meth:`meta_fit` runs
    again. :meth:`meta_fit` computes in float32; :meth:`fit` and the
    predictions compute in the floating dtype of ``X`` (float64 unless
    ``X`` is float32), so a prediction does not depend on the rows it is
    computed with.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from autometa import FewShotClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> old, new = y < 7, y >= 7
    >>> clf = FewShotClassifier(n_way=5, meta_steps=50, random_state=0)
    >>> clf = clf.meta_fit(X[old], y[old])          # meta-train on digits 0-6
    >>> shots = np.flatnonzero(new)[[0, 1, 2]]       # one example of 7, 8, 9 each
    >>> clf = clf.fit(X[shots], y[shots])
    >>> clf.classes_
    array([7, 8, 9])
    >>> clf.predict_proba(X[new]).shape
    (533, 3)
    """

    _algorithms = (AUTO, *METRIC_BASED, *GRADIENT_BASED)
    _task_type = "classification"
    _episode_params = (("n_way", 2), ("k_shot", 1), ("n_query", 1), ("meta_batch", 1))
    _default_hidden = ((64, 64), (256, 128))  # episodic, auto

    def __init__(self, algorithm=AUTO, *, backbone="mlp", hidden=None, image_shape=None, inner_lr=None,
                 inner_steps=None, n_way=5, k_shot=1, n_query=5, meta_steps=None, meta_batch=8, lr=None,
                 random_state=None, device="auto", verbose=False):
        self.algorithm = algorithm
        self.backbone = backbone
        self.hidden = hidden
        self.image_shape = image_shape
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.n_way = n_way
        self.k_shot = k_shot
        self.n_query = n_query
        self.meta_steps = meta_steps
        self.meta_batch = meta_batch
        self.lr = lr
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def meta_fit(self, X, y, groups=None):
        """Learn from the classes of ``y``: validate (``"auto"``) or meta-train on N-way K-shot episodes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels (any sortable values); for the episodic algorithms
            every class drawn needs ``k_shot + n_query`` examples.
        groups : array-like of shape (n_samples,), default=None
            A group per sample (e.g. an alphabet); each episode then draws
            its ``n_way`` classes from one group (episodic algorithms;
            ``"auto"`` ignores it).

        Returns
        -------
        self : FewShotClassifier
            Meta-fitted; call :meth:`fit` on a task before predicting.
        """

        if self.algorithm == AUTO:
            return self._meta_fit_auto(X, y, groups)

        def episodes(x, labels, groups, seed):
            check_classification_targets(labels)
            return EpisodeSampler(x, labels, self.n_way, self.k_shot, self.n_query, groups=groups,
                                  random_state=seed)

        return self._meta_fit(X, y, groups, episodes, n_outputs=self.n_way)

    def fit(self, X, y):
        """Adapt to a task from its labelled examples (the support set).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            At least two classes; any number of examples of each.

        Returns
        -------
        self : FewShotClassifier
        """
        X, y = self._validate_task(X, y)
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"a task needs at least 2 classes; got {len(classes)} class")
        if self.algorithm == AUTO:
            self._fit_auto(X, codes, classes)
        else:
            self._fit_task(X, codes, n_outputs=len(classes), classes=classes)
        return self

    def _auto_meta_fit(self, X, y, groups, seed):
        check_classification_targets(y)
        return ValidatedChoice(max_way=self.n_way, hidden=self._hidden(), steps=self.meta_steps,
                               seed=seed).fit(X, y)

    def _fit_auto(self, X, codes, classes):
        k = int(np.bincount(codes).min())
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        meta_fitted, check = hasattr(self, "meta_learner_"), None
        if meta_fitted:
            selector = self.meta_learner_
            k_used, rep, head = selector.choose(k)
            features = _Features(selector, rep)
            if k >= 2:
                check = support_check(features, head, X, codes, len(classes), seed=seed)
        if not meta_fitted or (check and check["switched"]):  # the raw-feature rule, standardised with the support
            k_used, (rep, head) = None, FALLBACK[1] if k == 1 else FALLBACK[5]
            features = Standardiser().fit(X)
        self._forget_task()
        self.classes_ = classes
        self.support_check_ = check
        self._head = (features, Head(head, features(X), codes, len(classes), seed=seed))
        self.representation_, self.head_, self.k_used_ = rep, head, k_used
        self.embedding_used_ = "emb" in rep

    def _check_width(self, width: int, n_classes: int):
        if width < n_classes:
            raise ValueError(
                f"the task has {n_classes} classes but the {self.algorithm} network outputs {width} logits; "
                f"meta_fit with n_way >= {n_classes} (or pass a backbone with more outputs)"
            )

    def decision_function(self, X):
        """Logits of the classes (for two classes: of ``classes_[1]`` over ``classes_[0]``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes), or (n_samples,) for two classes
        """
        logits = self._logits(X)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict_proba(self, X):
        """Class probabilities, columns in ``classes_`` order.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        logits = self._logits(X)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, X):
        """The most likely class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)  # argmax of the probabilities: ties break the same way in both
        return self.classes_[proba.argmax(axis=1)]

    def _logits(self, X) -> np.ndarray:
        if self.algorithm == AUTO:
            check_is_fitted(self)
            X = validate_data(self, X, reset=False, dtype=np.float64)
            features, head = self._head
            return head.log_proba(features(X))
        # a wider MAML or Reptile head than the task's classes: the first logits
        outputs = self._outputs(X)
        return outputs[:, : len(self.classes_)]


class FewShotRegressor(RegressorMixin, _FewShotEstimator):
    """A few-shot regressor: meta-learn on many tasks, fit a new one from a few points.

    :meth:`meta_fit` learns from tasks that are the groups of rows of a
    table (a customer, a sensor, a data set); :meth:`fit` then adapts to a
    new task's few points.

    The default, ``algorithm="auto"``, is a validated choice
    (:mod:`autometa.estimators.validated_regression`): :meth:`meta_fit`
    standardises features and targets with the meta-training rows and
    compares, on K-shot tasks (K = 2, 5, 10) of a quarter of the groups held
    out from building them, a global HistGradientBoosting model on all
    meta-training rows, that model plus the support's shrunk mean residual,
    a basis network with a closed-form ridge head meta-trained on K-shot
    tasks (R2-D2, Bertinetto et al., ICLR 2019), and Ridge and k-NN fitted on
    the support only; per K it keeps the lowest mean squared error.
    :meth:`fit` uses the choice of the validated K nearest (log scale) to
    the number of support points. Without :meth:`meta_fit`, :meth:`fit` fits
    Ridge (alpha 1) on features standardised with the support rows.

    ``"maml"``, ``"fomaml"`` and ``"reptile"`` meta-train an initialisation
    that :meth:`fit` fine-tunes for ``inner_steps`` gradient steps (without
    :meth:`meta_fit`: a randomly initialised network). Their targets are
    taken as they are: the meta-learned initialisation expects new tasks on
    the scale of the meta-training tasks.

    Parameters
    ----------
    algorithm : {"auto", "maml", "fomaml", "reptile"}, default="auto"
    backbone : {"mlp", "conv4"} or nn.Module, default="mlp"
        As in :class:`FewShotClassifier`; a module must output one value.
    hidden : sequence of int or None, default=None
        Hidden widths of the ``"mlp"`` backbone; ``None``: (40, 40), MAML's
        sinusoid network (``"auto"``'s basis network is 64-64-32).
    image_shape : (int, int, int) or None, default=None
        As in :class:`FewShotClassifier`.
    inner_lr : float or None, default=None
        Inner-loop SGD step size; ``None``: 0.01 for MAML, 0.02 for Reptile.
    inner_steps : int or None, default=None
        Inner-loop steps, in meta-training and in :meth:`fit` (where it may
        be changed after :meth:`meta_fit`); ``None``: 5.
    k_shot, n_query : int, default=10, 10
        Support and query rows per meta-training task of the episodic
        algorithms; groups with fewer than ``k_shot + n_query`` rows are not
        drawn. ``"auto"`` sizes its tasks itself (``episode_sizes_``).
    meta_steps : int or None, default=None
        Meta-training steps; ``None``: 500, for ``"auto"``'s basis network
        1500.
    meta_batch : int, default=8
    lr : float or None, default=None
    random_state : int, RandomState instance or None, default=None
    device : str or torch.device, default="auto"
    verbose : bool, default=False
        As in :class:`FewShotClassifier`.

    Attributes
    ----------
    meta_learner_ : autometa.meta.MetaLearner or autometa.estimators.validated_regression.ValidatedRegression
        The meta-trained learner, or for ``"auto"`` the standardisation,
        candidates and choices (set by :meth:`meta_fit`; kept by
        :func:`sklearn.base.clone` and never changed by :meth:`fit`).
    meta_history_ : list of dict
        Meta-training metrics per step (``loss``); episodic algorithms.
    choices_ : dict of int to str
        ``"auto"``: the candidate kept per validated K, one of "global",
        "offset", "basis", "ridge", "knn".
    validation_scores_ : dict of (int, str) to float
        ``"auto"``: validation mean squared error (standardised targets).
    validated_ : bool
        ``"auto"``: False when there were too few groups to validate (then
        "offset" is used).
    episode_sizes_ : dict
        ``"auto"``: per validated K, the held-out groups and episodes used.
    method_ : str
        ``"auto"``, after :meth:`fit`: the candidate used ("ridge" without
        :meth:`meta_fit`).
    k_used_ : int or None
        ``"auto"``, after :meth:`fit`: the validated K whose choice was used.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)

    See Also
    --------
    FewShotClassifier : The classification counterpart.

    Examples
    --------
    >>> import numpy as np
    >>> from autometa import FewShotRegressor
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(50), 20)          # 50 tasks of 20 points
    >>> X = rng.uniform(-5, 5, size=(1000, 1))
    >>> y = rng.uniform(0.1, 5, 50)[groups] * np.sin(X[:, 0] - rng.uniform(0, 3, 50)[groups])
    >>> reg = FewShotRegressor(meta_steps=50, random_state=0).meta_fit(X, y, groups)
    >>> reg = reg.fit(X[:5], y[:5])                    # five points of one task
    >>> reg.predict(X[5:20]).shape
    (15,)
    """

    _algorithms = (AUTO, *GRADIENT_BASED)
    _task_type = "regression"
    _episode_params = (("k_shot", 1), ("n_query", 1), ("meta_batch", 1))
    _default_hidden = ((40, 40), (64, 64))  # episodic, auto

    def __init__(self, algorithm=AUTO, *, backbone="mlp", hidden=None, image_shape=None, inner_lr=None,
                 inner_steps=None, k_shot=10, n_query=10, meta_steps=None, meta_batch=8, lr=None,
                 random_state=None, device="auto", verbose=False):
        self.algorithm = algorithm
        self.backbone = backbone
        self.hidden = hidden
        self.image_shape = image_shape
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.k_shot = k_shot
        self.n_query = n_query
        self.meta_steps = meta_steps
        self.meta_batch = meta_batch
        self.lr = lr
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def meta_fit(self, X, y, groups=None):
        """Meta-train on the tasks that the groups of rows form.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,)
            The task of each row; required.

        Returns
        -------
        self : FewShotRegressor
            Meta-fitted; call :meth:`fit` on a task before predicting.
        """
        if groups is None:
            raise ValueError("FewShotRegressor.meta_fit needs groups=: the task of each row "
                             "(each group of rows is one meta-training task)")

        if self.algorithm == AUTO:
            return self._meta_fit_auto(X, y, groups)

        def tasks(x, targets, groups, seed):
            return GroupedRegressionTasks(x, targets.astype(np.float32), groups, self.k_shot, self.n_query,
                                          random_state=seed)

        return self._meta_fit(X, y, groups, tasks, n_outputs=1)

    def fit(self, X, y):
        """Fine-tune on a task's points (the support set).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : FewShotRegressor
        """
        X, y = self._validate_task(X, y)
        if self.algorithm == AUTO:
            self._fit_auto(X, y.astype(np.float64))
        else:
            self._fit_task(X, y.astype(X.dtype), n_outputs=1)
        return self

    def _auto_meta_fit(self, X, y, groups, seed):
        return ValidatedRegression(steps=1500 if self.meta_steps is None else self.meta_steps, seed=seed).fit(
            X, y, groups)

    def _fit_auto(self, X, y):
        self._forget_task()
        if hasattr(self, "meta_learner_"):
            selector = self.meta_learner_
            self.k_used_, self.method_ = selector.choose(len(y))
            self._head = ("selector", selector.standardise(X), (y - selector.y_mean_) / selector.y_std_)
        else:
            self.k_used_, self.method_ = None, "ridge"
            scale = Standardiser().fit(X)
            self._head = ("ridge", scale, Ridge(1.0).fit(scale(X), y))

    def _check_width(self, width: int, n_outputs: int):
        if width != 1:
            raise ValueError(f"the backbone outputs {width} values per example; a regressor needs 1")

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        if self.algorithm == AUTO:
            check_is_fitted(self)
            X = validate_data(self, X, reset=False, dtype=np.float64)
            kind, a, b = self._head
            if kind == "ridge":
                return b.predict(a(X))
            sel = self.meta_learner_
            return predict_with(self.method_, sel.parts_, a, b, sel.standardise(X)) * sel.y_std_ + sel.y_mean_
        return self._outputs(X)[:, 0]


# -- helpers ---------------------------------------------------------------
class _Features:
    """The representation ``rep`` of a :class:`ValidatedChoice` (a picklable callable)."""

    def __init__(self, selector, rep):
        self.selector, self.rep = selector, rep

    def __call__(self, X):
        return self.selector.features(self.rep, X)


@contextmanager
def _seeded(seed: int, device: torch.device):
    """Seed torch for the block, restoring the caller's random state after it."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _converted(learner: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """``learner`` itself when it already lives on ``device`` in ``dtype``, else a converted copy."""
    tensors = [*learner.parameters(), *learner.buffers()]
    if all(t.device == device and (t.dtype == dtype or not t.is_floating_point()) for t in tensors):
        return learner
    return copy.deepcopy(learner).to(device=device, dtype=dtype)


def _moved(state: dict, device: torch.device) -> dict:
    """``state`` with its modules and tensors on ``device``: the same objects
    where they already are there, else copies (one per object, so that shared
    references stay shared)."""
    copies: dict[int, object] = {}

    def move(value):
        if id(value) not in copies:
            if isinstance(value, torch.Tensor):
                copies[id(value)] = value.to(device)
            elif any(t.device != device for t in [*value.parameters(), *value.buffers()]):
                copies[id(value)] = copy.deepcopy(value).to(device)
            else:
                copies[id(value)] = value
        return copies[id(value)]

    return {k: move(v) if isinstance(v, (torch.Tensor, nn.Module)) else v for k, v in state.items()}
