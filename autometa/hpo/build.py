"""Build a knowledge base: one Optuna study per PMLB data set, resumable and parallel.

:func:`build_knowledge_base` (the ``autometa kb build`` command) tunes a
search space of :mod:`autometa.hpo.spaces` on each data set of a PMLB cache
folder with Optuna's ``TPESampler`` and the standard objective
(:func:`autometa.hpo.spaces.make_objective`), one study per data set, all in
one Optuna storage; :func:`export_knowledge_base` (``autometa kb export``)
writes them to a :class:`~autometa.hpo.knowledge_base.KnowledgeBase` file.

Studies
-------
The study of data set ``D`` is named ``"<space>:<D>"`` and maximises the
objective. Its user attrs record the space and its version
(``"autometa:space"``, ``"autometa:space_version"``), the data set, the
metric, ``cv``, ``max_rows`` and the rows used, and the data set's descriptor
(:data:`~autometa.hpo.knowledge_base.DESCRIPTOR_KEY`, computed by
:func:`autometa.hpo.compute_metafeatures` on the rows the study tuned on).
The TPE sampler of data set ``D`` is seeded with ``seed + crc32(D)``.

Subsampling
-----------
A data set with more than ``max_rows`` rows is subsampled once, with a
generator seeded by ``seed``. Classification keeps each class's share
(stratified: every class gets ``floor(share * max_rows)`` rows, at least
``min(its size, cv)`` so that every fold can see it, and the rows left go to
the classes with the largest remainders), so the sample may exceed
``max_rows`` by a few rows of rare classes. Regression draws uniformly.

Resuming
--------
The storage is the only state. A rerun of the same command opens each study
with ``load_if_exists``, counts its *finished* trials (COMPLETE, FAIL or
PRUNED) and runs only the ones missing to reach ``n_trials``: a killed build
loses no finished study and repeats no finished trial. Trials left RUNNING by
a dead process are marked FAIL with the trial user attr
``"autometa:abandoned"`` and do not count, so they are run again. That step
assumes no other live process is running trials of the same studies: run one
build per storage and space at a time (different spaces may share a
storage). A study built with another version of the space is refused.

Storages
--------
``storage`` is an RDB URL (``"sqlite:///kb.db"``, ``"postgresql://..."``;
SQLite is opened with a 60 s busy timeout so that parallel workers wait for
each other's writes), ``"journal:///abs/path/kb.log"`` or a path ending in
``.log`` or ``.jsonl`` (an Optuna ``JournalStorage`` on that file: the
choice for network file systems and many workers). Each worker opens the
storage from the URL itself, so any joblib backend runs the build, e.g.
``with joblib.parallel_config(backend="dask"): build_knowledge_base(...)``.
"""

from __future__ import annotations

import difflib
import gzip
import json
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from joblib import Parallel, delayed
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from autometa.hpo.knowledge_base import DESCRIPTOR_KEY, KnowledgeBase
from autometa.hpo.spaces import ERROR_KEY, get_space, make_objective

__all__ = [
    "ABANDONED_KEY",
    "build_knowledge_base",
    "build_study",
    "export_knowledge_base",
    "open_storage",
    "select_datasets",
    "study_name",
    "subsample",
]

SPACE_KEY = "autometa:space"
SPACE_VERSION_KEY = "autometa:space_version"
DATASET_KEY = "autometa:dataset"
#: Trial user attr of a trial left RUNNING by a dead process and marked FAIL on resume.
ABANDONED_KEY = "autometa:abandoned"
#: Top-level key of an exported knowledge-base file holding how it was built.
BUILD_INFO_KEY = "autometa:build"
_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
_JOURNAL_PREFIX = "journal://"
_JOURNAL_SUFFIXES = (".log", ".jsonl")
_SQLITE_TIMEOUT_S = 60


def study_name(space: str, dataset: str) -> str:
    """The name of the study of ``space`` on ``dataset``: ``"<space>:<dataset>"``."""
    return f"{space}:{dataset}"


