"""Omniglot (Lake, Salakhutdinov & Tenenbaum, 2015) from its zips or extracted folders.

The official layout, inside a zip or on disk, is
``<top>/<Alphabet>/characterNN/<imageid>_<drawer>.png``: 105x105 1-bit PNGs,
black ink on white, 20 drawers per character. :func:`load_omniglot` decodes
them to ``float32`` arrays with ink = 1 and caches the result, so that every
load after the first costs a file read.

Examples
--------
>>> from autometa.data._paths import data_root
>>> zips = sorted((data_root() / "omniglot").glob("images_background_small*.zip"))
>>> omniglot = load_omniglot(zips)  # doctest: +SKIP
>>> len(omniglot), omniglot.n_classes, len(omniglot.alphabet_names)  # doctest: +SKIP
(4840, 242, 8)
"""

from __future__ import annotations

import hashlib
import io
import json
import operator
import os
import re
import tempfile
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from ._paths import cache_dir as default_cache_dir

PathLike = str | os.PathLike

# Bump whenever the decoding or the cached arrays change, so old caches are ignored.
_CACHE_VERSION = 1
_CHARACTER_DIR = re.compile(r"character\d+")
_IMAGE_FILE = re.compile(r"\d+_(\d+)\.png")
_LAYOUT = "<Alphabet>/characterNN/<imageid>_<drawer>.png"


@dataclass(frozen=True, eq=False)
class OmniglotDataset:
    """Omniglot images with their class, alphabet, drawer and rotation.

    Images are sorted by alphabet, character, rotation and drawer, so the
    images of a class are contiguous.

    Attributes
    ----------
    images : ndarray of shape (n_images, image_size, image_size), float32
        Ink intensity in [0, 1]: 1 is ink, 0 is paper.
    labels : ndarray of shape (n_images,), int64
        Class id ``0 .. n_classes - 1``, an index into ``class_names``.
    alphabets : ndarray of shape (n_images,), int64
        Alphabet id, an index into ``alphabet_names``.
    alphabet_names : list of str
        Sorted alphabet names, e.g. ``"Greek"``.
    class_names : list of str
        ``"<Alphabet>/characterNN"``, with a ``"/rot90"``, ``"/rot180"`` or
        ``"/rot270"`` suffix for the rotated classes.
    drawers : ndarray of shape (n_images,), int64
        Drawer id parsed from the file name ``<imageid>_<drawer>.png``.
    rotation : ndarray of shape (n_images,), int64
        Counter-clockwise rotation in degrees: 0, 90, 180 or 270.
    """

    images: np.ndarray
    labels: np.ndarray
    alphabets: np.ndarray
    alphabet_names: list[str]
    class_names: list[str]
    drawers: np.ndarray
    rotation: np.ndarray

    def __post_init__(self):
        per_image = ("images", "labels", "alphabets", "drawers", "rotation")
        sizes = {name: len(getattr(self, name)) for name in per_image}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"OmniglotDataset arrays disagree on the number of images: {sizes}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def groups(self) -> np.ndarray:
        """The alphabet of each image, for episodes drawn within one alphabet."""
        return self.alphabets

    def subset_alphabets(self, names: str | Iterable[str]) -> OmniglotDataset:
        """The images of the alphabets ``names``, classes and alphabets renumbered from 0.

        Raises
        ------
        ValueError
            If a name is not one of ``alphabet_names``.
        """
        names = [names] if isinstance(names, str) else list(names)
        _check_alphabets(names, self.alphabet_names)
        kept_alphabets = [i for i, name in enumerate(self.alphabet_names) if name in names]
        keep = np.isin(self.alphabets, kept_alphabets)
        kept_classes, labels = np.unique(self.labels[keep], return_inverse=True)
        return OmniglotDataset(
            images=self.images[keep],
            labels=labels.astype(np.int64),
            alphabets=np.searchsorted(kept_alphabets, self.alphabets[keep]).astype(np.int64),
            alphabet_names=[self.alphabet_names[i] for i in kept_alphabets],
            class_names=[self.class_names[i] for i in kept_classes],
            drawers=self.drawers[keep],
            rotation=self.rotation[keep],
        )


