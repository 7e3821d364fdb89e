"""A benchmark's finished runs in a JSON-lines file, so that a killed or extended run resumes.

Each line is one finished run: the settings it ran under and its result,
side by side. :func:`read_runs` gives back the results of the runs made
under the given settings; :func:`append_run` adds one as soon as it
finishes. Non-finite floats are written as ``null`` (NaN) or ``"inf"`` /
``"-inf"``, so every line is strict JSON.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["append_run", "jsonable", "read_runs"]


def read_runs(path: str | os.PathLike | None, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The results (without the settings' keys) of the runs in ``path`` made under ``settings``, in file order.

    A missing file (or ``path`` None) holds no runs.

    Raises
    ------
    ValueError
        If a line is not JSON; the message names the file and the line.
    """
    if path is None or not Path(path).is_file():
        return []
    wanted = jsonable(settings)
    found = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}, line {number}: not JSON ({error}); remove the line or the file") from None
        if all(record.get(name) == value for name, value in wanted.items()):
            found.append({k: v for k, v in record.items() if k not in wanted})
    return found


def append_run(path: str | os.PathLike | None, settings: dict[str, Any], result: dict[str, Any]) -> None:
    """Append one finished run (its settings and ``result``) to ``path`` as a line; nothing when ``path`` is None."""
    if path is None:
        return
    with open(path, "a") as handle:
        handle.write(json.dumps(jsonable({**settings, **result}), allow_nan=False) + "\n")


def jsonable(value):
    """``value`` with NumPy scalars as Python numbers and non-finite floats as JSON can hold them."""
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"  # e.g. a trials-to-match that never happened
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return jsonable(value.item())
    return value