def open_storage(storage: str | os.PathLike | BaseStorage) -> BaseStorage:
    """Open an Optuna storage from a URL or journal path (see the module docstring).

    Raises
    ------
    ValueError
        If ``storage`` is neither a URL nor a journal file path.
    FileNotFoundError
        If the folder of a SQLite or journal file does not exist.
    """
    if isinstance(storage, BaseStorage):
        return storage
    text = os.fspath(storage)
    if text.startswith(_JOURNAL_PREFIX) or ("://" not in text and text.endswith(_JOURNAL_SUFFIXES)):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(text[len(_JOURNAL_PREFIX):] if text.startswith(_JOURNAL_PREFIX) else text)
        _check_parent(path, text)
        return JournalStorage(JournalFileBackend(str(path)))
    if text.startswith("sqlite:///"):
        path = text[len("sqlite:///"):]
        if path and path != ":memory:":
            _check_parent(Path(path), text)
        return optuna.storages.RDBStorage(text, engine_kwargs={"connect_args": {"timeout": _SQLITE_TIMEOUT_S}})
    if "://" in text:
        return optuna.storages.get_storage(text)
    raise ValueError(
        f"storage {text!r} is neither a URL (e.g. 'sqlite:///kb.db') nor a journal file "
        f"('journal:///path/kb.log' or a path ending in {' or '.join(_JOURNAL_SUFFIXES)})"
    )


def _check_parent(path: Path, text: str) -> None:
    if not path.parent.is_dir():
        raise FileNotFoundError(f"storage {text!r}: folder {path.parent} does not exist; create it first")


def subsample(X: pd.DataFrame, y: pd.Series, max_rows: int | None, seed: int = 0,
              classification: bool = True, min_per_class: int = 3) -> tuple[pd.DataFrame, pd.Series]:
    """At most about ``max_rows`` rows of ``(X, y)``, stratified for classification.

    See the module docstring for the rule. Rows keep their original order;
    None or a ``max_rows`` of at least ``len(X)`` returns the data unchanged.
    """
    n_rows = len(X)
    if max_rows is None or n_rows <= max_rows:
        return X, y
    rng = np.random.default_rng(seed)
    if not classification:
        keep = np.sort(rng.choice(n_rows, size=max_rows, replace=False))
        return X.iloc[keep], y.iloc[keep]
    labels, codes = np.unique(np.asarray(y), return_inverse=True)
    counts = np.bincount(codes, minlength=len(labels))
    exact = counts * max_rows / n_rows
    quota = np.maximum(np.floor(exact).astype(int), np.minimum(counts, min_per_class))
    short = max_rows - quota.sum()
    if short > 0:
        room = counts - quota
        order = np.argsort(-(exact - np.floor(exact)), kind="stable")
        for c in order[room[order] > 0][:short]:
            quota[c] += 1
    keep = np.concatenate([rng.permutation(np.flatnonzero(codes == c))[: quota[c]] for c in range(len(labels))])
    keep.sort()
    return X.iloc[keep], y.iloc[keep]


