"""Vectorised sampling machinery shared by the task samplers.

:class:`Members` keeps the members of many sets (the examples of each class,
the classes of each group, the rows of each regression task) as a padded
``(n_sets, max_size)`` index matrix: drawing ``m`` distinct members of many
sets at once is one array of random keys, one partial sort and one gather.
"""

from __future__ import annotations


import numpy as np
import torch

RandomState = int | np.random.Generator | None


class Members:
    """The members of ``n_sets`` sets as a padded ``(n_sets, max_size)`` index matrix.

    Parameters
    ----------
    set_of : numpy.ndarray of shape (n_items,)
        The set of each item, ``0 .. n_sets - 1``, or ``-1`` for an item in
        no set. Items are named by their position.
    n_sets : int
    """

    def __init__(self, set_of: np.ndarray, n_sets: int):
        items = np.flatnonzero(set_of >= 0)
        items = items[np.argsort(set_of[items], kind="stable")]
        sets = set_of[items]
        self.sizes = np.bincount(sets, minlength=n_sets)
        position = np.arange(len(items)) - (np.cumsum(self.sizes) - self.sizes)[sets]
        self.index = np.full((n_sets, self.sizes.max(initial=0)), -1, dtype=np.int64)
        self.index[sets, position] = items

    def sample(self, sets: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        """``size`` distinct members of each of ``sets``, uniformly at random.

        ``sets`` is an integer array of any shape whose sets all have at least
        ``size`` members; the result has shape ``sets.shape + (size,)`` and
        lists each set's members in a uniformly random order.
        """
        width = self.index.shape[1]
        keys = rng.random((*sets.shape, width), dtype=np.float32)
        # Padding gets a key above every real one, so it is never among the smallest.
        keys[np.arange(width) >= self.sizes[sets][..., None]] = 2.0
        smallest = np.argpartition(keys, size - 1, axis=-1)[..., :size]
        # argpartition leaves the smallest in an arbitrary, not a random, order;
        # ordering them by key makes both which and in what order uniform.
        order = np.argsort(np.take_along_axis(keys, smallest, axis=-1), axis=-1)
        smallest = np.take_along_axis(smallest, order, axis=-1)
        return self.index[sets[..., None], smallest]


def gather(data: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """The rows ``rows`` (an integer array of any shape) of ``data``, shaped
    ``rows.shape + data.shape[1:]``: one contiguous copy, on ``data``'s device."""
    index = torch.from_numpy(np.ascontiguousarray(rows).reshape(-1)).to(data.device)
    return torch.index_select(data, 0, index).view(*rows.shape, *data.shape[1:])


def as_float_tensor(X) -> torch.Tensor:
    """``X`` as a contiguous float32 tensor, sharing memory where it can."""
    if isinstance(X, torch.Tensor):
        return X.to(torch.float32).contiguous()
    array = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
    # torch cannot share read-only memory (e.g. a memory-mapped file) and warns.
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def encode(values, name: str, n_expected: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct ``values`` and each value's index among them."""
    if isinstance(values, torch.Tensor):
        values = values.cpu().numpy()
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
    if n_expected is not None and len(values) != n_expected:
        raise ValueError(
            f"{name} has {len(values)} entries but there are {n_expected} examples; "
            f"pass one entry per example"
        )
    if len(values) == 0:
        raise ValueError(f"{name} is empty")
    labels, codes = np.unique(values, return_inverse=True)
    return labels, codes.reshape(-1)


def show(value) -> str:
    """``repr`` of a label, as the user wrote it rather than as numpy holds it."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def renumber(mask: np.ndarray) -> np.ndarray:
    """Map the positions where ``mask`` holds to ``0, 1, ...`` and the others to ``-1``."""
    new = np.full(len(mask), -1, dtype=np.int64)
    new[mask] = np.arange(int(mask.sum()))
    return new
