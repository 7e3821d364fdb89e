"""The knowledge base: earlier Optuna studies, as plain data, with task descriptors.

A :class:`KnowledgeBase` holds :class:`Task` records. A task is one earlier
study: its name, its optimisation direction(s), its finished trials
(:class:`TrialRecord`: parameters, distributions, objective value(s), state)
and, optionally, a *descriptor*: the meta-features of the data set it tuned
on (:func:`autometa.hpo.compute_metafeatures`). A meta-learned sampler reads
it to find which earlier tasks resemble a new one and what worked there.

Where the data live
-------------------
An Optuna storage is the single source of truth. Descriptors are stored in
each study's ``user_attrs`` under :data:`DESCRIPTOR_KEY` (non-finite floats
as the strings ``"nan"``, ``"inf"``, ``"-inf"``, since JSON has no NaN), so
every worker that reads the storage sees the same knowledge base. The
knowledge base's own file (:meth:`KnowledgeBase.save`) is a snapshot for
machines without access to the storage.

Concurrency
-----------
Adding a study to a storage never touches existing studies: its finished
trials are copied into a *new* study with a unique name, through Optuna's
public API. Optuna's RDB storages (PostgreSQL, MySQL, SQLite) and
``JournalStorage`` accept concurrent writers, so workers may keep optimising
other studies meanwhile. SQLite serialises writers with a file lock: fine for
a few processes on one machine, given a busy timeout longer than sqlite3's
5 s (``RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 30}})``);
use PostgreSQL, MySQL or a journal file beyond that. A copy in progress is marked in its user attrs and skipped by
readers until it is complete, so nobody reads half a study.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, distribution_to_json, json_to_distribution
from optuna.storages import BaseStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from autometa.hpo.metafeatures import METAFEATURES, compute_metafeatures, metafeature_vector

__all__ = ["DESCRIPTOR_KEY", "KnowledgeBase", "Task", "TrialRecord"]

#: The study user attr that holds a task descriptor.
DESCRIPTOR_KEY = "autometa:descriptor"
# False while add_study copies trials into a new study, True once done.
_COPY_COMPLETE_KEY = "autometa:copy_complete"
_FORMAT = "autometa.KnowledgeBase"
_VERSION = 1
_JOURNAL_SUFFIXES = (".log", ".jsonl")
# Running and waiting trials have no outcome yet: a snapshot keeps the others.
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
_PICKLE_PROTOCOL_2_PLUS = b"\x80"


#: Distributions read so far, by the repr of their JSON data: a knowledge base's thousands of trials
#: share a handful of distributions, each parsed once.
_DISTRIBUTIONS: dict[str, BaseDistribution] = {}


def _distribution(data: Mapping[str, Any]) -> BaseDistribution:
    """The distribution of JSON data ``data`` (as Optuna's ``distribution_to_json`` wrote it), parsed once."""
    key = repr(data)
    distribution = _DISTRIBUTIONS.get(key)
    if distribution is None:
        if len(_DISTRIBUTIONS) >= 4096:
            _DISTRIBUTIONS.clear()
        distribution = _DISTRIBUTIONS[key] = json_to_distribution(json.dumps(data))
    return distribution


@dataclass(frozen=True, eq=False)
class TrialRecord:
    """One finished trial of a :class:`Task`, as plain data.

    Attributes
    ----------
    number : int
        The trial's number in its study.
    state : str
        ``"COMPLETE"``, ``"PRUNED"`` or ``"FAIL"`` (a :class:`optuna.trial.TrialState` name).
    params : dict of str to Any
        Parameter values, as the objective saw them.
    distributions : dict of str to optuna.distributions.BaseDistribution
        The distribution each parameter was drawn from.
    values : tuple of float or None
        The objective value(s); None unless the trial completed (or a pruned
        trial reported one).
    """

    number: int
    state: str
    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    values: tuple[float, ...] | None = None

    @property
    def value(self) -> float | None:
        """The single objective value (None when there is none)."""
        if self.values is None:
            return None
        if len(self.values) != 1:
            raise ValueError(f"trial {self.number} has {len(self.values)} objective values; use values")
        return self.values[0]

    def to_frozen_trial(self) -> optuna.trial.FrozenTrial:
        """The trial as an Optuna ``FrozenTrial``, e.g. for ``CmaEsSampler(source_trials=...)``."""
        return optuna.trial.create_trial(
            state=TrialState[self.state],
            values=self.values,
            params=self.params,
            distributions=self.distributions,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; non-finite floats become strings."""
        return {
            "number": self.number,
            "state": self.state,
            "params": self.params,
            "distributions": {name: json.loads(distribution_to_json(d)) for name, d in self.distributions.items()},
            "values": None if self.values is None else [_encode_float(v) for v in self.values],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialRecord:
        """Inverse of :meth:`to_dict`."""
        values = data["values"]
        return cls(
            number=int(data["number"]),
            state=TrialState[data["state"]].name,
            params=dict(data["params"]),
            distributions={name: _distribution(d) for name, d in data["distributions"].items()},
            values=None if values is None else tuple(_decode_float(v) for v in values),
        )

    @classmethod
    def from_frozen_trial(cls, trial: optuna.trial.FrozenTrial) -> TrialRecord:
        """The plain data of an Optuna trial."""
        return cls(
            number=trial.number,
            state=trial.state.name,
            params=dict(trial.params),
            distributions=dict(trial.distributions),
            values=None if trial.values is None else tuple(float(v) for v in trial.values),
        )

    def __eq__(self, other):
        # Compare the serialised form: NaN values compare equal to themselves there.
        return isinstance(other, TrialRecord) and self.to_dict() == other.to_dict()

    __hash__ = None


@dataclass(frozen=True, eq=False)
class Task:
    """One earlier study: its finished trials and an optional descriptor.

    Attributes
    ----------
    name : str
        The study name.
    directions : tuple of str
        ``"minimize"`` or ``"maximize"``, one per objective.
    trials : tuple of TrialRecord
        The finished trials (complete, pruned and failed), by number.
    descriptor : dict of str to float or None
        The data set's meta-features (see :data:`autometa.hpo.METAFEATURES`),
        NaN where undefined; None when the study was never described.
    """

    name: str
    directions: tuple[str, ...]
    trials: tuple[TrialRecord, ...] = field(default=())
    descriptor: dict[str, float] | None = None

    @classmethod
    def from_study(cls, study: optuna.Study, descriptor: Mapping[str, float] | None = None) -> Task:
        """Read a study; ``descriptor`` overrides the one in its user attrs."""
        if descriptor is None:
            descriptor = _read_descriptor(study)
        return cls(
            name=study.study_name,
            directions=tuple(d.name.lower() for d in study.directions),
            trials=tuple(
                TrialRecord.from_frozen_trial(t) for t in study.get_trials(deepcopy=False, states=_FINISHED)
            ),
            descriptor=None if descriptor is None else _check_descriptor(descriptor),
        )

    @property
    def direction(self) -> str:
        """The direction of a single-objective task."""
        if len(self.directions) != 1:
            raise ValueError(f"task {self.name!r} has {len(self.directions)} objectives; use directions")
        return self.directions[0]

    def completed_trials(self) -> list[TrialRecord]:
        """The trials that completed with objective value(s)."""
        return [t for t in self.trials if t.state == "COMPLETE"]

    @property
    def best_value(self) -> float:
        """The best objective value of a single-objective task."""
        values = [t.value for t in self.completed_trials()]
        if not values:
            raise ValueError(f"task {self.name!r} has no completed trial")
        return min(values) if self.direction == "minimize" else max(values)

    def search_space(self) -> dict[str, BaseDistribution]:
        """Each parameter's distribution; raises if trials disagree on one."""
        return _union_of_spaces([(self.name, t.distributions) for t in self.trials], on_conflict="raise")

    def trials_dataframe(self, completed_only: bool = True) -> pd.DataFrame:
        """One row per trial: ``number``, ``state``, the params, then the value(s).

        The value column is ``value`` for one objective and ``value_0``,
        ``value_1``, ... for several; parameters a trial did not use are NaN.
        """
        trials = self.completed_trials() if completed_only else list(self.trials)
        value_names = ["value"] if len(self.directions) == 1 else [f"value_{i}" for i in range(len(self.directions))]
        rows = []
        for trial in trials:
            values = trial.values if trial.values is not None else (np.nan,) * len(value_names)
            row = {"number": trial.number, "state": trial.state, **trial.params}
            rows.append(row | dict(zip(value_names, values)))
        params = list(dict.fromkeys(name for t in trials for name in t.params))
        return pd.DataFrame(rows, columns=["number", "state", *params, *value_names])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; non-finite floats become strings."""
        return {
            "name": self.name,
            "directions": list(self.directions),
            "descriptor": None if self.descriptor is None else _encode_descriptor(self.descriptor),
            "trials": [t.to_dict() for t in self.trials],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        """Inverse of :meth:`to_dict`."""
        descriptor = data["descriptor"]
        return cls(
            name=str(data["name"]),
            directions=tuple(_check_direction(d) for d in data["directions"]),
            trials=tuple(TrialRecord.from_dict(t) for t in data["trials"]),
            descriptor=None if descriptor is None else _decode_descriptor(descriptor),
        )

    def __eq__(self, other):
        return isinstance(other, Task) and self.to_dict() == other.to_dict()

    __hash__ = None


class KnowledgeBase:
    """Earlier Optuna studies, each a :class:`Task`, for transfer across tuning runs.

    Build one with :meth:`from_storage` (any Optuna storage: the way to share
    it between workers), :meth:`from_studies` (in-memory studies) or
    :meth:`load` (a file written by :meth:`save`).

    Parameters
    ----------
    tasks : iterable of Task, default=()
        The tasks; their names must be unique.
    storage : optuna.storages.BaseStorage or None, default=None
        Where :meth:`add_study` copies new studies; None keeps them in memory.

    Examples
    --------
    >>> import optuna
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    >>> study.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=5)
    >>> kb = KnowledgeBase.from_studies([study])
    >>> len(kb), len(kb[0].completed_trials())
    (1, 5)
    >>> list(kb.search_space())
    ['x']
    """

    def __init__(self, tasks: Iterable[Task] = (), storage: BaseStorage | None = None):
        self.storage = storage
        self._tasks: dict[str, Task] = {}
        for task in tasks:
            self._append(task)

    @classmethod
    def from_storage(cls, storage: str | os.PathLike | BaseStorage, study_names: Iterable[str] | None = None):
        """Read studies from an Optuna storage; :meth:`add_study` then writes there.

        Parameters
        ----------
        storage : str, path-like or optuna.storages.BaseStorage
            An RDB URL (``"sqlite:///kb.db"``, ``"postgresql://user@host/db"``,
            ``"mysql+pymysql://..."``), the path of a journal file ending in
            ``.log`` or ``.jsonl`` (opened as ``JournalStorage(JournalFileBackend(path))``;
            pass a ``JournalStorage`` yourself for another lock), or a storage
            object. Like Optuna, a missing SQLite or journal file is created.
        study_names : iterable of str or None, default=None
            The studies to read; None reads all but copies still in progress.

        Returns
        -------
        KnowledgeBase

        Examples
        --------
        >>> import optuna, tempfile, os
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> url = f"sqlite:///{tempfile.mkdtemp()}/kb.db"
        >>> study = optuna.create_study(storage=url, study_name="svm-on-iris")
        >>> study.optimize(lambda trial: trial.suggest_float("C", 1e-3, 1e3, log=True), n_trials=3)
        >>> KnowledgeBase.from_storage(url).names
        ['svm-on-iris']
        """
        storage = _open_storage(storage)
        if study_names is None:
            studies = [s for s in storage.get_all_studies() if s.user_attrs.get(_COPY_COMPLETE_KEY) is not False]
            study_names = [s.study_name for s in studies]
        tasks = [Task.from_study(_load_study(name, storage)) for name in study_names]
        return cls(tasks, storage=storage)

    @classmethod
    def from_studies(cls, studies: Iterable[optuna.Study]) -> KnowledgeBase:
        """An in-memory knowledge base of these studies (descriptors from their user attrs)."""
        kb = cls()
        for study in studies:
            kb.add_study(study)
        return kb

    @staticmethod
    def describe_study(study: optuna.Study, X, y, **kwargs) -> dict[str, float]:
        """Compute the data set's meta-features and store them in the study's user attrs.

        Only the user attr :data:`DESCRIPTOR_KEY` is written; trials are not
        touched. ``kwargs`` go to :func:`autometa.hpo.compute_metafeatures`.

        Returns
        -------
        dict of str to float
            The descriptor, as :func:`~autometa.hpo.compute_metafeatures` returns it.

        Examples
        --------
        >>> import optuna
        >>> from sklearn.datasets import load_iris
        >>> study = optuna.create_study()
        >>> descriptor = KnowledgeBase.describe_study(study, *load_iris(return_X_y=True))
        >>> descriptor["n_classes"], KnowledgeBase.from_studies([study])[0].descriptor["n_classes"]
        (3.0, 3.0)
        """
        descriptor = compute_metafeatures(X, y, **kwargs)
        study.set_user_attr(DESCRIPTOR_KEY, _encode_descriptor(descriptor))
        return descriptor

    def add_study(self, study: optuna.Study, descriptor: Mapping[str, float] | None = None) -> Task:
        """Add a study's finished trials as a new task.

        With a :attr:`storage`, the trials are copied into a new study there,
        named ``"<study name>-<random hex>"``, with the source study's user
        attrs and the descriptor; the source study is not changed. Without
        one, the task is kept in memory under the study's name.

        Parameters
        ----------
        study : optuna.Study
            The study; running and waiting trials are left out.
        descriptor : mapping of str to float or None, default=None
            The data set's meta-features; None reads them from the study's
            user attrs (see :meth:`describe_study`), if there.

        Returns
        -------
        Task
            The task as added.
        """
        if descriptor is not None:
            descriptor = _check_descriptor(descriptor)
        if self.storage is not None:
            study = _copy_into(study, self.storage, descriptor)
        task = Task.from_study(study, descriptor)
        self._append(task)
        return task

    @classmethod
    def load(cls, path: str | os.PathLike) -> KnowledgeBase:
        """Read a file written by :meth:`save` (JSON only: no pickle is ever read).

        Raises
        ------
        ValueError
            If the file is not a knowledge base, is corrupt or truncated, or
            was written by a newer autometa.
        """
        return cls._from_data(_read_json(Path(path)), os.fspath(path))

    @classmethod
    def _from_data(cls, data: dict[str, Any], where: str) -> KnowledgeBase:
        """The knowledge base of parsed file data (:func:`_parse_json`); ``where`` names the file in errors."""
        try:
            return cls(Task.from_dict(task) for task in data["tasks"])
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{where} is a corrupt knowledge-base file ({type(error).__name__}: {error})") from error

    def save(self, path: str | os.PathLike) -> None:
        """Write the tasks as versioned JSON, atomically (readers see the old or the new file)."""
        path = Path(path)
        text = json.dumps(
            {"format": _FORMAT, "version": _VERSION, "tasks": [task.to_dict() for task in self]}, allow_nan=False
        )
        # A temp file in the same directory, so os.replace is an atomic rename.
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        except BaseException:
            os.unlink(temp)
            raise

    @property
    def names(self) -> list[str]:
        """The task names, in insertion order."""
        return list(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks.values())

    def __getitem__(self, key: int | str) -> Task:
        """A task by position or by name."""
        if isinstance(key, str):
            return self._tasks[key]
        return list(self._tasks.values())[key]

    def __repr__(self) -> str:
        return f"KnowledgeBase(n_tasks={len(self)}, storage={self.storage!r})"

    def descriptor_matrix(self) -> np.ndarray:
        """The descriptors, shape ``(n_tasks, len(METAFEATURES))``; rows of NaN for tasks without one."""
        rows = [metafeature_vector(task.descriptor or {}) for task in self]
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(METAFEATURES))

    def search_space(self, on_conflict: str = "raise") -> dict[str, BaseDistribution]:
        """The union of every task's parameters and their distributions.

        Parameters
        ----------
        on_conflict : {"raise", "skip"}, default="raise"
            What to do with a parameter whose distribution differs between
            trials or tasks: raise a ``ValueError`` that names the tasks, or
            leave it out (a sampler then hands it to its fallback).
        """
        if on_conflict not in ("raise", "skip"):
            raise ValueError(f"on_conflict must be 'raise' or 'skip', got {on_conflict!r}")
        spaces = [(task.name, trial.distributions) for task in self for trial in task.trials]
        return _union_of_spaces(spaces, on_conflict)

    def _append(self, task: Task) -> None:
        if task.name in self._tasks:
            raise ValueError(f"the knowledge base already has a task named {task.name!r}")
        self._tasks[task.name] = task


def _union_of_spaces(spaces: list[tuple[str, Mapping[str, BaseDistribution]]], on_conflict: str):
    seen: dict[str, dict[BaseDistribution, str]] = {}
    for task_name, distributions in spaces:
        for name, distribution in distributions.items():
            seen.setdefault(name, {}).setdefault(distribution, task_name)
    conflicts = {name: found for name, found in seen.items() if len(found) > 1}
    if conflicts and on_conflict == "raise":
        lines = [
            f"  {name}: " + "; ".join(f"{d} (task {task!r})" for d, task in found.items())
            for name, found in conflicts.items()
        ]
        raise ValueError(
            "parameters with different distributions across trials or tasks:\n"
            + "\n".join(lines)
            + "\npass on_conflict='skip' to leave them out"
        )
    return {name: next(iter(found)) for name, found in seen.items() if name not in conflicts}


def _open_storage(storage: str | os.PathLike | BaseStorage) -> BaseStorage:
    if isinstance(storage, BaseStorage):
        return storage
    text = os.fspath(storage)
    if "://" in text:
        return optuna.storages.get_storage(text)
    if text.endswith(_JOURNAL_SUFFIXES):
        return JournalStorage(JournalFileBackend(text))
    raise ValueError(
        f"{text!r} is neither a storage URL (e.g. 'sqlite:///kb.db') nor a journal file ending in "
        f"{' or '.join(_JOURNAL_SUFFIXES)}; pass one of those or an optuna storage object"
    )


def _load_study(name: str, storage: BaseStorage) -> optuna.Study:
    try:
        # RandomSampler: reading needs no sampler, and it is the cheapest to build.
        return optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())
    except KeyError as error:
        known = optuna.get_all_study_names(storage)
        raise KeyError(f"no study named {name!r} in the storage; known: {known}") from error


def _copy_into(study: optuna.Study, storage: BaseStorage, descriptor: Mapping[str, float] | None) -> optuna.Study:
    # A fresh random suffix: create_study refuses an existing name, so an
    # existing study is never written to even if two workers add the same one.
    copy = optuna.create_study(
        storage=storage,
        study_name=f"{study.study_name}-{uuid.uuid4().hex[:12]}",
        directions=study.directions,
        sampler=optuna.samplers.RandomSampler(),
    )
    copy.set_user_attr(_COPY_COMPLETE_KEY, False)
    for key, value in study.user_attrs.items():
        if key != _COPY_COMPLETE_KEY:
            copy.set_user_attr(key, value)
    if descriptor is not None:
        copy.set_user_attr(DESCRIPTOR_KEY, _encode_descriptor(descriptor))
    copy.add_trials(study.get_trials(deepcopy=False, states=_FINISHED))
    copy.set_user_attr(_COPY_COMPLETE_KEY, True)
    return copy


def _read_descriptor(study: optuna.Study) -> dict[str, float] | None:
    encoded = study.user_attrs.get(DESCRIPTOR_KEY)
    if encoded is None:
        return None
    try:
        return _decode_descriptor(encoded)
    except (TypeError, ValueError, AttributeError) as error:
        raise ValueError(
            f"study {study.study_name!r} has a malformed user attr {DESCRIPTOR_KEY!r} ({error}); "
            "rewrite it with KnowledgeBase.describe_study or pass descriptor= explicitly"
        ) from error


def _check_descriptor(descriptor: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(descriptor, Mapping):
        raise TypeError(f"a descriptor is a mapping of meta-feature name to float, got {type(descriptor).__name__}")
    return {str(name): float(value) for name, value in descriptor.items()}


def _encode_descriptor(descriptor: Mapping[str, float]) -> dict[str, float | str]:
    return {name: _encode_float(float(value)) for name, value in descriptor.items()}


def _decode_descriptor(encoded: Mapping[str, float | str]) -> dict[str, float]:
    return {str(name): _decode_float(value) for name, value in encoded.items()}


def _encode_float(value: float) -> float | str:
    # JSON has no NaN or infinity; Optuna storages and our file stay strict JSON.
    return value if math.isfinite(value) else str(value)


def _decode_float(value: float | str) -> float:
    if isinstance(value, str) and value not in ("nan", "inf", "-inf"):
        raise ValueError(f"expected a number or 'nan'/'inf'/'-inf', got {value!r}")
    if isinstance(value, bool):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _check_direction(direction: str) -> str:
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    return direction


def _read_json(path: Path) -> dict[str, Any]:
    return _parse_json(path.read_bytes(), str(path))


def _parse_json(raw: bytes, path: str) -> dict[str, Any]:
    """A knowledge-base file's bytes as data, after the format checks; ``path`` names the file in errors."""
    if raw.startswith(_PICKLE_PROTOCOL_2_PLUS):
        raise ValueError(f"{path} looks like a pickle; knowledge bases are JSON and pickles are never loaded")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path} is not a knowledge-base file, or is corrupt or truncated (not valid JSON: {error}); "
            "write one with KnowledgeBase.save"
        ) from error
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError(
            f"{path} is not a knowledge-base file (no \"format\": {_FORMAT!r}); write one with KnowledgeBase.save"
        )
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{path} is a corrupt knowledge-base file (bad version {version!r})")
    if version > _VERSION:
        raise ValueError(
            f"{path} has format version {version}, newer than this autometa reads ({_VERSION}); upgrade autometa"
        )
    return data