def select_datasets(space: str, data_dir: str | os.PathLike, names: Sequence[str] | None = None) -> list[str]:
    """The data sets to build on: ``names`` (checked), or every data set of the space's task in the index.

    Raises
    ------
    FileNotFoundError
        If ``data_dir`` has no ``index.csv``.
    ValueError
        For a name missing from the index (with close matches) or of the other task.
    """
    from autometa.data.pmlb import pmlb_index

    spec = get_space(space)
    index = pmlb_index(data_dir)
    tasks = dict(zip(index["name"], index["task"]))
    if names is None:
        return sorted(name for name, task in tasks.items() if task == spec.task)
    for name in names:
        if name not in tasks:
            close = difflib.get_close_matches(name, list(tasks), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"data set {name!r} is not in {Path(data_dir) / 'index.csv'}{hint}")
        if tasks[name] != spec.task:
            raise ValueError(
                f"data set {name!r} is a {tasks[name]} task but search space {spec.name!r} is for {spec.task}; "
                "drop it from --datasets or pick another --estimator"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"--datasets names a data set twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
    return list(names)


def load_dataset(dataset: str, data_dir, space: str, max_rows: int | None, seed: int, cv: int):
    """``(X, y, n_rows_full)``: a PMLB data set from ``data_dir``, subsampled as the build does."""
    from autometa.data.pmlb import load_pmlb

    spec = get_space(space)
    X, y = load_pmlb(dataset, data_dir, download=False)
    n_rows = len(X)
    X, y = subsample(X, y, max_rows, seed, spec.task == "classification", min_per_class=cv)
    return X, y, n_rows


def build_study(
    space: str,
    dataset: str,
    data_dir: str | os.PathLike,
    storage: str | os.PathLike | BaseStorage,
    n_trials: int,
    seed: int = 0,
    max_rows: int | None = 2000,
    cv: int = 3,
    time_limit: float | None = None,
) -> dict[str, Any]:
    """Run (or finish) the study of ``space`` on one data set; see the module docstring.

    Returns
    -------
    dict
        ``dataset``, ``study_name``, ``trials_run`` (this call), ``finished``,
        ``failed``, ``abandoned`` (marked FAIL this call), ``best_value``
        (None without a completed trial) and ``seconds``.
    """
    verbosity = optuna.logging.get_verbosity()
    # failed trials are counted in the summary; Optuna's warning per NaN value would drown the progress bar
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        return _build_study(space, dataset, data_dir, storage, n_trials, seed, max_rows, cv, time_limit)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _build_study(space, dataset, data_dir, storage, n_trials, seed, max_rows, cv, time_limit) -> dict[str, Any]:
    start = time.perf_counter()
    spec = get_space(space)
    storage = open_storage(storage)
    X, y, n_rows = load_dataset(dataset, data_dir, spec.name, max_rows, seed, cv)
    name = study_name(spec.name, dataset)
    sampler = optuna.samplers.TPESampler(seed=(seed + zlib.crc32(dataset.encode())) % 2**32)
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", sampler=sampler,
                                load_if_exists=True)
    objective = make_objective(spec, X, y, cv=cv, time_limit=time_limit, random_state=seed)
    attrs = study.user_attrs
    if SPACE_VERSION_KEY in attrs:
        if (attrs.get(SPACE_KEY), attrs[SPACE_VERSION_KEY]) != (spec.name, spec.version):
            raise ValueError(
                f"study {name!r} was built with search space {attrs.get(SPACE_KEY)!r} version "
                f"{attrs[SPACE_VERSION_KEY]!r}, not {spec.name!r} version {spec.version!r}; "
                "use a new storage (or delete the study) to build with this version"
            )
    else:
        info = {SPACE_KEY: spec.name, SPACE_VERSION_KEY: spec.version, DATASET_KEY: dataset,
                "autometa:metric": objective.metric, "autometa:cv": cv, "autometa:max_rows": max_rows,
                "autometa:n_rows": len(X), "autometa:n_rows_full": n_rows, "autometa:seed": seed}
        for key, value in info.items():
            study.set_user_attr(key, value)
    if DESCRIPTOR_KEY not in attrs:
        KnowledgeBase.describe_study(study, X, y, task=spec.task)
    abandoned = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_user_attr(trial._trial_id, ABANDONED_KEY, True)
        storage.set_trial_user_attr(trial._trial_id, ERROR_KEY, "abandoned: its process died")
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        abandoned += 1
    remaining = n_trials - len(_counted(study))
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, gc_after_trial=False)
    counted = _counted(study)
    completed = [t.value for t in counted if t.state == TrialState.COMPLETE]
    return {
        "dataset": dataset,
        "study_name": name,
        "trials_run": max(remaining, 0),
        "finished": len(counted),
        "failed": sum(t.state == TrialState.FAIL for t in counted),
        "abandoned": abandoned,
        "best_value": max(completed) if completed else None,
        "seconds": round(time.perf_counter() - start, 2),
    }


def _counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=_FINISHED) if not t.user_attrs.get(ABANDONED_KEY)]


