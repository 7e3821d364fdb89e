"""Tasks, the one currency of autometa: a support set and a query set.

:class:`TaskBatch` holds a meta-batch of tasks as dense tensors; the samplers
make them: :class:`EpisodeSampler` (N-way K-shot classification, optionally
within groups), :class:`SinusoidTasks` (MAML's regression family) and
:class:`GroupedRegressionTasks` (one regression task per group of a table).
"""

from autometa.tasks.episodes import EpisodeSampler, split_classes
from autometa.tasks.regression import GroupedRegressionTasks, SinusoidTasks
from autometa.tasks.task import TaskBatch

__all__ = ["TaskBatch", "EpisodeSampler", "split_classes", "SinusoidTasks", "GroupedRegressionTasks"]