def load_omniglot(
    sources: PathLike | Sequence[PathLike],
    image_size: int = 28,
    rotations: bool = False,
    cache: bool = True,
    cache_dir: PathLike | None = None,
) -> OmniglotDataset:
    """Load Omniglot images from one or more zips or extracted folders.

    Parameters
    ----------
    sources : path or list of paths
        Each an official zip (``images_background.zip``,
        ``images_evaluation.zip``, ``images_background_small1.zip``, ...) or
        its extracted folder: the top folder (``images_background/``) or the
        folder that holds it. A character found in several sources (the small
        zips share Greek and Latin) is taken from the first.
    image_size : int, default=28
        Images are resized, antialiased, to ``image_size x image_size``.
    rotations : bool, default=False
        Add each character rotated by 90, 180 and 270 degrees as three new
        classes, which quadruples the classes (Santoro et al., 2016).
    cache : bool, default=True
        Keep the decoded images in an ``.npz`` file and reuse it while the
        sources and ``image_size`` are unchanged.
    cache_dir : path, default=None
        Where to keep it; ``None`` is ``autometa``'s cache folder + ``/omniglot``.

    Returns
    -------
    OmniglotDataset

    Raises
    ------
    FileNotFoundError
        If a source does not exist.
    ValueError
        If a source is neither a zip nor a folder, or holds no Omniglot images.
    """
    paths = _as_paths(sources)
    image_size = _check_image_size(image_size)
    cache_file = None
    if cache:
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "omniglot"
        cache_file = folder / f"omniglot-{_cache_key(paths, image_size)}.npz"
    arrays = _read_cache(cache_file) if cache_file is not None and cache_file.exists() else None
    if arrays is None:
        arrays = _decode_sources(paths, image_size)
        if cache_file is not None:
            _write_cache(cache_file, arrays)
    dataset = _dataset_from_arrays(arrays)
    return _add_rotations(dataset) if rotations else dataset


def decode_image(data: bytes, image_size: int = 28) -> np.ndarray:
    """Decode one PNG of dark ink on light paper to a float32 image with ink = 1.

    Parameters
    ----------
    data : bytes
        The PNG file's content (any mode PIL reads; 1-bit for Omniglot).
    image_size : int, default=28
        Resized, antialiased (Lanczos), to ``image_size x image_size``.

    Returns
    -------
    ndarray of shape (image_size, image_size), float32, values in [0, 1]
    """
    with Image.open(io.BytesIO(data)) as image:
        # Resampling in float mode keeps the antialiased grey levels exact.
        gray = image.convert("F")
    if gray.size != (image_size, image_size):
        gray = gray.resize((image_size, image_size), Image.Resampling.LANCZOS)
    # Lanczos overshoots a little at sharp edges.
    return np.clip(1.0 - np.asarray(gray, dtype=np.float32) / 255.0, 0.0, 1.0)


class _ImageFile(NamedTuple):
    """One Omniglot PNG: where it is and what it shows."""

    source: Path
    member: str  # path inside the zip or folder, '/'-separated
    alphabet: str
    character: str
    drawer: int


def _scan_sources(paths: Sequence[Path]) -> list[_ImageFile]:
    """The Omniglot images of ``paths``, each character from its first source,
    sorted by alphabet, character and drawer."""
    owner: dict[tuple[str, str], tuple[int, str]] = {}
    files = []
    for index, path in enumerate(paths):
        found = False
        for member in _list_members(path):
            parsed = _parse_member(member)
            if parsed is None:
                continue
            found = True
            top, alphabet, character, drawer = parsed
            # A character belongs to the first (source, top folder) that has it;
            # the index, not the path, so that a source given twice counts once.
            if owner.setdefault((alphabet, character), (index, top)) == (index, top):
                files.append(_ImageFile(path, member, alphabet, character, drawer))
        if not found:
            raise ValueError(_no_images_message(path))
    return sorted(files, key=lambda f: (f.alphabet, f.character, f.drawer))


