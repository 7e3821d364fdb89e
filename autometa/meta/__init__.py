"""Few-shot learners in torch. Importing this package never imports Optuna."""

from autometa.meta import distributed, registry
from autometa.meta.base import MetaLearner, available_pretrained, pretrained_path
from autometa.meta.maml import MAML
from autometa.meta.matching import MatchingNet
from autometa.meta.protonet import ProtoNet
from autometa.meta.reptile import Reptile
from autometa.meta.training import TrainState, Validation, meta_train

__all__ = ["MetaLearner", "MAML", "MatchingNet", "ProtoNet", "Reptile", "TrainState", "Validation", "meta_train", "distributed",
           "registry", "available_pretrained", "pretrained_path"]
