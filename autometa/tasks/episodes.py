"""N-way K-shot episodes over a labelled pool, sampled without Python loops.

The sampler keeps the examples of each class as a row of a padded
``(n_classes, max_count)`` index matrix (:class:`Members`). Drawing ``m``
distinct members of many rows at once is then one array of random keys, one
partial sort and one gather; the same machinery draws the classes of an
episode from its group and, in :mod:`autometa.tasks.regression`, the rows of a
regression task from its group.
"""

from __future__ import annotations

import numpy as np
import torch

from autometa._common import check_int
from autometa.tasks._sampling import (
    Members,
    RandomState,
    as_float_tensor,
    encode,
    gather,
    renumber,
    show,
)
from autometa.tasks.task import TaskBatch



class EpisodeSampler:
    """N-way K-shot classification episodes drawn from a labelled pool.

    Each episode picks ``n_way`` distinct classes (all from one group when
    ``groups`` is given) and ``k_shot + n_query`` distinct examples of each;
    the classes are relabelled ``0 .. n_way - 1`` in a random order, so a label
    carries no information across episodes.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_examples, *features)
        The pool. Kept as one float32 tensor (without a copy when it already
        is one, or a float32 C-contiguous numpy array); a tensor keeps its
        device and episodes are gathered there.
    y : array-like of shape (n_examples,)
        Class labels, any sortable hashable values (ints, strings).
    n_way, k_shot, n_query : int
        Classes per episode, support examples per class, query examples
        per class.
    groups : array-like of shape (n_examples,), default=None
        A group per example (e.g. Omniglot's alphabet). Every class must lie
        in one group and every episode draws its classes from one group.
        Groups with fewer than ``n_way`` classes are never drawn (see
        ``groups_``). A group is drawn with probability proportional to its
        number of classes, so that every class is equally likely to appear.
    classes : array-like, default=None
        Draw only from these class labels (e.g. the meta-training side of
        :func:`split_classes`); default all labels of ``y``.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the episodes: the same seed gives the same sequence.

    Attributes
    ----------
    classes_ : numpy.ndarray
        The sorted labels of the classes episodes are drawn from.
    groups_ : numpy.ndarray or None
        The sorted labels of the groups episodes are drawn from.

    See Also
    --------
    split_classes : Disjoint meta-training and meta-validation classes.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.rand(100, 28, 28).astype(np.float32)
    >>> y = np.repeat(np.arange(10), 10)
    >>> sampler = EpisodeSampler(X, y, n_way=5, k_shot=1, n_query=3, random_state=0)
    >>> batch = sampler.sample(meta_batch=4)
    >>> tuple(batch.support_x.shape), tuple(batch.query_y.shape)
    ((4, 5, 28, 28), (4, 15))
    """

    def __init__(
        self,
        X,
        y,
        n_way: int,
        k_shot: int,
        n_query: int,
        groups=None,
        classes=None,
        random_state: RandomState = None,
    ):
        for name, value in (("n_way", n_way), ("k_shot", k_shot), ("n_query", n_query)):
            check_int(value, name)
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.random_state = random_state
        self._X = as_float_tensor(X)
        labels, codes = encode(y, "y", len(self._X))
        selected = _select_classes(labels, classes)
        _check_class_sizes(labels, codes, selected, k_shot + n_query)
        if groups is None:
            group_labels, class_group = None, np.zeros(len(labels), dtype=np.int64)
        else:
            group_labels, group_codes = encode(groups, "groups", len(self._X))
            class_group = _group_of_each_class(codes, group_codes, labels, group_labels)
        used_groups = _groups_with_enough_classes(class_group, selected, n_way, group_labels)
        selected &= used_groups[class_group]

        self.classes_ = labels[selected]
        self.groups_ = None if group_labels is None else group_labels[used_groups]
        self._examples = Members(renumber(selected)[codes], int(selected.sum()))
        self._classes = Members(renumber(used_groups)[class_group[selected]], int(used_groups.sum()))
        self._group_weights = self._classes.sizes / self._classes.sizes.sum()
        self._rng = np.random.default_rng(random_state)

    def sample(self, meta_batch: int = 1) -> TaskBatch:
        """Draw ``meta_batch`` independent episodes.

        Returns
        -------
        TaskBatch
            ``support_x`` ``(meta_batch, n_way * k_shot, *features)`` float32,
            ``support_y`` ``(meta_batch, n_way * k_shot)`` int64, class-major
            (class 0's shots, then class 1's, ...); the query likewise with
            ``n_query`` per class.
        """
        check_int(meta_batch, "meta_batch")
        rng = self._rng
        groups = rng.choice(len(self._group_weights), size=meta_batch, p=self._group_weights)
        classes = self._classes.sample(groups, self.n_way, rng)
        examples = self._examples.sample(classes, self.k_shot + self.n_query, rng)
        support = examples[..., : self.k_shot].reshape(meta_batch, -1)
        query = examples[..., self.k_shot :].reshape(meta_batch, -1)
        return TaskBatch(
            gather(self._X, support),
            self._labels(meta_batch, self.k_shot),
            gather(self._X, query),
            self._labels(meta_batch, self.n_query),
        )

    def _labels(self, meta_batch: int, per_class: int) -> torch.Tensor:
        labels = torch.arange(self.n_way, device=self._X.device).repeat_interleave(per_class)
        return labels.expand(meta_batch, -1).contiguous()


