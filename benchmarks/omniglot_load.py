"""How much the Omniglot cache saves: a cold load (decode every PNG) against a warm one."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from autometa._common import cpu_name, versions
from autometa.data.omniglot import PathLike, load_omniglot


def run(sources: PathLike | Sequence[PathLike], cache_dir: PathLike | None = None, image_size: int = 28) -> dict:
    """Time a cold and a warm :func:`~autometa.data.omniglot.load_omniglot`, print and return the result.

    Parameters
    ----------
    sources : path or list of paths
        Omniglot zips or folders.
    cache_dir : path, default=None
        A fresh temporary cache folder is made inside it (inside the system's
        temporary folder when ``None``) and removed afterwards, so the first
        load is always cold.
    image_size : int, default=28

    Returns
    -------
    dict
        ``n_alphabets``, ``n_classes``, ``n_images``, ``image_size``,
        ``cold_s``, ``warm_s``, ``speedup`` (cold / warm), ``machine`` and
        ``versions``.
    """
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as fresh:
        start = time.perf_counter()
        dataset = load_omniglot(sources, image_size=image_size, cache_dir=fresh)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        load_omniglot(sources, image_size=image_size, cache_dir=fresh)
        warm = time.perf_counter() - start
    result = {
        "n_alphabets": len(dataset.alphabet_names),
        "n_classes": dataset.n_classes,
        "n_images": len(dataset),
        "image_size": image_size,
        "cold_s": cold,
        "warm_s": warm,
        "speedup": cold / warm,
        "machine": cpu_name(),
        "versions": versions("numpy", "pillow"),
    }
    print(
        f"omniglot: {result['n_alphabets']} alphabets, {result['n_classes']} characters, "
        f"{result['n_images']} images at {image_size}x{image_size}\n"
        f"cold load {cold:.3f} s, warm load {warm:.3f} s, {result['speedup']:.1f}x faster "
        f"({result['machine']}; {', '.join(f'{k} {v}' for k, v in result['versions'].items())})"
    )
    return result
