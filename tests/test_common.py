"""The helpers every layer shares (autometa._common)."""

import math

import numpy as np
import pytest
import torch

from autometa._common import (atomic_torch_save, check_fraction, check_int, check_positive, describe, is_int,
                              is_positive, mean_ci, read_payload, resolve_device)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be 'auto' or a torch device"):
        resolve_device("gpu please")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_an_error_or_a_warned_fallback():
    with pytest.raises(ValueError, match="CUDA is not available on this machine; use 'cpu'"):
        resolve_device("cuda:0")
    with pytest.warns(UserWarning, match="not available here"):
        assert resolve_device("cuda", fallback=True) == torch.device("cpu")


def test_integer_and_positive_checks():
    assert is_int(3) and is_int(np.int64(2), 2) and not is_int(True) and not is_int(2.0) and not is_int(0)
    assert is_positive(0.5) and is_positive(2) and not is_positive(0) and not is_positive(False)
    check_int(1, "k")
    check_int(None, "k", allow_none=True)
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        check_int(0, "k")
    with pytest.raises(ValueError, match=r"n must be an integer >= 2, got 1 \(two at least\)"):
        check_int(1, "n", 2, hint="two at least")
    with pytest.raises(ValueError, match="lr must be a positive number or None"):
        check_positive(-1.0, "lr", allow_none=True)
    check_fraction(0.0, "gamma")
    with pytest.raises(ValueError, match=r"gamma must be a number in \[0.0, 1.0\]"):
        check_fraction(1.5, "gamma")


def test_mean_ci_is_a_student_t_interval():
    values = np.array([1.0, 2.0, 4.0, 7.0])
    mean, half = mean_ci(values)
    assert mean == pytest.approx(3.5)
    assert half == pytest.approx(3.182446305 * values.std(ddof=1) / 2)  # t(0.975, 3 dof)
    assert mean_ci(np.full(100_000, 1.0))[1] == 0.0
    assert math.isnan(mean_ci([5.0])[1])
    with pytest.raises(ValueError):
        mean_ci([])


def test_archives_round_trip_and_refuse_foreign_files(tmp_path):
    path = tmp_path / "sub" / "a.pt"
    atomic_torch_save({"format": "x", "version": 2, "w": torch.ones(2)}, path)
    payload = read_payload(path, "cpu", format="x", version=2, kind="thing")
    assert torch.equal(payload["w"], torch.ones(2))
    with pytest.raises(ValueError, match="has format version 2; this autometa reads version 3"):
        read_payload(path, "cpu", format="x", version=3, kind="thing")
    with pytest.raises(ValueError, match="is not an autometa thing file; make one"):
        read_payload(path, "cpu", format="y", version=2, kind="thing", how_to_make="make one")
    with pytest.raises(FileNotFoundError, match="no thing file at"):
        read_payload(tmp_path / "missing.pt", "cpu", format="x", version=2, kind="thing")
    assert [p.name for p in path.parent.iterdir()] == ["a.pt"]  # no temporary file left behind


def test_describe_names_the_machine_and_versions():
    line = describe("cpu")
    assert "cores" in line and "torch" in line and "python" in line