def _n_counted(storage: BaseStorage, study_id: int) -> int:
    trials = storage.get_all_trials(study_id, deepcopy=False, states=_FINISHED)
    return sum(not t.user_attrs.get(ABANDONED_KEY) for t in trials)


def _build_study_safely(*args, **kwargs) -> dict[str, Any]:
    try:
        return build_study(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - one bad data set must not stop the others
        return {"dataset": args[1], "error": f"{type(error).__name__}: {error}"}


def build_knowledge_base(
    space: str,
    data_dir: str | os.PathLike,
    storage: str | os.PathLike,
    n_trials: int = 30,
    datasets: Sequence[str] | None = None,
    n_jobs: int = 1,
    seed: int = 0,
    max_rows: int | None = 2000,
    cv: int = 3,
    time_limit: float | None = None,
    quiet: bool = False,
) -> list[dict[str, Any]]:
    """Tune ``space`` on each data set into ``storage``: the ``autometa kb build`` command.

    Parameters
    ----------
    space : str
        A name of :data:`autometa.hpo.spaces.SEARCH_SPACES`.
    data_dir : str or path-like
        A PMLB cache folder (``<dir>/index.csv``, ``<dir>/<name>/<name>.tsv.gz``).
    storage : str or path-like
        An Optuna storage URL or journal path (module docstring); not an
        object, since every worker opens it itself.
    n_trials : int, default=30
        Finished trials per study, counting failed ones.
    datasets : sequence of str or None, default=None
        The data sets, run in this order; None: every data set of the space's
        task in the index, by name.
    n_jobs : int, default=1
        Data sets run in parallel by ``joblib.Parallel(n_jobs)`` with the
        active backend (each fit uses one thread).
    seed : int, default=0
        Seeds subsampling, folds, estimators and the samplers.
    max_rows : int or None, default=2000
        Larger data sets are subsampled (module docstring); None keeps all rows.
    cv : int, default=3
        Cross-validation folds.
    time_limit : float or None, default=None
        Seconds per trial (:func:`~autometa.hpo.spaces.make_objective`).
    quiet : bool, default=False
        No progress bar (there is none when stderr is not a terminal either).

    Returns
    -------
    list of dict
        One :func:`build_study` summary per data set, in the order finished.

    Raises
    ------
    ValueError
        On bad arguments, or (after the other data sets are done) when some
        data sets failed, naming them; rerunning retries only what is missing.
    """
    spec = get_space(space)
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"--trials must be a positive integer, got {n_trials!r}")
    if max_rows is not None and max_rows < 2 * cv:
        raise ValueError(f"--max-rows must be at least 2 * cv = {2 * cv}, got {max_rows}")
    if not isinstance(storage, (str, os.PathLike)):
        raise TypeError("storage must be a URL or path: each worker opens it itself")
    storage = os.fspath(storage)
    names = select_datasets(spec.name, data_dir, datasets)
    open_storage(storage)  # creates the schema (or file) once, before workers race to do it
    jobs = (
        delayed(_build_study_safely)(spec.name, name, os.fspath(data_dir), storage, n_trials, seed, max_rows, cv,
                                     time_limit)
        for name in names
    )
    results: list[dict[str, Any]] = []
    show = not quiet and sys.stderr.isatty()
    from tqdm.auto import tqdm

    with tqdm(total=len(names), desc=f"kb build {spec.name}", unit="data set", disable=not show) as bar:
        for result in _parallel(n_jobs)(jobs):
            results.append(result)
            bar.update()
            bar.set_postfix_str(f"{result['dataset']}: " + (
                "error" if "error" in result else f"best {_fmt(result['best_value'])}"
            ))
    errors = [r for r in results if "error" in r]
    if errors:
        lines = "\n".join(f"  {r['dataset']}: {r['error']}" for r in errors)
        raise ValueError(
            f"{len(errors)} of {len(names)} data sets failed (the others are stored):\n{lines}\n"
            "fix the cause and rerun the same command: finished studies and trials are kept"
        )
    return results


