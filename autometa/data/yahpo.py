"""YAHPO Gym surrogate benchmarks, evaluated with onnxruntime alone.

YAHPO Gym (Pfisterer et al., "YAHPO Gym - An Efficient Multi-Objective
Multi-Fidelity Benchmark for Hyperparameter Optimization", AutoML-Conf 2022)
replaces costly training runs by a neural network fitted to them: a
*scenario* (e.g. ``lcbench``: a funnel MLP tuned on 34 OpenML tasks) maps a
configuration, its *instance* (the OpenML task) and its *fidelity* (epochs,
training-set fraction, ...) to metrics. :class:`YahpoScenario` reads a
scenario folder of YAHPO's data repository (``model.onnx``,
``config_space.json``, ``encoding.json``) and evaluates configurations
without the ``yahpo-gym`` package, which pins ``numpy<2``.

The surrogate's inputs, as yahpo-gym 1.0.1 builds them
(``BenchmarkSet._config_to_xs``): ``x_cont`` (float32) holds the numeric
hyperparameters and fidelities in the scenario's fixed order, raw (the
network applies its own log transforms), 0 for an inactive one; ``x_cat``
(int32) holds the instance and the categorical hyperparameters as the
integers of ``encoding.json``, ``"#na#"``'s code for an inactive one. Which
columns go where is not in the data folder but in yahpo-gym's source
(``yahpo_gym/benchmarks/*.py``); :data:`SCENARIOS` copies it for the
scenarios shipped in autometa's shared data. ``tests/test_yahpo.py`` checks
the outputs against yahpo-gym's own on random configurations
(``benchmarks/yahpo_reference.py`` made the reference).

Where the data live: ``root`` when given, else ``yahpo/`` under
:func:`autometa.data._paths.data_root` (``$AUTOMETA_DATA``, or
``../shared/data`` beside a source checkout).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from autometa.data._paths import data_root

__all__ = ["SCENARIOS", "Condition", "YahpoScenario", "default_root"]

_NA = "#na#"
# Values produced by float arithmetic on the bounds (e.g. exp(log(low))) may
# overshoot them by an ulp; a relative slack of this much is still in range.
_RANGE_SLACK = 1e-9


@dataclass(frozen=True)
class _ScenarioInfo:
    metrics: tuple[str, ...]
    minimize: tuple[bool, ...]
    cont_names: tuple[str, ...]
    cat_names: tuple[str, ...]
    instance_name: str
    fidelity_params: tuple[str, ...]
    default_target: str


_RBV2_METRICS = ("acc", "bac", "auc", "brier", "f1", "logloss", "timetrain", "timepredict", "memory")
_RBV2_MINIMIZE = (False, False, False, True, True, True, True, True, True)

#: The scenarios autometa can read, with the surrogate's input layout and
#: outputs copied from yahpo-gym 1.0.1 (``yahpo_gym/benchmarks/*.py``). The
#: default target is the one of YAHPO's single-objective benchmark suite
#: (``benchmark_suites/v1.0/single.json``); ``iaml_glmnet`` is not in it and
#: uses its first metric, the misclassification error.
SCENARIOS: dict[str, _ScenarioInfo] = {
    "lcbench": _ScenarioInfo(
        metrics=(
            "time",
            "val_accuracy",
            "val_cross_entropy",
            "val_balanced_accuracy",
            "test_cross_entropy",
            "test_balanced_accuracy",
        ),
        minimize=(True, False, True, False, True, False),
        cont_names=(
            "epoch",
            "batch_size",
            "learning_rate",
            "momentum",
            "weight_decay",
            "num_layers",
            "max_units",
            "max_dropout",
        ),
        cat_names=("OpenML_task_id",),
        instance_name="OpenML_task_id",
        fidelity_params=("epoch",),
        default_target="val_accuracy",
    ),
    "rbv2_xgboost": _ScenarioInfo(
        metrics=_RBV2_METRICS,
        minimize=_RBV2_MINIMIZE,
        cont_names=(
            "nrounds",
            "eta",
            "gamma",
            "lambda",
            "alpha",
            "subsample",
            "max_depth",
            "min_child_weight",
            "colsample_bytree",
            "colsample_bylevel",
            "rate_drop",
            "skip_drop",
            "trainsize",
            "repl",
        ),
        cat_names=("task_id", "booster", "num.impute.selected.cpo"),
        instance_name="task_id",
        fidelity_params=("trainsize", "repl"),
        default_target="acc",
    ),
    "rbv2_rpart": _ScenarioInfo(
        metrics=_RBV2_METRICS,
        minimize=_RBV2_MINIMIZE,
        cont_names=("cp", "maxdepth", "minbucket", "minsplit", "trainsize", "repl"),
        cat_names=("task_id", "num.impute.selected.cpo"),
        instance_name="task_id",
        fidelity_params=("trainsize", "repl"),
        default_target="acc",
    ),
    "iaml_glmnet": _ScenarioInfo(
        metrics=(
            "mmce",
            "f1",
            "auc",
            "logloss",
            "ramtrain",
            "rammodel",
            "rampredict",
            "timetrain",
            "timepredict",
            "mec",
            "ias",
            "nf",
        ),
        minimize=(True, False, False, True, True, True, True, True, True, True, True, True),
        cont_names=("alpha", "s", "trainsize"),
        cat_names=("task_id",),
        instance_name="task_id",
        fidelity_params=("trainsize",),
        default_target="mmce",
    ),
}


@dataclass(frozen=True)
class Condition:
    """A hyperparameter is active only when its parent takes one of ``values``.

    Attributes
    ----------
    parent : str
        The parent hyperparameter (a categorical one in YAHPO's scenarios).
    values : tuple
        The parent values under which the child is active.
    """

    parent: str
    values: tuple

    def holds(self, parent_value: Any) -> bool:
        """Whether the child is active when the parent has ``parent_value``."""
        return parent_value in self.values


class YahpoScenario:
    """A YAHPO Gym scenario: its tasks, search space and surrogate.

    Build one with :meth:`load`. The search space excludes the instance and
    the fidelity parameters; evaluations fix the fidelities at their maximum
    (:attr:`fidelity`) unless a configuration sets them.

    Parameters
    ----------
    name : str
        The scenario, a key of :data:`SCENARIOS`.
    folder : path-like
        The scenario folder (``model.onnx``, ``config_space.json``, ``encoding.json``).
    target : str or None, default=None
        The metric :meth:`objective` returns; None takes the scenario's
        default (YAHPO's single-objective suite: ``val_accuracy`` for
        ``lcbench``, ``acc`` for the ``rbv2_*`` scenarios).
    n_threads : int, default=1
        onnxruntime's intra-op threads. One is fastest for the small batches
        of an optimisation loop and leaves cores to parallel workers.

    Attributes
    ----------
    tasks : list of str
        The instances (OpenML task ids, as strings), in the config space's order.
    search_space : dict of str to optuna.distributions.BaseDistribution
        The hyperparameters, parents before the parameters they condition.
    conditions : dict of str to Condition
        The conditional hyperparameters and when they are active.
    fidelity : dict of str to int or float
        Each fidelity parameter at its maximum.
    metrics : list of str
        The surrogate's outputs, in column order.
    target, direction : str
        The optimised metric and ``"maximize"`` or ``"minimize"``.

    Examples
    --------
    >>> import optuna
    >>> scenario = YahpoScenario.load("lcbench")  # doctest: +SKIP
    >>> scenario.target, scenario.direction  # doctest: +SKIP
    ('val_accuracy', 'maximize')
    >>> study = optuna.create_study(direction=scenario.direction)  # doctest: +SKIP
    >>> study.optimize(scenario.objective("3945"), n_trials=20)  # doctest: +SKIP
    >>> scenario.evaluate([study.best_params], "3945")["val_accuracy"]  # doctest: +SKIP
    """

    def __init__(self, name: str, folder, target: str | None = None, n_threads: int = 1) -> None:
        if name not in SCENARIOS:
            raise ValueError(_unknown("scenario", name, SCENARIOS))
        if n_threads < 1:
            raise ValueError(f"n_threads must be positive, got {n_threads}")
        self.name = name
        self.folder = Path(folder)
        self.n_threads = n_threads
        self._info = info = SCENARIOS[name]
        config_space = _read_json(self.folder / "config_space.json")
        self._encoding: dict[str, dict[str, int]] = _read_json(self.folder / "encoding.json")
        self._model_path = self.folder / "model.onnx"
        if not self._model_path.is_file():
            raise FileNotFoundError(f"{self._model_path} is missing: the YAHPO scenario folder is incomplete")

        hyperparameters = {hp["name"]: hp for hp in config_space["hyperparameters"]}
        expected = set(info.cont_names) | set(info.cat_names)
        if set(hyperparameters) != expected:
            raise ValueError(
                f"{self.folder / 'config_space.json'} does not match the {name!r} layout autometa knows: "
                f"parameters {sorted(hyperparameters)}, expected {sorted(expected)}"
            )
        missing = [n for n in info.cat_names if n not in self._encoding]
        if missing:
            raise ValueError(f"{self.folder / 'encoding.json'} has no codes for {missing}")

        self.tasks: list[str] = [str(c) for c in hyperparameters[info.instance_name]["choices"]]
        self.fidelity: dict[str, int | float] = {p: _upper(hyperparameters[p]) for p in info.fidelity_params}
        self._fidelity_bounds = {
            p: (float(hyperparameters[p]["lower"]), float(hyperparameters[p]["upper"])) for p in info.fidelity_params
        }
        self.conditions: dict[str, Condition] = {}
        for condition in config_space.get("conditions", []):
            self.conditions[condition["child"]] = _parse_condition(condition)
        tunable = [n for n in hyperparameters if n != info.instance_name and n not in info.fidelity_params]
        self.search_space: dict[str, BaseDistribution] = {
            n: _distribution(hyperparameters[n]) for n in _parents_first(tunable, self.conditions)
        }
        self.metrics: list[str] = list(info.metrics)
        self._directions = {m: "minimize" if low else "maximize" for m, low in zip(info.metrics, info.minimize)}
        self.target = info.default_target if target is None else target
        if self.target not in self._directions:
            raise ValueError(_unknown(f"metric of scenario {name!r}", self.target, self.metrics))
        self._session = None

    @classmethod
    def load(
        cls, name: str, root: str | Path | None = None, target: str | None = None, n_threads: int = 1
    ) -> YahpoScenario:
        """Read scenario ``name`` from ``<root>/<name>/``.

        Parameters
        ----------
        name : str
            ``"lcbench"``, ``"rbv2_xgboost"``, ``"rbv2_rpart"`` or ``"iaml_glmnet"``.
        root : str, path-like or None, default=None
            The folder that holds the scenario folders (YAHPO's data
            repository); None means ``yahpo/`` under ``$AUTOMETA_DATA``, or
            under ``../shared/data`` beside a source checkout.
        target, n_threads
            As in :class:`YahpoScenario`.

        Returns
        -------
        YahpoScenario

        Raises
        ------
        ValueError
            For a scenario autometa does not know.
        FileNotFoundError
            When the data folder is missing; the message names the path searched.
        """
        if name not in SCENARIOS:
            raise ValueError(_unknown("scenario", name, SCENARIOS))
        folder = default_root() if root is None else Path(root).expanduser()
        if folder is None:
            raise FileNotFoundError(
                "no YAHPO data folder: pass root= (the folder holding lcbench/, rbv2_xgboost/, ...) "
                "or set AUTOMETA_DATA to a folder holding yahpo/<scenario>/"
            )
        if not (folder / name).is_dir():
            raise FileNotFoundError(
                f"no YAHPO scenario folder {folder / name}: pass root= (the folder holding {name}/) "
                "or set AUTOMETA_DATA to a folder holding yahpo/<scenario>/ "
                "(YAHPO's data: https://github.com/slds-lmu/yahpo_data)"
            )
        return cls(name, folder / name, target=target, n_threads=n_threads)

    @property
    def direction(self) -> str:
        """``"maximize"`` or ``"minimize"``: the target's direction."""
        return self._directions[self.target]

    def metric_direction(self, metric: str) -> str:
        """The direction of any of :attr:`metrics`."""
        if metric not in self._directions:
            raise ValueError(_unknown(f"metric of scenario {self.name!r}", metric, self.metrics))
        return self._directions[metric]

    def is_active(self, name: str, config: Mapping[str, Any]) -> bool:
        """Whether hyperparameter ``name`` is active in ``config`` (parents checked recursively)."""
        condition = self.conditions.get(name)
        if condition is None:
            return True
        return (
            self.is_active(condition.parent, config)
            and condition.parent in config
            and condition.holds(config[condition.parent])
        )

    def suggest(self, trial, flat: bool = False) -> dict[str, Any]:
        """Suggest a configuration through an Optuna trial, define-by-run.

        Parameters
        ----------
        trial : optuna.Trial
        flat : bool, default=False
            False suggests only the active hyperparameters (a conditional one
            after its parent, when the parent's value activates it). True
            suggests every hyperparameter in every trial, a fixed search
            space for samplers that model only a fixed one (CMA-ES); the
            inactive ones are then dropped from the returned configuration.

        Returns
        -------
        dict of str to Any
            The active hyperparameters.
        """
        config: dict[str, Any] = {}
        for name, distribution in self.search_space.items():
            if flat or self.is_active(name, config):
                config[name] = _suggest(trial, name, distribution)
        return {name: value for name, value in config.items() if self.is_active(name, config)}

    def objective(self, task: str | int, flat: bool = False) -> Callable:
        """An Optuna objective: suggest a configuration, return the target metric on ``task``.

        All metrics are stored in the trial's user attrs under ``"yahpo:<metric>"``.
        """
        task = self._check_task(task)

        def objective(trial) -> float:
            metrics = self.evaluate([self.suggest(trial, flat=flat)], task).iloc[0]
            for metric, value in metrics.items():
                trial.set_user_attr(f"yahpo:{metric}", float(value))
            return float(metrics[self.target])

        return objective

    def evaluate(
        self, configs: Mapping[str, Any] | Iterable[Mapping[str, Any]], task: str | int | Sequence[str | int]
    ) -> pd.DataFrame:
        """The surrogate's metrics for configurations, in one batch.

        The network runs in float32, and its results depend on the batch at
        float32 rounding level (about 1e-4 relative on the ``time``-like
        outputs of ``lcbench``): the same configurations in another batch
        can differ in the last digits.

        Parameters
        ----------
        configs : mapping or iterable of mappings
            Hyperparameter values by name. Every active hyperparameter of
            :attr:`search_space` is required; values of inactive ones are
            ignored (the surrogate sees them as missing); a fidelity parameter
            may be given, else it is at its maximum (:attr:`fidelity`).
        task : str, int or sequence of them
            One of :attr:`tasks`, or one task per configuration.

        Returns
        -------
        pandas.DataFrame
            One row per configuration, one column per metric (:attr:`metrics`).

        Raises
        ------
        ValueError
            For an unknown task or hyperparameter, a missing active
            hyperparameter, or a value outside its range or choices.
        """
        if isinstance(configs, Mapping):
            configs = [configs]
        configs = list(configs)
        if isinstance(task, (str, int, np.integer)):
            tasks = [self._check_task(task)] * len(configs)
        else:
            tasks = [self._check_task(t) for t in task]
            if len(tasks) != len(configs):
                raise ValueError(f"{len(tasks)} tasks for {len(configs)} configurations; pass one task or one each")
        info = self._info
        known = set(self.search_space) | set(self.fidelity)
        for i, config in enumerate(configs):
            unknown = set(config) - known
            if unknown:
                raise ValueError(
                    f"configuration {i} has parameters {sorted(unknown)} that scenario {self.name!r} does not "
                    f"have (known: {sorted(known)}; the task goes in task=)"
                )
        active = [{n for n in self.search_space if self.is_active(n, config)} for config in configs]
        for i, (config, names) in enumerate(zip(configs, active)):
            missing = sorted(names - set(config))
            if missing:
                raise ValueError(f"configuration {i} lacks the active parameters {missing}")

        x_cont = np.zeros((len(configs), len(info.cont_names)), dtype=np.float32)
        for column, name in enumerate(info.cont_names):
            if name in self.fidelity:
                values = [config.get(name, self.fidelity[name]) for config in configs]
                self._check_values(name, values, None)
            else:
                values = [config[name] if name in names else 0.0 for config, names in zip(configs, active)]
                self._check_values(name, values, [name in names for names in active])
            x_cont[:, column] = np.asarray(values, dtype=np.float64)
        x_cat = np.zeros((len(configs), len(info.cat_names)), dtype=np.int32)
        for column, name in enumerate(info.cat_names):
            codes = self._encoding[name]
            if name == info.instance_name:
                x_cat[:, column] = [codes[t] for t in tasks]
                continue
            for row, (config, names) in enumerate(zip(configs, active)):
                value = config[name] if name in names else _NA
                if value != _NA and value not in self.search_space[name].choices:
                    raise ValueError(
                        f"configuration {row}: {name}={value!r} is not one of {self.search_space[name].choices}"
                    )
                x_cat[row, column] = codes[value]
        output = self._run(x_cat, x_cont)
        return pd.DataFrame(output.astype(np.float64), columns=self.metrics)

    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> list[dict[str, Any]]:
        """``n`` random configurations: each active parameter drawn independently.

        Floats are uniform (log-uniform for ``log=True``); integers are
        uniform over their values (log-uniform over ``[low - 0.5, high + 0.5]``
        then rounded for ``log=True``, like Optuna's ``RandomSampler``);
        categoricals uniform over their choices; a conditional parameter is
        drawn only where its condition holds.
        """
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        rng = np.random.default_rng(seed)
        columns = {name: _draw(distribution, n, rng) for name, distribution in self.search_space.items()}
        configs = []
        for row in range(n):
            config: dict[str, Any] = {}
            for name, column in columns.items():
                if self.is_active(name, config):
                    config[name] = column[row]
            configs.append(config)
        return configs

    def __repr__(self) -> str:
        return (
            f"YahpoScenario({self.name!r}, n_tasks={len(self.tasks)}, n_params={len(self.search_space)}, "
            f"target={self.target!r})"
        )

    def __getstate__(self) -> dict[str, Any]:
        # An onnxruntime session does not pickle; a worker process opens its own.
        state = self.__dict__.copy()
        state["_session"] = None
        return state

    def _check_task(self, task: str | int) -> str:
        task = str(task)
        if task not in self.tasks:
            raise ValueError(_unknown(f"task of scenario {self.name!r}", task, self.tasks))
        return task

    def _check_values(self, name: str, values: Sequence, active: Sequence[bool] | None) -> None:
        if name in self.fidelity:
            low, high = self._fidelity_bounds[name]
        else:
            distribution = self.search_space[name]
            low, high = distribution.low, distribution.high
        array = np.asarray(values, dtype=np.float64)
        mask = np.ones(len(array), dtype=bool) if active is None else np.asarray(active, dtype=bool)
        slack = _RANGE_SLACK * max(abs(low), abs(high), 1.0)
        bad = mask & ~((array >= low - slack) & (array <= high + slack))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"configuration {row}: {name}={values[row]!r} is outside [{low}, {high}]")

    def _run(self, x_cat: np.ndarray, x_cont: np.ndarray) -> np.ndarray:
        if self._session is None:
            self._session = _open_session(self._model_path, self.n_threads)
        if len(x_cat) == 0:
            return np.empty((0, len(self.metrics)), dtype=np.float32)
        return self._session.run(None, {"x_cat": x_cat, "x_cont": x_cont})[0]


