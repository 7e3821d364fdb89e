"""Pretrained knowledge bases for the search spaces of :mod:`autometa.hpo.spaces`.

Each ``<space name>.json.gz`` in this folder is a knowledge base written by
``autometa kb export`` from an ``autometa kb build`` of that space on the
Penn Machine Learning Benchmarks (PMLB), one task per data set, with the
data set's meta-features as its descriptor. The file records how it was
built (``"autometa:build"``: space version, metric, folds, row cap, data
sets); :func:`load_pretrained` refuses a file whose space version differs
from the installed space's, since its trials would describe another space.

The files are plain JSON data (gzip-compressed), read without the network.

Beside each, ``<space name>.surrogate.npz`` holds the
:class:`~autometa.hpo.MetaLearnedSampler`'s surrogate meta-trained on that
knowledge base with the sampler's defaults (``autometa kb surrogate``), so a
sampler of a shipped knowledge base starts without meta-training; the file
is used only when its key (a digest of the encoded tasks, the steps and the
seed) matches, e.g. not for a knowledge base without some of its tasks.
"""

from __future__ import annotations

import copy
import functools
import os
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["load_pretrained", "pretrained_descriptor", "pretrained_info", "pretrained_names", "shipped_surrogate",
           "surrogate_path", "write_surrogate"]

_SUFFIX = ".json.gz"
_SURROGATE_SUFFIX = ".surrogate.npz"


def _files():
    return resources.files(__name__)


def pretrained_names() -> list[str]:
    """The names of the shipped knowledge bases (search-space names), sorted."""
    return sorted(entry.name[: -len(_SUFFIX)] for entry in _files().iterdir() if entry.name.endswith(_SUFFIX))


def _read(name: str):
    """``(knowledge base, build info)`` of ``name``: a new KnowledgeBase over the file's (immutable) tasks."""
    from autometa.hpo.knowledge_base import KnowledgeBase

    names = pretrained_names()
    if name not in names:
        raise ValueError(f"no pretrained knowledge base named {name!r}; available: {', '.join(names) or 'none'}")
    tasks, info = _parse(name)
    return KnowledgeBase(tasks), copy.deepcopy(info)


@functools.cache
def _parse(name: str):
    """The shipped file ``name``, parsed once per process: ``(tasks, build info)``."""
    from autometa.hpo.build import read_knowledge_base

    kb, info = read_knowledge_base(_files().joinpath(name + _SUFFIX).read_bytes())
    return tuple(kb), info


def pretrained_info(name: str) -> dict[str, Any]:
    """How the knowledge base ``name`` was built: space, space version, metric, cv, max_rows, data sets."""
    return dict(_read(name)[1] or {})


def load_pretrained(name: str, check_version: bool = True):
    """The pretrained :class:`~autometa.hpo.knowledge_base.KnowledgeBase` of search space ``name``.

    Parameters
    ----------
    name : str
        A search-space name with a shipped knowledge base (:func:`pretrained_names`).
    check_version : bool, default=True
        Raise if the file was built on another version of the space.

    Returns
    -------
    KnowledgeBase
        One task per PMLB data set, named ``"<name>:<data set>"``, each with a descriptor.

    Raises
    ------
    ValueError
        For an unknown name (listing the available ones), or a space-version mismatch.

    Examples
    --------
    >>> from autometa.hpo.pretrained import load_pretrained, pretrained_names
    >>> "hist_gradient_boosting" in pretrained_names()
    True
    >>> kb = load_pretrained("hist_gradient_boosting")
    >>> all(task.descriptor is not None for task in kb)
    True
    """
    from autometa.hpo.spaces import get_space

    kb, info = _read(name)
    if check_version:
        space = get_space(name)
        built = (info or {}).get("space_version")
        if built != space.version:
            raise ValueError(
                f"the pretrained knowledge base {name!r} was built on version {built!r} of the search space, "
                f"but autometa.hpo.spaces defines version {space.version!r}; rebuild it with `autometa kb build "
                f"--estimator {name} ...` and `autometa kb export`, or pass check_version=False"
            )
    return kb