def _read_images(files: Sequence[_ImageFile]) -> list[bytes]:
    """The bytes of ``files``, in order, opening each zip once."""
    by_source: dict[Path, list[int]] = {}
    for i, file in enumerate(files):
        by_source.setdefault(file.source, []).append(i)
    data: list[bytes] = [b""] * len(files)
    for source, indices in by_source.items():
        members = [files[i].member for i in indices]
        for i, content in zip(indices, _read_members(source, members)):
            data[i] = content
    return data


def _read_members(source: Path, members: list[str]) -> Iterator[bytes]:
    if source.is_dir():
        for member in members:
            yield (source / member).read_bytes()
    else:
        with zipfile.ZipFile(source) as archive:
            for member in members:
                yield archive.read(member)


def _list_members(path: Path) -> list[str]:
    """The PNG paths in a zip or folder that could follow the official layout."""
    if path.is_dir():
        # The top folder itself, or the folder that holds it: two depths only,
        # so that a wrong folder (a home directory) is not crawled.
        patterns = ("*/*/*.png", "*/*/*/*.png")
        return sorted(p.relative_to(path).as_posix() for pattern in patterns for p in path.glob(pattern))
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is neither a folder nor a zip file; expected an Omniglot zip or folder")
    with zipfile.ZipFile(path) as archive:
        return sorted(name for name in archive.namelist() if name.endswith(".png"))


def _parse_member(member: str) -> tuple[str, str, str, int] | None:
    """``(top folder, alphabet, character, drawer)``, or None for a file off the layout."""
    parts = member.split("/")
    # At most one folder above the alphabets: the zip's or extracted top folder.
    if len(parts) not in (3, 4):
        return None
    *top, alphabet, character, name = parts
    match = _IMAGE_FILE.fullmatch(name)
    if not match or not _CHARACTER_DIR.fullmatch(character):
        return None
    return "/".join(top), alphabet, character, int(match.group(1))


def _no_images_message(path: Path) -> str:
    message = f"no Omniglot images in {path}; expected {_LAYOUT} in it or in one folder below it"
    if path.is_dir() and any(path.glob("*.zip")):
        message += " (it holds zip files: pass each zip as a source)"
    return message


def _decode_sources(paths: Sequence[Path], image_size: int) -> dict[str, np.ndarray]:
    """The arrays that the cache stores, decoded from the sources."""
    files = _scan_sources(paths)
    images = np.empty((len(files), image_size, image_size), dtype=np.float32)
    for i, (file, data) in enumerate(zip(files, _read_images(files))):
        try:
            images[i] = decode_image(data, image_size)
        except OSError as error:
            raise ValueError(f"{file.source}: cannot decode {file.member}: {error}") from error
    characters = [(f.alphabet, f.character) for f in files]
    class_keys = sorted(set(characters))
    class_index = {key: i for i, key in enumerate(class_keys)}
    alphabet_names = sorted({alphabet for alphabet, _ in class_keys})
    return {
        "images": images,
        "labels": np.array([class_index[key] for key in characters], dtype=np.int64),
        "drawers": np.array([f.drawer for f in files], dtype=np.int64),
        "class_alphabets": np.array([alphabet_names.index(a) for a, _ in class_keys], dtype=np.int64),
        "alphabet_names": np.array(alphabet_names, dtype=np.str_),
        "class_names": np.array([f"{a}/{c}" for a, c in class_keys], dtype=np.str_),
    }


