"""benchmarks.run_cache: finished runs in a JSON-lines file, read back by their settings."""

import json
import math

import numpy as np
import pytest

from benchmarks.run_cache import append_run, jsonable, read_runs


def test_runs_are_read_back_by_their_settings_in_file_order(tmp_path):
    path = tmp_path / "runs.jsonl"
    assert read_runs(path, {"cv": 3}) == [] and read_runs(None, {"cv": 3}) == []
    append_run(path, {"cv": 3, "rows": 100}, {"dataset": "a", "test": 0.5})
    append_run(path, {"cv": 5, "rows": 100}, {"dataset": "b", "test": 0.6})
    append_run(path, {"cv": 3, "rows": 100}, {"dataset": "c", "test": np.float64(0.7)})
    assert read_runs(path, {"cv": 3, "rows": 100}) == [{"dataset": "a", "test": 0.5}, {"dataset": "c", "test": 0.7}]
    assert read_runs(path, {"cv": 5, "rows": 100}) == [{"dataset": "b", "test": 0.6}]
    assert read_runs(path, {"cv": 3, "rows": 200}) == []
    append_run(None, {"cv": 3}, {"dataset": "d"})  # no file: nothing kept
    assert len(path.read_text().splitlines()) == 3


def test_non_finite_values_are_written_as_strict_json(tmp_path):
    path = tmp_path / "runs.jsonl"
    append_run(path, {"seed": np.int64(1)}, {"values": [math.nan, math.inf, -math.inf, 1.0]})
    line = path.read_text().strip()
    assert json.loads(line) == {"seed": 1, "values": [None, "inf", "-inf", 1.0]}
    assert read_runs(path, {"seed": 1}) == [{"values": [None, "inf", "-inf", 1.0]}]
    assert jsonable({1: (np.float32(0.5),)}) == {"1": [0.5]}


def test_a_broken_line_is_an_error_that_names_it(tmp_path):
    path = tmp_path / "runs.jsonl"
    append_run(path, {"cv": 3}, {"dataset": "a"})
    path.write_text(path.read_text() + "\n{not json\n")
    with pytest.raises(ValueError, match=r"runs.jsonl, line 3: not JSON"):
        read_runs(path, {"cv": 3})