def default_root() -> Path | None:
    """``yahpo/`` under :func:`autometa.data._paths.data_root`, or None where there is no data root."""
    root = data_root()
    return None if root is None else root / "yahpo"


def _open_session(path: Path, n_threads: int):
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(
            "evaluating YAHPO surrogates needs onnxruntime: pip install onnxruntime (or autometa[bench])"
        ) from error
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = n_threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the YAHPO scenario folder is incomplete")
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _upper(hyperparameter: Mapping[str, Any]) -> int | float:
    if hyperparameter["type"] == "uniform_int":
        return int(hyperparameter["upper"])
    return float(hyperparameter["upper"])


def _distribution(hyperparameter: Mapping[str, Any]) -> BaseDistribution:
    kind = hyperparameter["type"]
    if kind == "uniform_float":
        low, high = float(hyperparameter["lower"]), float(hyperparameter["upper"])
        return FloatDistribution(low, high, log=hyperparameter["log"])
    if kind == "uniform_int":
        return IntDistribution(int(hyperparameter["lower"]), int(hyperparameter["upper"]), log=hyperparameter["log"])
    if kind == "categorical":
        return CategoricalDistribution(tuple(hyperparameter["choices"]))
    raise ValueError(f"hyperparameter {hyperparameter['name']!r} has type {kind!r}, which autometa cannot read")


