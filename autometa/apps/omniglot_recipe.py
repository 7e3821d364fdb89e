"""The few-shot image recipe behind ``autometa fewshot``: build a learner by
name, meta-train it on Omniglot-style data, evaluate it on episodes and on
Lake's one-shot runs.

Training choices for the small Omniglot background sets, where 242
characters are little data: each rotation by 90 degrees is a new class
(Santoro et al. 2016), every image of every episode gets a small random
affine distortion, the learning rate decays on a cosine, and a held-out
alphabet picks the best checkpoint.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from autometa._common import mean_ci
from autometa.meta import MetaLearner, Validation, meta_train, registry
from autometa.meta.base import evaluation_mode
from autometa.tasks import EpisodeSampler, TaskBatch

ALGORITHMS = registry.ALGORITHMS
TIME_BUDGET = 900.0  # seconds of training when neither steps nor a budget is given


@dataclass(frozen=True)
class Recipe:
    """Per-algorithm meta-training choices (episode shape, optimisation, learner)."""

    n_way: int
    n_query: int
    meta_batch: int
    lr: float
    outer: str = "adam"  # the outer optimiser: "adam", or "sgd" (Reptile's interpolation step)
    distortion: str = "affine"  # the training images' random distortions, a name of DISTORTIONS
    precision: str = "float32"  # the backbone's training precision, a name of PRECISIONS
    # the recipe's own learner hyperparameters; the others are the registry's
    # defaults (autometa.meta.registry)
    learner: dict = field(default_factory=dict)


# Finn et al. 2017, 20-way Omniglot: inner step size 0.1, 5 steps (3 here, for speed)
MAML_INNER_LOOP = {"inner_lr": 0.1, "inner_steps": 3}
# Metric learners train on more ways than they are tested on (Snell et al.
# 2017); gradient-based ones need the test's ways, fixed by their output layer.
RECIPES = {
    # shear distortions: -2.0 points of cross-validated Lake error; bfloat16 where native: 1.6-1.8x the
    # steps in the budget, -1.9 points with one core per model (BENCHMARKS.md)
    "protonet": Recipe(n_way=60, n_query=5, meta_batch=1, lr=1e-3, distortion="shear", precision="auto"),
    "matching": Recipe(n_way=20, n_query=5, meta_batch=2, lr=1e-3),
    "maml": Recipe(n_way=20, n_query=5, meta_batch=8, lr=1e-3, learner=MAML_INNER_LOOP),
    "fomaml": Recipe(n_way=20, n_query=5, meta_batch=8, lr=1e-3, learner=MAML_INNER_LOOP),
    # Nichol et al. 2018: outer step size 1.0 annealed to 0, 5 tasks per step;
    # the inner loop is the registry's, the paper's Omniglot one
    "reptile": Recipe(n_way=20, n_query=5, meta_batch=5, lr=1.0, outer="sgd"),
}


#: The precisions of :func:`train`'s ``precision``: "auto" is bfloat16 where the device computes in it natively
#: (:func:`native_bfloat16`) and the learner can use it (:attr:`MetaLearner.mixed_precision`), else float32.
PRECISIONS = ("auto", "float32", "bfloat16")


def native_bfloat16(device: str | torch.device) -> bool:
    """Whether ``device`` has bfloat16 arithmetic in hardware: a CPU with AVX512-BF16 or AMX, a CUDA GPU of
    compute capability 8.0 (Ampere) or newer. Elsewhere bfloat16 is emulated, slower than float32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(check is not None and check() for check in checks)
    return False


