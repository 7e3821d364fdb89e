"""Lake's one-shot classification benchmark: 20 runs of 20-way within-alphabet one-shot.

Lake, Salakhutdinov & Tenenbaum (2015), "Human-level concept learning through
probabilistic program induction", Science 350(6266). A folder of runs holds
``run01 .. run20``, each with

- ``runNN/training/classNN.png``: one image per class, all by one drawer;
- ``runNN/test/itemNN.png``: the queries, by another drawer;
- ``runNN/class_labels.txt``: lines ``runNN/test/itemNN.png runNN/training/classMM.png``
  giving each query's class, paths relative to the folder of runs.

:func:`load_lake_runs` reads such a folder, :func:`score_lake` scores a
classifier on it, and :func:`make_lake_runs` draws new runs in the same
layout from Omniglot's background alphabets.

Examples
--------
>>> from sklearn.neighbors import KNeighborsClassifier
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import FunctionTransformer
>>> flatten = FunctionTransformer(lambda x: x.reshape(len(x), -1))
>>> runs = load_lake_runs("all_runs")  # doctest: +SKIP
>>> print(score_lake(make_pipeline(flatten, KNeighborsClassifier(1)), runs))  # doctest: +SKIP
run01 error: 70.0%
...
mean error: 74.5%
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, clone

from .omniglot import (
    PathLike,
    _as_paths,
    _check_alphabets,
    _check_image_size,
    _ImageFile,
    _read_images,
    _scan_sources,
    decode_image,
)

_RUN_DIR = re.compile(r"run\d+")
_LABELS_FILE = "class_labels.txt"


@dataclass(frozen=True, eq=False)
class LakeRun:
    """One run: a one-shot training set and its queries.

    Attributes
    ----------
    name : str
        The run's folder name, e.g. ``"run01"``.
    train_x : ndarray of shape (n_way, image_size, image_size), float32
        One image per class, ink = 1 (see :func:`~autometa.data.omniglot.decode_image`).
    train_y : ndarray of shape (n_way,), int64
        ``0 .. n_way - 1``, in the order of the training file names.
    test_x : ndarray of shape (n_queries, image_size, image_size), float32
        The queries, in the order of ``class_labels.txt``.
    test_y : ndarray of shape (n_queries,), int64
        Each query's true class.
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


@dataclass(frozen=True)
class LakeResult:
    """Error rates of one model on a set of runs.

    Attributes
    ----------
    per_run_error : dict of str to float
        Fraction of each run's queries misclassified, by run name.
    """

    per_run_error: dict[str, float]

    @property
    def mean_error(self) -> float:
        """The mean of the per-run errors (each run weighs the same)."""
        return float(np.mean(list(self.per_run_error.values())))

    def format(self) -> str:
        """One line per run, then ``mean error: X.X%``."""
        lines = [f"{name} error: {error:.1%}" for name, error in self.per_run_error.items()]
        return "\n".join([*lines, f"mean error: {self.mean_error:.1%}"])

    def __str__(self) -> str:
        return self.format()


def load_lake_runs(path: PathLike, image_size: int = 28) -> list[LakeRun]:
    """Read a folder of one-shot runs in Lake's layout.

    Parameters
    ----------
    path : path
        The folder that holds ``run01``, ``run02``, ...
    image_size : int, default=28
        Images are decoded as Omniglot's are: ink = 1, resized antialiased to
        ``image_size x image_size``.

    Returns
    -------
    list of LakeRun
        Sorted by run name.

    Raises
    ------
    FileNotFoundError
        If ``path``, a run's label file or an image it names is missing.
    ValueError
        If ``path`` holds no runs or a label line is malformed.
    """
    root = Path(path).expanduser()
    image_size = _check_image_size(image_size)
    if not root.is_dir():
        raise FileNotFoundError(f"Lake runs folder {root} not found; expected a folder holding run01, run02, ...")
    run_dirs = sorted(p for p in root.iterdir() if p.is_dir() and _RUN_DIR.fullmatch(p.name))
    if not run_dirs:
        raise ValueError(f"no runs in {root}; expected folders run01, run02, ... each with {_LABELS_FILE}")
    return [_load_run(root, run_dir, image_size) for run_dir in run_dirs]


