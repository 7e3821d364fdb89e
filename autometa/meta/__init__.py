"""Few-shot learners in torch. Importing this package never imports Optuna."""

from autometa.meta.base import MetaLearner
from autometa.meta.maml import MAML
from autometa.meta.training import TrainState, Validation, meta_train

__all__ = ["MetaLearner", "MAML", "TrainState", "Validation", "meta_train"]