def _parse_condition(condition: Mapping[str, Any]) -> Condition:
    kind = condition.get("type")
    if kind == "EQ":
        return Condition(condition["parent"], (condition["value"],))
    if kind == "IN":
        return Condition(condition["parent"], tuple(condition["values"]))
    raise ValueError(f"condition {condition} has type {kind!r}; autometa reads EQ and IN conditions only")


def _parents_first(names: list[str], conditions: Mapping[str, Condition]) -> list[str]:
    """The names with every conditional one after its parent, otherwise in their order."""
    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in path:
            raise ValueError(f"cyclic conditions: {' -> '.join(path + (name,))}")
        if name in conditions:
            visit(conditions[name].parent, path + (name,))
        ordered.append(name)

    unconditional = [n for n in names if n not in conditions]
    for name in unconditional + [n for n in names if n in conditions]:
        visit(name, ())
    return ordered


def _suggest(trial, name: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, log=distribution.log)
    return trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)


def _draw(distribution: BaseDistribution, n: int, rng: np.random.Generator) -> list:
    if isinstance(distribution, CategoricalDistribution):
        return [distribution.choices[i] for i in rng.integers(len(distribution.choices), size=n)]
    low, high = distribution.low, distribution.high
    if isinstance(distribution, IntDistribution):
        if distribution.log:
            values = np.exp(rng.uniform(math.log(low - 0.5), math.log(high + 0.5), size=n))
            return [int(v) for v in np.clip(np.round(values), low, high)]
        return [int(v) for v in rng.integers(low, high + 1, size=n)]
    if distribution.log:
        return [float(v) for v in np.clip(np.exp(rng.uniform(math.log(low), math.log(high), size=n)), low, high)]
    return [float(v) for v in rng.uniform(low, high, size=n)]


def _unknown(what: str, value: Any, known: Iterable) -> str:
    known = [str(k) for k in known]
    close = difflib.get_close_matches(str(value), known, n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    shown = known if len(known) <= 40 else known[:40] + ["..."]
    return f"unknown {what} {value!r}{hint} (known: {', '.join(shown)})"
