"""The meta-learners by algorithm name, and the one home of their defaults.

An *algorithm* is a name a user writes: ``"maml"``, ``"fomaml"``,
``"reptile"``, ``"protonet"`` or ``"matching"``. The registry maps each to

its learner class
    :class:`~autometa.meta.MAML` (``"maml"``, and ``"fomaml"`` with
    ``first_order=True``), :class:`~autometa.meta.Reptile`,
    :class:`~autometa.meta.ProtoNet`, :class:`~autometa.meta.MatchingNet`;
its defaults per task type
    the hyperparameters whose good value depends on the task type
    (:data:`DEFAULTS`): the inner loop of the gradient-based learners. The
    learner classes fill in these when left as ``None``, and so do the
    scikit-learn estimators (which build learners through :func:`build`). A
    constructor argument with one default for every task type (``strategy``,
    ``distance``, ``fce``, ...) keeps it in the class's signature, and only
    there.

An application with reasons of its own (the Omniglot recipe) passes its
values explicitly to :func:`build`, beside the call.

Each learner module registers its class (:func:`register`) when it is
imported; importing any part of :mod:`autometa.meta` imports them all, so the
registry is complete whenever a learner can be built or loaded. This module
imports no learner: the classes depend on it, not the other way round.

Examples
--------
>>> from autometa.meta import registry
>>> registry.defaults("maml", "regression")
{'inner_lr': 0.01, 'inner_steps': 5}
>>> learner = registry.build("fomaml", {"name": "mlp", "in_features": 1, "out_features": 1},
...                          "regression", inner_steps=1)
>>> type(learner).__name__, learner.first_order, learner.inner_lr, learner.inner_steps
('MAML', True, 0.01, 1)
"""

from __future__ import annotations

from typing import Any

TASK_TYPES = ("classification", "regression")
# learn an initialisation that a few gradient steps adapt; the network ends on the outputs
GRADIENT_BASED = ("maml", "fomaml", "reptile")
# learn an embedding in which a new task is classified by its support set
METRIC_BASED = ("protonet", "matching")
ALGORITHMS = METRIC_BASED + GRADIENT_BASED

_MAML = {
    # Finn et al. 2017's step sizes: 0.4 (Omniglot), 0.01 (sinusoids); 5 steps
    # (the paper trains with 1 to 5 and adapts with up to 10)
    "classification": {"inner_lr": 0.4, "inner_steps": 5},
    "regression": {"inner_lr": 0.01, "inner_steps": 5},
}
DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "maml": _MAML,
    "fomaml": _MAML,
    # Nichol et al. 2018: Adam with step 1e-3, 5 steps (1-shot 5-way Omniglot);
    # on sinusoids SGD with step 0.02
    "reptile": {
        "classification": {"inner_lr": 1e-3, "inner_steps": 5, "inner_optimizer": "adam"},
        "regression": {"inner_lr": 0.02, "inner_steps": 5, "inner_optimizer": "sgd"},
    },
    "protonet": {"classification": {}},
    "matching": {"classification": {}},
}
"""Algorithm -> task type -> the constructor arguments that default by task type."""

_LEARNERS: dict[str, tuple[type, dict[str, Any]]] = {}


def register(algorithm: str, learner_class: type, **fixed: Any) -> None:
    """Make ``learner_class`` the learner of ``algorithm``.

    Parameters
    ----------
    algorithm : str
        One of :data:`ALGORITHMS`.
    learner_class : type
        A :class:`~autometa.meta.MetaLearner` subclass.
    **fixed
        Constructor arguments that make the class this algorithm, e.g.
        ``first_order=True`` for ``"fomaml"``.
    """
    _check_algorithm(algorithm)
    _LEARNERS[algorithm] = (learner_class, dict(fixed))


def learner_class(algorithm: str) -> type:
    """The learner class of ``algorithm``."""
    _check_algorithm(algorithm)
    return _LEARNERS[algorithm][0]


def task_types(algorithm: str) -> tuple[str, ...]:
    """The task types ``algorithm`` learns."""
    _check_algorithm(algorithm)
    return tuple(DEFAULTS[algorithm])


def defaults(algorithm: str, task_type: str = "classification") -> dict[str, Any]:
    """The registry's defaults of ``algorithm`` for ``task_type`` (a new dict).

    Raises
    ------
    ValueError
        For an unknown algorithm, or a task type the algorithm does not learn.
    """
    _check_algorithm(algorithm)
    if task_type not in TASK_TYPES:
        raise ValueError(f"task_type must be 'classification' or 'regression', got {task_type!r}")
    if task_type not in DEFAULTS[algorithm]:
        raise ValueError(f"{algorithm} learns {' and '.join(DEFAULTS[algorithm])} only, not {task_type}")
    return dict(DEFAULTS[algorithm][task_type])


def with_defaults(algorithm: str, task_type: str, **hyperparameters: Any) -> dict[str, Any]:
    """``hyperparameters`` with each ``None`` replaced by the registry's default.

    Examples
    --------
    >>> with_defaults("reptile", "regression", inner_lr=None, inner_steps=3)
    {'inner_lr': 0.02, 'inner_steps': 3}
    """
    table = defaults(algorithm, task_type)
    return {name: table[name] if value is None and name in table else value for name, value in hyperparameters.items()}


def build(algorithm: str, backbone, task_type: str = "classification", **hyperparameters: Any):
    """A new learner of ``algorithm`` around ``backbone``.

    Parameters
    ----------
    algorithm : str
        One of :data:`ALGORITHMS`.
    backbone : nn.Module or dict
        The network or its spec; for a gradient-based algorithm it ends on
        the outputs, for a metric-based one on the embedding.
    task_type : {"classification", "regression"}, default="classification"
    **hyperparameters
        Constructor arguments of the learner class; those not given, or
        ``None``, take the registry's defaults for ``task_type``.

    Returns
    -------
    MetaLearner
    """
    defaults(algorithm, task_type)  # checks that the algorithm learns task_type
    learner, fixed = _LEARNERS[algorithm]
    if algorithm in GRADIENT_BASED:
        hyperparameters = {**hyperparameters, "task_type": task_type}
    return learner(backbone, **fixed, **hyperparameters)


def class_named(name: str) -> type:
    """The registered learner class called ``name`` (as saved files record it).

    Raises
    ------
    KeyError
        When no algorithm's learner has that name.
    """
    for learner, _ in _LEARNERS.values():
        if learner.__name__ == name:
            return learner
    raise KeyError(name)


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS)}")