def _dataset_from_arrays(arrays: dict[str, np.ndarray]) -> OmniglotDataset:
    labels = arrays["labels"]
    return OmniglotDataset(
        images=arrays["images"],
        labels=labels,
        alphabets=arrays["class_alphabets"][labels],
        alphabet_names=arrays["alphabet_names"].tolist(),
        class_names=arrays["class_names"].tolist(),
        drawers=arrays["drawers"],
        rotation=np.zeros(len(labels), dtype=np.int64),
    )


def _add_rotations(dataset: OmniglotDataset) -> OmniglotDataset:
    """Each class in four rotations, rotated class ``4 * c + k`` by ``90 * k`` degrees."""
    rotated = np.stack([np.rot90(dataset.images, k, axes=(1, 2)) for k in range(4)], axis=1)
    labels = (4 * dataset.labels[:, None] + np.arange(4)).ravel()
    # A stable sort keeps each class's images in drawer order.
    order = np.argsort(labels, kind="stable")
    suffixes = ["", "/rot90", "/rot180", "/rot270"]
    return OmniglotDataset(
        images=rotated.reshape(-1, *dataset.images.shape[1:])[order],
        labels=labels[order],
        alphabets=np.repeat(dataset.alphabets, 4)[order],
        alphabet_names=list(dataset.alphabet_names),
        class_names=[name + suffix for name in dataset.class_names for suffix in suffixes],
        drawers=np.repeat(dataset.drawers, 4)[order],
        rotation=np.tile(np.arange(0, 360, 90, dtype=np.int64), len(dataset))[order],
    )


def _cache_key(paths: Sequence[Path], image_size: int) -> str:
    """A hash of what the decoded arrays depend on."""
    parts: list = [_CACHE_VERSION, image_size]
    for path in paths:
        parts.append(str(path.resolve()))
        # A folder's own mtime misses edits deeper down, so stat its images.
        members = _list_members(path) if path.is_dir() else [""]
        for member in members:
            stat = (path / member).stat() if member else path.stat()
            parts.append([member, stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


def _read_cache(cache_file: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None (with a warning) if the file is unreadable."""
    try:
        with np.load(cache_file, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        _check_cached(arrays)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        message = f"ignoring the unreadable Omniglot cache {cache_file} ({error}); rebuilding it"
        warnings.warn(message, stacklevel=3)
        return None
    return arrays


def _check_cached(arrays: dict[str, np.ndarray]) -> None:
    images, labels = arrays["images"], arrays["labels"]
    n_classes = len(arrays["class_names"])
    if (
        images.ndim != 3
        or images.dtype != np.float32
        or len(labels) != len(images)
        or len(arrays["drawers"]) != len(images)
        or len(arrays["class_alphabets"]) != n_classes
        or labels.min(initial=0) < 0
        or labels.max(initial=0) >= max(n_classes, 1)
        or arrays["class_alphabets"].max(initial=0) >= max(len(arrays["alphabet_names"]), 1)
    ):
        raise ValueError("inconsistent arrays")


def _write_cache(cache_file: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically, so a reader never sees half a file; a failure only warns."""
    tmp = None
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_file.parent, suffix=".tmp", delete=False) as tmp:
            np.savez(tmp, **arrays)
        os.replace(tmp.name, cache_file)
    except OSError as error:
        if tmp is not None:
            Path(tmp.name).unlink(missing_ok=True)
        warnings.warn(f"cannot write the Omniglot cache {cache_file}: {error}", stacklevel=3)


def _as_paths(sources: PathLike | Sequence[PathLike]) -> list[Path]:
    """``sources`` as a non-empty list of existing paths."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    paths = [Path(source).expanduser() for source in sources]
    if not paths:
        raise ValueError("no Omniglot sources given; expected zips or folders")
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"Omniglot source {path} not found; expected a zip or an extracted folder")
    return paths


def _check_image_size(image_size: int) -> int:
    image_size = operator.index(image_size)
    if image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size}")
    return image_size


def _check_alphabets(names: Iterable[str], valid: Sequence[str]) -> None:
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise ValueError(f"unknown alphabet {unknown[0]!r}; valid alphabets: {', '.join(valid)}")
