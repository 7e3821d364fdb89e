import re
import sys

import numpy as np
import pandas as pd
import pytest

from autometa.data._paths import data_root
from autometa.data.pmlb import load_pmlb, pmlb_index

pmlb = pytest.importorskip("pmlb", reason="pmlb is an optional extra: pip install 'autometa[pmlb]'")
requests = pytest.importorskip("requests")

SHARED = data_root() / "pmlb" if data_root() is not None else None
needs_shared = pytest.mark.skipif(
    SHARED is None or not (SHARED / "index.csv").is_file(),
    reason="the shared PMLB cache (../shared/data/pmlb or $AUTOMETA_DATA/pmlb) is absent",
)


@pytest.fixture
def cache(tmp_path):
    """A two-data-set PMLB cache: ``mini`` (classification) and ``tiny_reg``."""
    frames = {
        "mini": pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0, 1, 0], "target": [0, 1, 1]}),
        "tiny_reg": pd.DataFrame({"x": [0.5, 1.5], "target": [2.0, 3.0]}),
    }
    for name, frame in frames.items():
        (tmp_path / name).mkdir()
        frame.to_csv(tmp_path / name / f"{name}.tsv.gz", sep="\t", compression="gzip", index=False)
    pd.DataFrame(
        {
            "name": ["mini", "tiny_reg", "iris"],
            "task": ["classification", "regression", "classification"],
            "n_rows": [3, 2, 150],
            "n_features": [2, 1, 4],
            "n_classes": [2, 0, 3],
        }
    ).to_csv(tmp_path / "index.csv", index=False)
    return tmp_path


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test on any attempt to reach PMLB's server."""

    def refuse(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(requests, "head", refuse)
    monkeypatch.setattr(requests, "get", refuse)


def test_load_from_a_cache_dir(cache, no_network):
    X, y = load_pmlb("mini", data_dir=cache)
    assert list(X.columns) == ["a", "b"] and len(X) == 3
    assert y.name == "target" and y.tolist() == [0, 1, 1]
    X, y = load_pmlb("tiny_reg", data_dir=str(cache), download=False)
    assert X.shape == (2, 1) and y.dtype == np.float64


def test_index_of_a_cache_dir(cache):
    index = pmlb_index(cache)
    assert list(index.columns) == ["name", "task", "n_rows", "n_features", "n_classes"]
    assert index["name"].tolist() == ["mini", "tiny_reg", "iris"]


def test_environment_variable_sets_the_data_root(tmp_path, monkeypatch, no_network):
    (tmp_path / "pmlb").mkdir()
    pd.DataFrame({"f": [1, 2], "target": [0, 1]}).to_csv(
        tmp_path / "pmlb" / "index.csv", index=False
    )
    (tmp_path / "pmlb" / "envset").mkdir()
    pd.DataFrame({"f": [1, 2], "target": [0, 1]}).to_csv(
        tmp_path / "pmlb" / "envset" / "envset.tsv.gz", sep="\t", compression="gzip", index=False
    )
    monkeypatch.setenv("AUTOMETA_DATA", str(tmp_path))
    X, y = load_pmlb("envset")
    assert X["f"].tolist() == [1, 2]
    assert list(pmlb_index().columns) == ["f", "target"]


def test_missing_data_set_without_download_names_the_directory(cache, no_network):
    message = f"'iris' is not in {re.escape(str(cache))} and download=False.*AUTOMETA_DATA"
    with pytest.raises(FileNotFoundError, match=message):
        load_pmlb("iris", data_dir=cache, download=False)


def test_failed_download_is_a_clear_error(cache, monkeypatch):
    def offline(*args, **kwargs):
        raise requests.ConnectionError("no route to host")

    def must_not_run(*args, **kwargs):
        raise AssertionError("pmlb.fetch_data must not run when the probe fails")

    monkeypatch.setattr(requests, "head", offline)
    monkeypatch.setattr(pmlb, "fetch_data", must_not_run)
    message = r"downloading it failed \(no route to host\).*data_dir="
    with pytest.raises(FileNotFoundError, match=message):
        load_pmlb("iris", data_dir=cache)


def test_unknown_name_suggests_close_names(cache, no_network):
    with pytest.raises(ValueError, match="unknown PMLB data set 'minni'.*did you mean 'mini'"):
        load_pmlb("minni", data_dir=cache)
    with pytest.raises(ValueError, match="did you mean 'iris'"):
        load_pmlb("iriss", data_dir=cache, download=False)


def test_missing_index_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="no PMLB index at .*index.csv; pass data_dir="):
        pmlb_index(tmp_path)


def test_missing_pmlb_package_says_how_to_install(monkeypatch, cache):
    monkeypatch.setitem(sys.modules, "pmlb", None)
    with pytest.raises(ImportError, match=r"pip install 'autometa\[pmlb\]'"):
        load_pmlb("mini", data_dir=cache)


@needs_shared
def test_shared_cache_loads_iris_and_lists_all_data_sets(no_network):
    X, y = load_pmlb("iris", download=False)
    assert X.shape == (150, 4) and sorted(y.unique()) == [0, 1, 2]
    index = pmlb_index()
    assert {"classification", "regression"} == set(index["task"])
    row = index.set_index("name").loc["iris"]
    assert (row["n_rows"], row["n_features"], row["n_classes"]) == (150, 4, 3)


@needs_shared
def test_shared_cache_regression_data_set(no_network):
    X, y = load_pmlb("1089_USCrime", download=False)
    assert X.shape == (47, 13) and y.dtype.kind == "f"