def resolve_precision(precision: str, learner: MetaLearner, device: str | torch.device) -> torch.dtype | None:
    """The :attr:`MetaLearner.training_dtype` that ``precision`` (one of :data:`PRECISIONS`) means for
    ``learner`` on ``device``: ``torch.bfloat16``, or None for float32.

    Raises
    ------
    ValueError
        For an unknown name, or "bfloat16" for a learner without mixed precision (the gradient-based ones).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bfloat16" and not learner.mixed_precision:
        raise ValueError(f"{type(learner).__name__} trains in float32 only; bfloat16 is for the metric learners "
                         "(protonet, matching)")
    if precision == "auto":
        return torch.bfloat16 if learner.mixed_precision and native_bfloat16(device) else None
    return torch.bfloat16 if precision == "bfloat16" else None


def build_learner(algorithm: str, n_way: int, image_size: int = 28, **options) -> MetaLearner:
    """A fresh learner with Conv4: the registry's defaults, the recipe's own
    choices over them, and ``options`` (the learner's constructor arguments,
    e.g. ``fce=True`` for Matching Nets) over both."""
    if algorithm not in RECIPES:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS)}")
    backbone = {"name": "conv4", "image_size": image_size}
    if algorithm in registry.GRADIENT_BASED:
        backbone["out_features"] = n_way  # a classifier; metric learners keep the embedding
    return registry.build(algorithm, backbone, **{**RECIPES[algorithm].learner, **options})


def trained_image_size(learner: MetaLearner) -> int:
    """The side of the images ``learner`` was built for: its Conv4's ``image_size`` (the first member's, for an
    ensemble), 28 where its backbone spec does not say (a user's module, or a file from before the setting)."""
    spec = learner.config.get("backbone") or {}
    while spec.get("name") == "concat":
        spec = spec["branches"][0]
    return spec.get("image_size", 28)


# The random distortions of training images, by name: "affine" rotates,
# scales and shifts; "shear" adds Koch et al.'s (2015) siamese-network
# distortions: a shear and a scale per axis (0.8 to 1.2); "elastic" adds to
# "shear" a smooth random displacement of every pixel (Simard et al. 2003),
# about a pixel and a half at 28 x 28, varying over a third of the image.
DISTORTIONS = {
    "affine": {"max_degrees": 10.0, "max_shift": 0.1, "max_scale": 0.1},
    "shear": {"max_degrees": 10.0, "max_shift": 0.1, "max_scale": 0.2, "max_shear": 0.3, "per_axis": True},
    "elastic": {"max_degrees": 10.0, "max_shift": 0.1, "max_scale": 0.2, "max_shear": 0.3, "per_axis": True,
                "elastic": 0.05},
}
#: The control points per side of the elastic displacement field.
ELASTIC_GRID = 4


def augment(images: torch.Tensor, generator: torch.Generator, max_degrees: float = 10.0,
            max_shift: float = 0.1, max_scale: float = 0.1, max_shear: float = 0.0,
            per_axis: bool = False, elastic: float = 0.0) -> torch.Tensor:
    """A random affine distortion of each image of ``(M, C, H, W)``: rotation,
    scaling and shift (as a fraction of the side), zero (paper) outside;
    with ``max_shear`` also a shear along each axis, with ``per_axis``
    a scale drawn for each axis, and with ``elastic`` a smooth displacement
    of every sampling point: normal with standard deviation ``elastic`` (a
    fraction of the side) at ``ELASTIC_GRID`` x ``ELASTIC_GRID`` control
    points, interpolated bicubically in between."""
    m = images.shape[0]
    u = torch.rand(m, 4, generator=generator, device="cpu").to(images.device) * 2 - 1
    angle = u[:, 0] * math.radians(max_degrees)
    scale = 1 + u[:, 1] * max_scale
    shift = torch.stack([u[:, 2], u[:, 3]], 1) * max_shift * 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    if max_shear or per_axis:
        v = torch.rand(m, 3, generator=generator, device="cpu").to(images.device) * 2 - 1
        scale_y = 1 + v[:, 0] * max_scale if per_axis else scale
        shear = torch.stack([torch.stack([torch.ones_like(angle), v[:, 1] * max_shear], 1),
                             torch.stack([v[:, 2] * max_shear, torch.ones_like(angle)], 1)], 1)
        rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
        linear = rotation @ shear @ torch.diag_embed(torch.stack([1 / scale, 1 / scale_y], 1))
    else:
        linear = torch.stack([torch.stack([cos / scale, -sin / scale], 1),
                              torch.stack([sin / scale, cos / scale], 1)], 1)
    theta = torch.cat([linear, shift.unsqueeze(-1)], 2)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    if elastic:
        control = torch.randn(m, 2, ELASTIC_GRID, ELASTIC_GRID, generator=generator, device="cpu")
        field = F.interpolate(control.to(images.device, images.dtype), size=images.shape[-2:], mode="bicubic",
                              align_corners=True)
        grid = grid + field.permute(0, 2, 3, 1) * (2 * elastic)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


class AugmentedEpisodes:
    """Episodes from ``sampler`` with every image distorted by :func:`augment`
    with the settings of ``DISTORTIONS[distortion]``."""

    def __init__(self, sampler: EpisodeSampler, seed: int = 0, distortion: str = "affine"):
        self.sampler = sampler
        self.generator = torch.Generator().manual_seed(seed)
        self.settings = DISTORTIONS[_check_distortion(distortion)]

    def sample(self, meta_batch: int) -> TaskBatch:
        batch = self.sampler.sample(meta_batch)

        def distort(x):
            return augment(x.flatten(0, 1), self.generator, **self.settings).view_as(x)

        return TaskBatch(distort(batch.support_x), batch.support_y, distort(batch.query_x), batch.query_y)


def evaluate_episodes(learner: MetaLearner, sampler: EpisodeSampler, n_episodes: int = 1000,
                      batch: int = 50, device: str | torch.device = "cpu") -> tuple[float, float]:
    """Mean query accuracy over ``n_episodes`` episodes and its 95% CI half-width."""
    learner.eval()
    accuracies = []
    done = 0
    while done < n_episodes:
        size = min(batch, n_episodes - done)
        tasks = sampler.sample(size).to(device)
        for i in range(size):  # one episode at a time: per-episode accuracy for the CI
            accuracies.append(learner.evaluate(tasks[i])["accuracy"])
        done += size
    return mean_ci(accuracies)


def pixel_nearest_neighbour_accuracy(sampler: EpisodeSampler, n_episodes: int = 1000) -> tuple[float, float]:
    """The baseline: each query takes the label of the nearest support image in pixel space."""
    accuracies = []
    for _ in range(n_episodes):
        task = sampler.sample(1)
        distances = torch.cdist(task.query_x[0].flatten(1), task.support_x[0].flatten(1))
        predicted = task.support_y[0][distances.argmin(1)]
        accuracies.append(float((predicted == task.query_y[0]).float().mean()))
    return mean_ci(accuracies)


SCORINGS = ("nearest", "two-way", "two-way-inductive")
# Inductive two-way scoring (LearnerClassifier): random distortions of each
# training image that stand in for the run's other queries
REFERENCE_VIEWS = 8
# Test-time fine-tuning (LearnerClassifier's fine_tune_steps): queries per
# training image and step, and the distortions that make them
FINE_TUNE_QUERIES = 4
FINE_TUNE_DISTORTION = "shear"
FINE_TUNE_LR = 1e-4


def fine_tune(learner: MetaLearner, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float,
              generator: torch.Generator, n_query: int = FINE_TUNE_QUERIES,
              distortion: str = FINE_TUNE_DISTORTION) -> MetaLearner:
    """A copy of the metric learner ``learner`` trained further on one task's
    labelled images ``x`` ``(S, C, H, W)``, ``y`` ``(S,)`` (codes ``0 .. n - 1``).

    Each of ``steps`` Adam steps (rate ``lr``) is one episode made of the
    task's images alone: a random distortion (``DISTORTIONS[distortion]``) of
    every image is the support set and ``n_query`` other distortions of each
    are the queries, scored by the learner's own meta-training loss. Batch
    norm keeps its running statistics (evaluation mode), so the few images do
    not shift them. ``learner`` itself is left unchanged.
    """
    _check_metric(learner)
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    settings = DISTORTIONS[_check_distortion(distortion)]
    tuned = copy.deepcopy(learner)
    optimizer = torch.optim.Adam(tuned.parameters(), lr=lr)
    query_y = y.repeat(n_query)
    with evaluation_mode(tuned):
        for _ in range(int(steps)):
            support = augment(x, generator, **settings)
            query = augment(x.repeat(n_query, 1, 1, 1), generator, **settings)
            loss, _ = tuned.query_loss(TaskBatch(support[None], y[None], query[None], query_y[None]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return tuned.eval()


class LearnerClassifier:
    """``fit``/``predict`` over a meta-learner, for :func:`autometa.data.score_lake`:
    ``fit`` adapts to the training images, ``predict`` returns their labels.

    Parameters
    ----------
    learner : MetaLearner
    device : str or torch.device, default="cpu"
    scoring : {"nearest", "two-way", "two-way-inductive"}, default="nearest"
        How queries are matched to classes. ``"nearest"``: each query alone,
        by the learner's logits. ``"two-way"``: by the sum of two
        log-probabilities, the class given the query (softmax over classes)
        and the query given the class (softmax over the queries of the same
        ``predict`` call), which discounts a class that is close to every
        query. Two-way scoring is transductive: a query's label depends on
        the other queries predicted with it. ``"two-way-inductive"``: the
        same sum, with the other queries replaced by ``REFERENCE_VIEWS``
        random affine distortions of each training image of the other
        classes (their mass averaged over the distortions, so each other
        class counts as one query): it discounts a class that is close to
        the other classes' images, and scores each query alone.
    views : int, default=1
        Test-time augmentation: each image is seen as itself and ``views - 1``
        random affine distortions (:func:`augment`, the ``"affine"`` training
        distortions, drawn from ``seed``); the learner adapts to every view of
        the training images and a query's logits are averaged over its views.
    fine_tune_steps : int, default=0
        With a positive number, ``fit`` first trains a copy of a metric
        learner's embedding on the training images alone for that many steps
        (:func:`fine_tune`): it learns to tell these classes apart under
        random distortions. It uses no query, so it is not transductive.
    fine_tune_lr : float, default=1e-4
        Adam's learning rate for ``fine_tune_steps``.
    seed : int, default=0
    """

    def __init__(self, learner: MetaLearner, device: str | torch.device = "cpu", scoring: str = "nearest",
                 views: int = 1, fine_tune_steps: int = 0, fine_tune_lr: float = FINE_TUNE_LR, seed: int = 0):
        if scoring not in SCORINGS:
            raise ValueError(f"unknown scoring {scoring!r}; expected one of {', '.join(SCORINGS)}")
        if int(views) != views or views < 1:
            raise ValueError(f"views must be a positive integer, got {views!r}")
        if int(fine_tune_steps) != fine_tune_steps or fine_tune_steps < 0:
            raise ValueError(f"fine_tune_steps must be a non-negative integer, got {fine_tune_steps!r}")
        if fine_tune_steps:
            _check_metric(learner)
        if not fine_tune_lr > 0:
            raise ValueError(f"fine_tune_lr must be positive, got {fine_tune_lr!r}")
        self.learner = learner.eval()
        self.device = torch.device(device)
        self.scoring = scoring
        self.views = int(views)
        self.fine_tune_steps = int(fine_tune_steps)
        self.fine_tune_lr = fine_tune_lr
        self.seed = seed

    def _views(self, X: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        """``(views, n, 1, H, W)``: the images, then their distorted copies."""
        x = torch.as_tensor(X, dtype=torch.float32, device=self.device).unsqueeze(1)
        return torch.stack([x] + [augment(x, generator) for _ in range(self.views - 1)])

    def fit(self, X: np.ndarray, y: np.ndarray) -> "LearnerClassifier":
        self.classes_, codes = np.unique(y, return_inverse=True)
        labels = torch.as_tensor(codes, device=self.device)
        learner = self.learner
        if self.fine_tune_steps:
            images = torch.as_tensor(X, dtype=torch.float32, device=self.device).unsqueeze(1)
            learner = fine_tune(learner, images, labels, self.fine_tune_steps, self.fine_tune_lr,
                                torch.Generator().manual_seed(self.seed + 2))
        x = self._views(X, torch.Generator().manual_seed(self.seed))
        self.predictor_ = learner.adapt(x.flatten(0, 1), labels.repeat(self.views))
        if self.scoring == "two-way-inductive":
            self.reference_ = self._reference(x[0], labels)
        return self

    def _reference(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``(n_classes,)``: for each class, the log of the softmax mass its logits give distortions of the
        training images ``x`` ``(n, 1, H, W)`` of the other classes, averaged over the distortions."""
        generator = torch.Generator().manual_seed(self.seed + 3)
        reference = torch.cat([augment(x, generator) for _ in range(REFERENCE_VIEWS)])
        with torch.no_grad():
            logits = self.predictor_(reference)  # (REFERENCE_VIEWS * n, n_classes)
        own = labels.repeat(REFERENCE_VIEWS)[:, None] == torch.arange(logits.shape[1], device=self.device)
        return logits.masked_fill(own, float("-inf")).logsumexp(0) - math.log(REFERENCE_VIEWS)

    def predict(self, X: np.ndarray) -> np.ndarray:
        x = self._views(X, torch.Generator().manual_seed(self.seed + 1))
        with torch.no_grad():
            logits = self.predictor_(x.flatten(0, 1)).view(self.views, len(X), -1).mean(0)
            if self.scoring == "two-way":
                logits = logits.log_softmax(-1) + logits.log_softmax(0)
            elif self.scoring == "two-way-inductive":
                logits = logits.log_softmax(-1) + logits - torch.logaddexp(logits, self.reference_)
            codes = logits.argmax(-1).cpu().numpy()
        return self.classes_[codes]


def train(
    dataset,
    algorithm: str = "protonet",
    n_way: int | None = None,
    k_shot: int = 1,
    steps: int | None = None,
    time_budget: float | None = None,
    val_alphabets: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    augmentation: bool = True,
    distortion: str | None = None,
    verbose: bool = False,
    distributed: bool = False,
    meta_batch: int | None = None,
    learner_options: dict | None = None,
    precision: str | None = None,
    ensemble: int = 1,
) -> tuple[MetaLearner, dict]:
    """Meta-train ``algorithm`` on an :class:`~autometa.data.OmniglotDataset`.

    Classes are the dataset's classes (pass ``rotations=True`` to the loader
    for rotated copies as new classes); episodes are drawn within one
    alphabet. ``val_alphabets`` (default: the alphabet with the most
    characters, when there are three or more) are held out to pick the best
    checkpoint. Returns the learner and a summary of the run.

    Training stops after ``steps`` meta-steps or ``time_budget`` seconds,
    whichever comes first; without either it runs for :data:`TIME_BUDGET`
    seconds (``steps`` alone are all taken, however long they take).

    ``meta_batch`` (default: the recipe's) is the number of episodes per
    meta-step; a distributed run needs at least one per process.
    ``learner_options`` go to :func:`build_learner` (e.g. ``{"fce": True}``).
    ``precision`` (:data:`PRECISIONS`; default: the recipe's) is the
    precision the backbone trains in (:attr:`MetaLearner.training_dtype`,
    cleared on the returned learner): bfloat16 under autocast, or float32.
    ``distortion`` names the random distortions of ``augmentation``
    (:data:`DISTORTIONS`; default: the recipe's, ``"shear"`` for ProtoNet
    and ``"affine"`` for the others).

    ``distributed=True`` trains as one rank of a ``torchrun`` launch (see
    :mod:`autometa.meta.distributed`): call it on every rank with the same
    arguments and this rank's ``device``; only rank 0 validates, so only
    rank 0's learner is the selected one, and only rank 0 should save it.

    ``ensemble`` > 1 (ProtoNet only) trains that many models one after the
    other, with seeds ``seed``, ``seed + 1``, ..., each on an equal share of
    ``steps`` and of the time budget, and returns them as one ProtoNet
    (:meth:`~autometa.meta.ProtoNet.ensemble`: its logits are the sum of
    theirs); the summary's ``steps`` and ``seconds`` are totals, its
    ``best_step`` and ``best_val_accuracy`` one per model.
    """
    if algorithm not in RECIPES:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS)}")
    if isinstance(ensemble, bool) or int(ensemble) != ensemble or ensemble < 1:
        raise ValueError(f"ensemble must be a positive integer, got {ensemble!r}")
    if ensemble > 1:
        if algorithm != "protonet":
            raise ValueError(f"an ensemble is of ProtoNets (their logits add up); got algorithm {algorithm!r}")
        if steps is not None and steps < ensemble:
            raise ValueError(f"{steps} steps cannot be shared by an ensemble of {ensemble}; give at least one each")
        if steps is None and time_budget is None:
            time_budget = TIME_BUDGET
        members, summaries = [], []
        for i in range(int(ensemble)):
            member, member_summary = train(
                dataset, algorithm, n_way=n_way, k_shot=k_shot,
                steps=None if steps is None else steps // ensemble + (i < steps % ensemble),
                time_budget=None if time_budget is None else time_budget / ensemble, val_alphabets=val_alphabets,
                device=device, seed=seed + i, augmentation=augmentation, distortion=distortion, verbose=verbose,
                distributed=distributed, meta_batch=meta_batch, learner_options=learner_options,
                precision=precision)
            members.append(member)
            summaries.append(member_summary)
        summary = {**summaries[0], "steps": sum(s["steps"] for s in summaries),
                   "seconds": sum(s["seconds"] for s in summaries), "ensemble": int(ensemble),
                   "best_val_accuracy": [s["best_val_accuracy"] for s in summaries],
                   "best_step": [s["best_step"] for s in summaries]}
        return type(members[0]).ensemble(members), summary
    recipe = RECIPES[algorithm]
    distortion = _check_distortion(distortion or recipe.distortion)
    n_way = n_way or recipe.n_way
    if steps is None and time_budget is None:
        time_budget = TIME_BUDGET
    torch.manual_seed(seed)
    names = dataset.alphabet_names
    if val_alphabets is None:
        val_alphabets = default_val_alphabets(dataset)
    train_set = dataset.subset_alphabets([a for a in names if a not in val_alphabets])
    x = torch.from_numpy(train_set.images).unsqueeze(1)
    train_way = min(n_way, _max_way(train_set))
    sampler = EpisodeSampler(x, train_set.labels, train_way, k_shot, recipe.n_query,
                             groups=train_set.groups, random_state=seed)
    tasks = AugmentedEpisodes(sampler, seed, distortion) if augmentation else sampler
    learner = build_learner(algorithm, train_way, image_size=train_set.images.shape[-1],
                            **(learner_options or {})).to(device)
    learner.training_dtype = resolve_precision(precision or recipe.precision, learner, device)
    callbacks = []
    if val_alphabets:
        val_set = dataset.subset_alphabets(val_alphabets)
        # select for what Lake's benchmark asks (20-way within an alphabet); the
        # output layer of gradient-based learners fixes their number of ways
        val_way = train_way if algorithm in registry.GRADIENT_BASED else min(20, _max_way(val_set))
        val_sampler = EpisodeSampler(torch.from_numpy(val_set.images).unsqueeze(1), val_set.labels, val_way,
                                     k_shot, 5, groups=val_set.groups, random_state=seed + 1)
        every = 200 if steps is None else max(10, min(200, steps // 10))  # ten checks in a short run
        callbacks.append(Validation(val_sampler, every=every, n_tasks=100))
    start = time.perf_counter()
    optimizer = torch.optim.SGD(learner.parameters(), lr=recipe.lr) if recipe.outer == "sgd" else None
    history = meta_train(learner, tasks, steps=steps, time_budget=time_budget,
                         meta_batch=meta_batch or recipe.meta_batch, lr=recipe.lr, optimizer=optimizer,
                         callbacks=callbacks, verbose=verbose, distributed=distributed)
    if callbacks:
        callbacks[0].restore_best(learner)
    training_dtype, learner.training_dtype = learner.training_dtype, None
    summary = {
        "algorithm": algorithm,
        "steps": len(history),
        "seconds": time.perf_counter() - start,
        "n_way": train_way,
        "k_shot": k_shot,
        "distortion": distortion if augmentation else None,
        "precision": "bfloat16" if training_dtype == torch.bfloat16 else "float32",
        "ensemble": 1,
        "val_alphabets": list(val_alphabets),
        "best_val_accuracy": callbacks[0].best_score if callbacks else None,
        "best_step": callbacks[0].best_step if callbacks else None,
    }
    return learner, summary


def default_val_alphabets(dataset) -> list[str]:
    """The alphabets :func:`train` holds out for checkpoint selection by
    default: the one with the most characters, when there are three or more."""
    names = dataset.alphabet_names
    sizes = [len(np.unique(dataset.labels[dataset.alphabets == a])) for a in range(len(names))]
    return [names[int(np.argmax(sizes))]] if len(names) >= 3 else []


def _check_metric(learner: MetaLearner) -> None:
    metric = tuple(registry.learner_class(name) for name in registry.METRIC_BASED)
    if not isinstance(learner, metric):
        raise ValueError(f"fine-tuning needs a metric learner ({', '.join(c.__name__ for c in metric)}), got "
                         f"{type(learner).__name__}; gradient-based learners fine-tune in adapt already")


def _check_distortion(name: str) -> str:
    if name not in DISTORTIONS:
        raise ValueError(f"unknown distortion {name!r}; expected one of {', '.join(DISTORTIONS)}")
    return name


def _max_way(dataset) -> int:
    """The most classes any one alphabet has (episodes are within an alphabet)."""
    return max(len(np.unique(dataset.labels[dataset.alphabets == a])) for a in range(len(dataset.alphabet_names)))