def _parallel(n_jobs: int) -> Parallel:
    from joblib.parallel import get_active_backend

    backend, _ = get_active_backend()
    # results as they finish, for the progress bar, where the backend can; else all at the end
    if getattr(backend, "supports_return_generator", False):
        return Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    return Parallel(n_jobs=n_jobs)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def export_knowledge_base(storage: str | os.PathLike | BaseStorage, out: str | os.PathLike,
                          space: str | None = None, min_trials: int = 1) -> KnowledgeBase:
    """Write the built studies of ``storage`` to a knowledge-base file (``autometa kb export``).

    The file is what :meth:`KnowledgeBase.save` writes plus a top-level
    ``"autometa:build"`` entry (space, version, metric, cv, max_rows, the
    data sets); ``KnowledgeBase.load`` reads it. A name ending in ``.gz`` is
    gzip-compressed (read it with :func:`read_knowledge_base`).

    Parameters
    ----------
    storage : str, path-like or BaseStorage
    out : str or path-like
    space : str or None, default=None
        Export the studies of this search space; None: of the only space in
        the storage.
    min_trials : int, default=1
        Leave out studies with fewer finished trials (abandoned ones not
        counted), e.g. those of a build stopped before it reached them.

    Raises
    ------
    ValueError
        If the storage holds no built study (of ``space``), several spaces
        and no ``space`` was given, or studies of different space versions.
    """
    storage = open_storage(storage)
    built = [s for s in storage.get_all_studies() if SPACE_KEY in s.user_attrs]
    spaces = sorted({s.user_attrs[SPACE_KEY] for s in built})
    if space is None:
        if len(spaces) != 1:
            raise ValueError(f"the storage holds studies of {spaces or 'no'} search spaces; pass --estimator")
        space = spaces[0]
    chosen = sorted((s for s in built if s.user_attrs[SPACE_KEY] == space), key=lambda s: s.study_name)
    if not chosen:
        raise ValueError(f"the storage holds no study of search space {space!r}; it has {spaces}")
    chosen = [s for s in chosen if _n_counted(storage, s._study_id) >= min_trials]
    if not chosen:
        raise ValueError(f"no study of {space!r} has {min_trials} finished trials; lower --min-trials")
    versions = sorted({s.user_attrs[SPACE_VERSION_KEY] for s in chosen})
    if len(versions) != 1:
        raise ValueError(f"studies of {space!r} were built with several space versions {versions}; export one")
    kb = KnowledgeBase.from_storage(storage, study_names=[s.study_name for s in chosen])
    first = chosen[0].user_attrs
    info = {
        "space": space,
        "space_version": versions[0],
        "metric": first.get("autometa:metric"),
        "cv": first.get("autometa:cv"),
        "max_rows": first.get("autometa:max_rows"),
        "seed": first.get("autometa:seed"),
        "datasets": [s.user_attrs.get(DATASET_KEY) for s in chosen],
        "finished_trials": {s.study_name: len(kb[s.study_name].trials) for s in chosen},
    }
    out = Path(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"folder {out.parent} does not exist; create it first")
    with tempfile.TemporaryDirectory() as scratch:
        plain = Path(scratch) / "kb.json"
        kb.save(plain)
        data = json.loads(plain.read_text(encoding="utf-8"))
    data[BUILD_INFO_KEY] = info
    text = json.dumps(data, allow_nan=False, separators=(",", ":")).encode("utf-8")
    payload = gzip.compress(text, mtime=0) if out.name.endswith(".gz") else text
    fd, temp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as file:
        file.write(payload)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)  # mkstemp makes it private; an exported file is ordinary data
    os.replace(temp, out)
    return kb


def read_knowledge_base(source: str | os.PathLike | bytes) -> tuple[KnowledgeBase, dict[str, Any] | None]:
    """Read an exported file (gzip-compressed or not) or its bytes: ``(knowledge base, build info or None)``."""
    from autometa.hpo.knowledge_base import _parse_json  # the format checks of KnowledgeBase.load

    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    where = "<bytes>" if isinstance(source, bytes) else os.fspath(source)
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    data = _parse_json(raw, where)
    return KnowledgeBase._from_data(data, where), data.get(BUILD_INFO_KEY)