def split_classes(
    y, groups=None, val_fraction: float = 0.2, random_state: RandomState = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split the classes of ``y`` into disjoint meta-training and meta-validation sets.

    Parameters
    ----------
    y : array-like of shape (n_examples,)
        Class labels.
    groups : array-like of shape (n_examples,), default=None
        A group per example; when given, whole groups go to one side, so that
        meta-validation measures transfer to unseen groups (e.g. alphabets).
    val_fraction : float, default=0.2
        Fraction of the classes (of the groups, when given) for validation,
        rounded to the nearest whole number.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the split.

    Returns
    -------
    train_classes, val_classes : numpy.ndarray
        Sorted class labels, to pass as ``classes=`` to :class:`EpisodeSampler`.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction!r}")
    labels, codes = encode(y, "y")
    if groups is None:
        unit_of_class = np.arange(len(labels))
    else:
        group_labels, group_codes = encode(groups, "groups", len(codes))
        unit_of_class = _group_of_each_class(codes, group_codes, labels, group_labels)
    n_units = int(unit_of_class.max()) + 1
    n_val = round(val_fraction * n_units)
    if not 0 < n_val < n_units:
        unit = "classes" if groups is None else "groups"
        raise ValueError(
            f"val_fraction={val_fraction} of {n_units} {unit} leaves {n_val} for validation and "
            f"{n_units - n_val} for training; choose a val_fraction that leaves at least one "
            f"on each side"
        )
    val_units = np.random.default_rng(random_state).permutation(n_units)[:n_val]
    is_val = np.isin(unit_of_class, val_units)
    return labels[~is_val], labels[is_val]


def _select_classes(labels: np.ndarray, classes) -> np.ndarray:
    """Boolean mask over ``labels``: those in ``classes`` (all when None)."""
    if classes is None:
        return np.ones(len(labels), dtype=bool)
    wanted = np.unique(np.asarray(classes))
    unknown = wanted[~np.isin(wanted, labels)]
    if len(unknown):
        raise ValueError(
            f"{len(unknown)} of the requested classes do not occur in y (e.g. {show(unknown[0])}); "
            f"pass labels of y as classes="
        )
    return np.isin(labels, wanted)


def _check_class_sizes(labels: np.ndarray, codes: np.ndarray, selected: np.ndarray, needed: int) -> None:
    counts = np.where(selected, np.bincount(codes, minlength=len(labels)), np.iinfo(np.int64).max)
    short = np.flatnonzero(counts < needed)
    if len(short):
        smallest = short[np.argmin(counts[short])]
        raise ValueError(
            f"{len(short)} of {int(selected.sum())} classes have fewer than k_shot + n_query = "
            f"{needed} examples (smallest: class {show(labels[smallest])} with {counts[smallest]}); "
            f"lower k_shot or n_query, or leave those classes out with classes="
        )


def _group_of_each_class(
    codes: np.ndarray, group_codes: np.ndarray, labels: np.ndarray, group_labels: np.ndarray
) -> np.ndarray:
    """The group code of each class; raises if a class spans two groups."""
    class_group = np.empty(len(labels), dtype=np.int64)
    class_group[codes] = group_codes
    spanning = np.flatnonzero(class_group[codes] != group_codes)
    if len(spanning):
        example = spanning[0]
        pair = {group_labels[class_group[codes[example]]], group_labels[group_codes[example]]}
        first, second = sorted(pair)
        raise ValueError(
            f"class {show(labels[codes[example]])} spans groups {show(first)} and {show(second)}; "
            f"every class must lie in one group (make the class labels unique per group, "
            f"e.g. 'group/class')"
        )
    return class_group


def _groups_with_enough_classes(
    class_group: np.ndarray, selected: np.ndarray, n_way: int, group_labels: np.ndarray | None
) -> np.ndarray:
    """Boolean mask over groups: those with at least ``n_way`` selected classes."""
    n_classes = np.bincount(class_group[selected], minlength=int(class_group.max()) + 1)
    enough = n_classes >= n_way
    if not enough.any():
        if group_labels is None:
            raise ValueError(
                f"n_way={n_way} but only {int(selected.sum())} classes are available; lower n_way"
            )
        largest = int(np.argmax(n_classes))
        raise ValueError(
            f"no group has n_way={n_way} classes (largest: {show(group_labels[largest])} with "
            f"{n_classes[largest]}); lower n_way or sample without groups="
        )
    return enough
