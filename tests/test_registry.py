"""The registry of meta-learners: algorithm names, classes, and the one home of their defaults."""

import pytest
import torch

from autometa.apps import omniglot_recipe
from autometa.meta import MAML, MatchingNet, MetaLearner, ProtoNet, Reptile, registry
from autometa.meta.base import FORMAT, FORMAT_VERSION

MLP = {"name": "mlp", "in_features": 3, "out_features": 2, "hidden": [4]}


@pytest.mark.parametrize(
    "algorithm,cls", [("maml", MAML), ("fomaml", MAML), ("reptile", Reptile), ("protonet", ProtoNet),
                      ("matching", MatchingNet)]
)
def test_every_algorithm_has_its_class(algorithm, cls):
    assert registry.learner_class(algorithm) is cls
    learner = registry.build(algorithm, MLP)
    assert type(learner) is cls
    assert registry.class_named(cls.__name__) is cls
    if cls is MAML:
        assert learner.first_order == (algorithm == "fomaml")


# The numbers the estimators' benchmarks (BENCHMARKS.md, tabular) were run with.
EXPECTED = {
    ("maml", "classification"): {"inner_lr": 0.4, "inner_steps": 5},
    ("fomaml", "classification"): {"inner_lr": 0.4, "inner_steps": 5},
    ("reptile", "classification"): {"inner_lr": 1e-3, "inner_steps": 5, "inner_optimizer": "adam"},
    ("maml", "regression"): {"inner_lr": 0.01, "inner_steps": 5},
    ("fomaml", "regression"): {"inner_lr": 0.01, "inner_steps": 5},
    ("reptile", "regression"): {"inner_lr": 0.02, "inner_steps": 5, "inner_optimizer": "sgd"},
}


@pytest.mark.parametrize("algorithm,task_type", list(EXPECTED))
def test_the_classes_take_their_defaults_from_the_registry(algorithm, task_type):
    assert registry.defaults(algorithm, task_type) == EXPECTED[algorithm, task_type]
    cls = registry.learner_class(algorithm)
    learner = cls(MLP, task_type=task_type)
    for name, value in EXPECTED[algorithm, task_type].items():
        assert getattr(learner, name) == value and learner.config[name] == value, name


def test_none_means_the_registry_default_and_given_values_win():
    assert registry.with_defaults("maml", "regression", inner_lr=None, inner_steps=2) == {"inner_lr": 0.01,
                                                                                          "inner_steps": 2}
    learner = registry.build("reptile", MLP, "regression", inner_steps=7)
    assert (learner.inner_lr, learner.inner_steps, learner.inner_optimizer) == (0.02, 7, "sgd")


def test_the_omniglot_recipe_names_its_own_values_and_takes_the_rest_from_the_registry():
    maml = omniglot_recipe.build_learner("maml", n_way=5, image_size=16)
    assert (maml.inner_lr, maml.inner_steps, maml.first_order) == (0.1, 3, False)
    fomaml = omniglot_recipe.build_learner("fomaml", n_way=5, image_size=16)
    assert (fomaml.inner_lr, fomaml.inner_steps, fomaml.first_order) == (0.1, 3, True)
    reptile = omniglot_recipe.build_learner("reptile", n_way=5, image_size=16)
    assert (reptile.inner_lr, reptile.inner_steps, reptile.inner_optimizer) == (1e-3, 5, "adam")


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: registry.build("siamese", MLP), "unknown algorithm 'siamese'"),
        (lambda: registry.build("protonet", MLP, "regression"), "protonet learns classification only"),
        (lambda: registry.defaults("maml", "ranking"), "task_type must be"),
    ],
)
def test_unknown_algorithms_and_task_types(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_loading_finds_the_class_in_the_registry(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"format": FORMAT, "version": FORMAT_VERSION, "class": "Siamese", "config": "{}", "state_dict": {}},
               path)
    with pytest.raises(ValueError, match="unknown learner class 'Siamese'"):
        MetaLearner.load(path)
    registry.build("matching", MLP).save(path)
    assert type(MetaLearner.load(path)) is MatchingNet