def pretrained_descriptor(name: str, X, y) -> dict[str, float]:
    """The descriptor of ``(X, y)`` as the pretrained knowledge base ``name`` describes its tasks.

    The build computed each task's meta-features on the rows it tuned on:
    data sets larger than the build's ``max_rows`` were subsampled (stratified
    for classification, :func:`autometa.hpo.build.subsample`). ``(X, y)`` is
    subsampled the same way first, so that size-dependent meta-features
    (``log10_n_rows``, the landmarkers) compare like with like.

    Returns
    -------
    dict of str to float
        :func:`autometa.hpo.compute_metafeatures` of the (subsampled) data.
    """
    import pandas as pd

    from autometa.hpo.build import subsample
    from autometa.hpo.metafeatures import compute_metafeatures
    from autometa.hpo.spaces import get_space

    info = pretrained_info(name)
    task = get_space(name).task
    X = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    y = y if isinstance(y, pd.Series) else pd.Series(y)
    X, y = subsample(X, y, info.get("max_rows"), info.get("seed") or 0, task == "classification",
                     min_per_class=info.get("cv", 3))
    return compute_metafeatures(X, y, task=task)


def surrogate_path(knowledge_base_file: str | os.PathLike) -> Path:
    """Where the surrogate of a knowledge-base file goes: beside it, ``<stem>.surrogate.npz``."""
    path = Path(knowledge_base_file)
    stem = path.name[: -len(_SUFFIX)] if path.name.endswith(_SUFFIX) else path.name.removesuffix(".json")
    return path.with_name(stem + _SURROGATE_SUFFIX)


def write_surrogate(knowledge_base_file: str | os.PathLike, steps: int | None = None) -> Path:
    """Meta-train the sampler's surrogate on a knowledge-base file and write it beside it (``autometa kb surrogate``).

    The surrogate is the one :class:`~autometa.hpo.MetaLearnedSampler` meta-trains with its defaults
    (``META_TRAIN_STEPS`` steps, ``META_TRAIN_SEED``); the file records the key it belongs to.

    Returns
    -------
    pathlib.Path
        The ``.npz`` written (:func:`surrogate_path`).
    """
    from autometa.hpo.build import read_knowledge_base
    from autometa.hpo.encoded_tasks import EncodedTasks
    from autometa.hpo.sampler import META_TRAIN_SEED, META_TRAIN_STEPS, usable_tasks
    from autometa.hpo.surrogate import meta_train_surrogate

    if steps is None:
        steps = META_TRAIN_STEPS
    kb, _ = read_knowledge_base(knowledge_base_file)
    data = EncodedTasks(usable_tasks(kb))
    model = meta_train_surrogate(data.tasks_x, data.tasks_y, steps=steps, seed=META_TRAIN_SEED)
    out = surrogate_path(knowledge_base_file)
    model.save(out, data.surrogate_key(steps, META_TRAIN_SEED))
    return out


@functools.cache
def _shipped() -> dict:
    """The shipped surrogates by key, read once per process (through importlib.resources, so also from a zip)."""
    from autometa.hpo.surrogate import NumpySurrogate

    surrogates = {}
    for entry in _files().iterdir():
        if entry.name.endswith(_SURROGATE_SUFFIX):
            with entry.open("rb") as file:
                key, surrogate = NumpySurrogate.load(file)
            surrogates[key] = surrogate
    return surrogates


def shipped_surrogate(key: str):
    """The shipped surrogate whose key is ``key``, or None.

    ``key``: :meth:`autometa.hpo.encoded_tasks.EncodedTasks.surrogate_key`. The surrogate is shared by every
    caller in the process, as the meta-trained ones of :meth:`~autometa.hpo.encoded_tasks.EncodedTasks.meta_trained`.
    """
    return _shipped().get(key)
