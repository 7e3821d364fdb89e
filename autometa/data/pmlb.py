"""Penn Machine Learning Benchmarks (PMLB) data sets, read from pmlb's cache layout.

The cache is a folder ``<dir>/<name>/<name>.tsv.gz`` (tab-separated, label
column ``target``) with an ``index.csv`` listing name, task, n_rows,
n_features and n_classes. ``<dir>`` is the ``data_dir`` argument, else
``pmlb/`` under :func:`autometa.data._paths.data_root` (``$AUTOMETA_DATA``,
or the shared data folder beside a source checkout), else under autometa's
cache folder.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pandas as pd

from autometa.data._paths import cache_dir, data_root

# pmlb downloads without a timeout, which can hang for minutes where the
# network drops packets; a probe with this timeout fails first.
_PROBE_TIMEOUT_S = 5.0
_HOW_TO_FIX = "pass data_dir= or set AUTOMETA_DATA to the folder that holds pmlb/<name>/<name>.tsv.gz"


def pmlb_index(data_dir: str | Path | None = None) -> pd.DataFrame:
    """The index of the local PMLB cache.

    Parameters
    ----------
    data_dir : str or Path, default=None
        The cache folder; default ``pmlb/`` under the data root.

    Returns
    -------
    pandas.DataFrame
        One row per data set: ``name``, ``task`` (``"classification"`` or
        ``"regression"``), ``n_rows``, ``n_features``, ``n_classes``.
    """
    path = _pmlb_dir(data_dir) / "index.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no PMLB index at {path}; {_HOW_TO_FIX}")
    return pd.read_csv(path)


def load_pmlb(
    name: str, data_dir: str | Path | None = None, download: bool = True
) -> tuple[pd.DataFrame, pd.Series]:
    """Load the PMLB data set ``name`` from the local cache, downloading it if allowed.

    Parameters
    ----------
    name : str
        A PMLB data set name, e.g. ``"iris"`` or ``"1089_USCrime"``.
    data_dir : str or Path, default=None
        The cache folder; default ``pmlb/`` under the data root.
    download : bool, default=True
        Whether to fetch a data set missing from the cache (needs the network
        and a writable ``data_dir``).

    Returns
    -------
    X : pandas.DataFrame
        The features.
    y : pandas.Series
        The label, named ``target``.

    Raises
    ------
    ImportError
        If the optional ``pmlb`` package is missing.
    ValueError
        If ``name`` is neither cached nor a PMLB data set (suggesting close names).
    FileNotFoundError
        If the data set is not cached and ``download`` is false or fails.
    """
    pmlb = _import_pmlb()
    directory = _pmlb_dir(data_dir)
    if (directory / name / f"{name}.tsv.gz").is_file():
        data = _fetch(pmlb, name, directory)
    else:
        data = _download(pmlb, name, directory, download)
    return data.drop(columns="target"), data["target"]


def _fetch(pmlb, name: str, directory: Path) -> pd.DataFrame:
    # pmlb's own dropna(inplace=True) is deprecated in pandas 3; drop rows with
    # missing values here instead, as pmlb does by default.
    return pmlb.fetch_data(name, local_cache_dir=str(directory), dropna=False).dropna()


def _pmlb_dir(data_dir: str | Path | None) -> Path:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    root = data_root()
    return (root if root is not None else cache_dir()) / "pmlb"


def _import_pmlb():
    try:
        import pmlb
    except ImportError as error:
        raise ImportError("load_pmlb needs the pmlb package: pip install 'autometa[pmlb]'") from error
    return pmlb


def _download(pmlb, name: str, directory: Path, download: bool) -> pd.DataFrame:
    """Fetch ``name`` into ``directory``, turning every way that fails into a clear error."""
    import requests  # a dependency of pmlb

    _check_known(name, directory, pmlb.dataset_names)
    missing = f"PMLB data set {name!r} is not in {directory}"
    if not download:
        raise FileNotFoundError(f"{missing} and download=False; {_HOW_TO_FIX}")
    url = f"{pmlb.pmlb.GITHUB_URL}/{name}/{name}.tsv.gz"
    try:
        requests.head(url, timeout=_PROBE_TIMEOUT_S, allow_redirects=True).raise_for_status()
        return _fetch(pmlb, name, directory)
    except (OSError, ValueError) as error:  # requests' errors are OSErrors; pmlb raises ValueError
        raise FileNotFoundError(
            f"{missing} and downloading it failed ({error}); {_HOW_TO_FIX}"
        ) from error


def _check_known(name: str, directory: Path, pmlb_names: list[str]) -> None:
    index = directory / "index.csv"
    known = set(pmlb_names) | (set(pmlb_index(directory)["name"]) if index.is_file() else set())
    if name not in known:
        close = difflib.get_close_matches(name, sorted(known), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown PMLB data set {name!r} (searched {directory}){hint}")