def _load_run(root: Path, run_dir: Path, image_size: int) -> LakeRun:
    train_files = sorted((run_dir / "training").glob("*.png"))
    if not train_files:
        raise FileNotFoundError(f"no training images in {run_dir / 'training'}; expected classNN.png files")
    train_index = {file: i for i, file in enumerate(train_files)}
    pairs = _read_labels(root, run_dir / _LABELS_FILE, train_index)

    def decode(files: list[Path]) -> np.ndarray:
        return np.stack([decode_image(file.read_bytes(), image_size) for file in files])

    return LakeRun(
        name=run_dir.name,
        train_x=decode(train_files),
        train_y=np.arange(len(train_files), dtype=np.int64),
        test_x=decode([query for query, _ in pairs]),
        test_y=np.array([train_index[answer] for _, answer in pairs], dtype=np.int64),
    )


def _read_labels(root: Path, labels_file: Path, train_index: dict[Path, int]) -> list[tuple[Path, Path]]:
    """``(query, training image)`` pairs of a label file, every path checked."""
    if not labels_file.is_file():
        raise FileNotFoundError(f"label file {labels_file} not found")
    pairs = []
    for number, line in enumerate(labels_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{labels_file}, line {number}"
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{where}: expected '<test image> <training image>', got {line!r}")
        query, answer = (root / field for field in fields)
        if not query.is_file():
            raise FileNotFoundError(f"{where}: query image {query} not found")
        if answer not in train_index:
            raise ValueError(f"{where}: {fields[1]} is not one of the images in {labels_file.parent / 'training'}")
        pairs.append((query, answer))
    if not pairs:
        raise ValueError(f"{labels_file} has no label lines")
    return pairs


def pixel_distances(train_x: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between flattened images, ``(n_test, n_train)``:
    the pixel nearest-neighbour baseline, as a distance for :func:`score_lake`."""
    train, test = train_x.reshape(len(train_x), -1), test_x.reshape(len(test_x), -1)
    return ((test[:, None, :] - train[None, :, :]) ** 2).sum(axis=-1)


def score_lake(model, runs: Sequence[LakeRun]) -> LakeResult:
    """Error of ``model`` on each run: one-shot, within-alphabet classification.

    Parameters
    ----------
    model : estimator or callable
        Either an object with ``fit(X_train, y_train)`` and ``predict(X_test)``,
        fitted anew on each run's training set (a scikit-learn estimator is
        ``clone``-d first; any other object is refitted in place), or a
        callable ``distance(train_x, test_x)`` returning an ``(n_test,
        n_train)`` array, lower = more similar, each query taking the label
        of its nearest training image. ``X`` are float32 arrays of shape
        ``(n, image_size, image_size)`` with ink = 1: flatten them yourself
        (e.g. a ``FunctionTransformer`` in a ``Pipeline``) if the model wants 2-D.
    runs : list of LakeRun
        From :func:`load_lake_runs`.

    Returns
    -------
    LakeResult
    """
    if not runs:
        raise ValueError("no runs to score")
    predict = _as_predictor(model)
    errors = {run.name: float(np.mean(predict(run) != run.test_y)) for run in runs}
    return LakeResult(errors)


def _as_predictor(model) -> Callable[[LakeRun], np.ndarray]:
    """A function from a run to the predicted labels of its queries."""
    if hasattr(model, "fit") and hasattr(model, "predict"):

        def fit_predict(run: LakeRun) -> np.ndarray:
            estimator = clone(model) if isinstance(model, BaseEstimator) else model
            estimator.fit(run.train_x, run.train_y)
            return np.asarray(estimator.predict(run.test_x))

        return fit_predict
    if callable(model):

        def nearest(run: LakeRun) -> np.ndarray:
            distance = np.asarray(model(run.train_x, run.test_x))
            expected = (len(run.test_x), len(run.train_x))
            if distance.shape != expected:
                raise ValueError(f"distance returned shape {distance.shape} on {run.name}; expected {expected}")
            return run.train_y[np.argmin(distance, axis=1)]

        return nearest
    raise TypeError(f"model must have fit/predict or be a distance callable, got {type(model).__name__}")


def make_lake_runs(
    sources: PathLike | Sequence[PathLike],
    out_dir: PathLike,
    alphabets: str | Sequence[str] | None = None,
    n_runs: int = 20,
    n_way: int = 20,
    seed: int = 0,
) -> Path:
    """Draw one-shot runs in Lake's layout from Omniglot images.

    Each run, following Lake et al. (2015): one alphabet (cycling through the
    eligible alphabets in a shuffled order), ``n_way`` of its characters, and
    two drawers, one drawing the training image of every character and the
    other the queries, which are shuffled. The PNG files are copied, not
    re-encoded.

    Parameters
    ----------
    sources : path or list of paths
        Omniglot zips or folders, as for :func:`~autometa.data.omniglot.load_omniglot`.
    out_dir : path
        Where to write ``run01 ..``; must be missing or empty.
    alphabets : list of str, default=None
        Draw only from these; ``None`` is every alphabet with at least ``n_way``
        characters.
    n_runs, n_way : int, default=20
    seed : int, default=0

    Returns
    -------
    Path
        ``out_dir``.
    """
    if n_runs < 1 or n_way < 1:
        raise ValueError(f"n_runs and n_way must be positive, got {n_runs} and {n_way}")
    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder; refusing to overwrite it")
    characters = _characters_by_alphabet(_scan_sources(_as_paths(sources)))
    candidates = sorted(characters)
    if alphabets is not None:
        candidates = [alphabets] if isinstance(alphabets, str) else list(alphabets)
        _check_alphabets(candidates, sorted(characters))
    eligible = [a for a in candidates if len(characters[a]) >= n_way]
    if not eligible:
        counts = ", ".join(f"{a} ({len(characters[a])})" for a in candidates)
        raise ValueError(f"no alphabet has {n_way} characters; characters per alphabet: {counts}")
    rng = np.random.default_rng(seed)
    width = max(2, len(str(max(n_runs, n_way))))
    order: list[str] = []
    out.mkdir(parents=True, exist_ok=True)
    for run in range(1, n_runs + 1):
        # Cycle through the alphabets so that runs spread evenly over them.
        order = order or [eligible[i] for i in rng.permutation(len(eligible))]
        _write_run(out, f"run{run:0{width}d}", characters[order.pop()], n_way, width, rng)
    return out


def _characters_by_alphabet(files: list[_ImageFile]) -> dict[str, dict[str, dict[int, _ImageFile]]]:
    """alphabet -> character -> drawer -> image file."""
    characters: dict[str, dict[str, dict[int, _ImageFile]]] = defaultdict(lambda: defaultdict(dict))
    for file in files:
        characters[file.alphabet][file.character][file.drawer] = file
    return characters


def _write_run(
    out: Path,
    name: str,
    characters: dict[str, dict[int, _ImageFile]],
    n_way: int,
    width: int,
    rng: np.random.Generator,
) -> None:
    chosen = [characters[c] for c in rng.choice(sorted(characters), n_way, replace=False)]
    drawers = sorted(set.intersection(*(set(drawings) for drawings in chosen)))
    if len(drawers) < 2:
        alphabet = next(iter(chosen[0].values())).alphabet
        raise ValueError(f"fewer than two drawers drew all of {n_way} characters of {alphabet}")
    train_drawer, test_drawer = rng.choice(drawers, 2, replace=False)
    queries = rng.permutation(n_way)
    train_files = [f"{name}/training/class{i + 1:0{width}d}.png" for i in range(n_way)]
    test_files = [f"{name}/test/item{i + 1:0{width}d}.png" for i in range(n_way)]
    images = [drawings[train_drawer] for drawings in chosen] + [chosen[c][test_drawer] for c in queries]
    for target, data in zip(train_files + test_files, _read_images(images)):
        (out / target).parent.mkdir(parents=True, exist_ok=True)
        (out / target).write_bytes(data)
    labels = "".join(f"{test} {train_files[c]}\n" for test, c in zip(test_files, queries))
    (out / name / _LABELS_FILE).write_text(labels)
