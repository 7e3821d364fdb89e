"""The Omniglot recipe: learners by name, augmentation, evaluation, training."""

import math

import numpy as np
import pytest
import torch

from autometa.apps import omniglot_recipe as fewshot
from autometa.data import OmniglotDataset
from autometa.meta import MAML, MatchingNet, ProtoNet, Reptile, protonet
from autometa.tasks import EpisodeSampler


def tiny_dataset(n_alphabets=3, chars=6, drawers=8, size=16, seed=0):
    """Characters as random binary patterns, each drawing shifted by up to 2
    pixels with a tenth of its pixels flipped: Omniglot-shaped, hard for
    pixel distances, learnable by a convolutional embedding."""
    rng = np.random.default_rng(seed)
    n_classes = n_alphabets * chars
    prototypes = rng.random((n_classes, size, size)) > 0.7
    images = np.repeat(prototypes, drawers, axis=0)
    shifts = rng.integers(-2, 3, size=(len(images), 2))
    images = np.stack([np.roll(image, tuple(shift), axis=(0, 1)) for image, shift in zip(images, shifts)])
    images = (images ^ (rng.random(images.shape) < 0.1)).astype(np.float32)
    labels = np.repeat(np.arange(n_classes), drawers)
    return OmniglotDataset(
        images=images,
        labels=labels,
        alphabets=labels // chars,
        alphabet_names=[f"A{i}" for i in range(n_alphabets)],
        class_names=[f"A{c // chars}/character{c:02d}" for c in range(n_classes)],
        drawers=np.tile(np.arange(drawers), n_classes),
        rotation=np.zeros(len(labels), dtype=np.int64),
    )


@pytest.mark.parametrize(
    "algorithm,cls", [("protonet", ProtoNet), ("matching", MatchingNet), ("maml", MAML), ("fomaml", MAML), ("reptile", Reptile)]
)
def test_build_learner(algorithm, cls):
    learner = fewshot.build_learner(algorithm, n_way=5, image_size=16)
    assert isinstance(learner, cls)
    assert learner.config["backbone"]["name"] == "conv4"
    with pytest.raises(ValueError, match="unknown algorithm"):
        fewshot.build_learner("siamese", 5)


def test_learner_options_go_over_the_recipe():
    matching = fewshot.build_learner("matching", 5, image_size=16, fce=True)
    assert matching.fce and matching.config["fce"] and not fewshot.build_learner("matching", 5, image_size=16).fce
    maml = fewshot.build_learner("maml", 5, image_size=16, inner_steps=1)  # over the recipe's 3
    assert maml.config["inner_steps"] == 1 and maml.config["inner_lr"] == fewshot.MAML_INNER_LOOP["inner_lr"]
    learner, summary = fewshot.train(tiny_dataset(), "matching", n_way=5, steps=2, time_budget=None,
                                     learner_options={"fce": True})
    assert learner.fce and summary["steps"] == 2


def test_augment_keeps_shape_and_range_and_is_seeded():
    images = torch.rand(6, 1, 16, 16)
    a = fewshot.augment(images, torch.Generator().manual_seed(0))
    b = fewshot.augment(images, torch.Generator().manual_seed(0))
    assert a.shape == images.shape and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1 and not torch.allclose(a, images)
    identity = fewshot.augment(images, torch.Generator(), max_degrees=0, max_shift=0, max_scale=0)
    torch.testing.assert_close(identity, images, atol=1e-5, rtol=0)


def test_default_distortion_is_the_affine_one_and_shear_and_elastic_add_their_own_draws():
    images = torch.rand(6, 1, 16, 16)
    affine = fewshot.augment(images, torch.Generator().manual_seed(0), **fewshot.DISTORTIONS["affine"])
    assert torch.equal(affine, fewshot.augment(images, torch.Generator().manual_seed(0)))
    # the same rotation, scale and shift draws written out as the affine matrix they make
    u = torch.rand(6, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    angle, scale = u[:, 0] * math.radians(10), 1 + u[:, 1] * 0.1
    cos, sin, shift = torch.cos(angle) / scale, torch.sin(angle) / scale, u[:, 2:] * 0.2
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = torch.nn.functional.affine_grid(theta, [6, 1, 16, 16], align_corners=False)
    torch.testing.assert_close(affine, torch.nn.functional.grid_sample(images, grid, align_corners=False))
    sheared = fewshot.augment(images, torch.Generator().manual_seed(0), **fewshot.DISTORTIONS["shear"])
    again = fewshot.augment(images, torch.Generator().manual_seed(0), **fewshot.DISTORTIONS["shear"])
    assert torch.equal(sheared, again) and not torch.allclose(sheared, affine)
    assert sheared.min() >= 0 and sheared.max() <= 1
    identity = fewshot.augment(images, torch.Generator(), max_degrees=0, max_shift=0, max_scale=0, max_shear=0,
                               per_axis=True)
    torch.testing.assert_close(identity, images, atol=1e-5, rtol=0)
    elastic = fewshot.augment(images, torch.Generator().manual_seed(0), **fewshot.DISTORTIONS["elastic"])
    assert torch.equal(elastic, fewshot.augment(images, torch.Generator().manual_seed(0),
                                                **fewshot.DISTORTIONS["elastic"]))
    assert not torch.allclose(elastic, sheared) and elastic.min() >= 0 and elastic.max() <= 1
    # the elastic field is drawn after the shear's draws: a vanishing one leaves the shear's image
    settings = dict(fewshot.DISTORTIONS["elastic"], elastic=1e-7)
    torch.testing.assert_close(fewshot.augment(images, torch.Generator().manual_seed(0), **settings), sheared,
                               atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="unknown distortion 'wobble'"):
        fewshot.AugmentedEpisodes(None, distortion="wobble")
    with pytest.raises(ValueError, match="unknown distortion 'wobble'"):
        fewshot.train(tiny_dataset(), "protonet", n_way=5, steps=1, distortion="wobble")
    _, summary = fewshot.train(tiny_dataset(), "protonet", n_way=5, steps=2, distortion="affine")
    assert summary["distortion"] == "affine" and summary["steps"] == 2
    # without a choice, the algorithm's recipe: shear for ProtoNet, affine for the others
    assert fewshot.train(tiny_dataset(), "protonet", n_way=5, steps=1)[1]["distortion"] == "shear"
    assert fewshot.train(tiny_dataset(), "matching", n_way=5, steps=1)[1]["distortion"] == "affine"
    _, summary = fewshot.train(tiny_dataset(), "protonet", n_way=5, steps=2, augmentation=False)
    assert summary["distortion"] is None


def test_evaluation_helpers():
    data = tiny_dataset()
    sampler = EpisodeSampler(torch.from_numpy(data.images).unsqueeze(1), data.labels, 5, 1, 3, random_state=0)
    accuracy, half = fewshot.pixel_nearest_neighbour_accuracy(sampler, 30)
    assert 0 <= accuracy <= 1 and 0 <= half < 0.2
    learner = fewshot.build_learner("protonet", 5, image_size=16)
    accuracy, half = fewshot.evaluate_episodes(learner, sampler, 20, batch=8)
    assert 0 <= accuracy <= 1 and half >= 0


def test_learner_classifier_takes_any_labels():
    data = tiny_dataset()
    clf = fewshot.LearnerClassifier(fewshot.build_learner("protonet", 5, image_size=16))
    X = data.images[data.drawers == 0][:4]
    y = np.array(["b", "a", "c", "d"])
    assert set(clf.fit(X, y).predict(data.images[:10])) <= set(y)


class FixedLogits:
    """A stand-in learner whose adapted predictor returns given logits."""

    def __init__(self, logits):
        self.logits = torch.as_tensor(logits)
        self.support_sizes = []

    def eval(self):
        return self

    def adapt(self, x, y):
        self.support_sizes.append(len(x))
        return lambda query: self.logits.repeat(len(query) // len(self.logits), 1)


def test_two_way_scoring_discounts_a_class_close_to_every_query():
    # class 0 is the nearest class of every query; only query 0 is really nearer to it than to its own class
    logits = [[-1.0, -3.0, -3.0], [-1.0, -1.5, -3.0], [-1.0, -3.0, -1.5]]
    X, y = np.zeros((3, 4, 4), np.float32), np.array([0, 1, 2])
    nearest = fewshot.LearnerClassifier(FixedLogits(logits)).fit(X, y).predict(X)
    two_way = fewshot.LearnerClassifier(FixedLogits(logits), scoring="two-way").fit(X, y).predict(X)
    assert nearest.tolist() == [0, 0, 0] and two_way.tolist() == [0, 1, 2]


def test_inductive_two_way_scoring_discounts_a_class_close_to_the_other_classes_images():
    # the training images stand in for the queries: class 0 is close to the images of classes 1 and 2
    logits = [[-1.0, -3.0, -3.0], [-1.0, -1.5, -3.0], [-1.0, -3.0, -1.5]]
    X, y = np.zeros((3, 4, 4), np.float32), np.array([0, 1, 2])
    stub = FixedLogits(logits)
    clf = fewshot.LearnerClassifier(stub, scoring="two-way-inductive").fit(X, y)
    assert stub.support_sizes == [3] and clf.predict(X).tolist() == [0, 1, 2]
    # per class: the log of the mean mass over the distortions (here all alike) of the other classes' images
    expected = torch.tensor([np.logaddexp(-1.0, -1.0), np.logaddexp(-3.0, -3.0), np.logaddexp(-3.0, -3.0)])
    torch.testing.assert_close(clf.reference_, expected.float())


def untrained_one_shot_task():
    """A fresh ProtoNet, five training images of five classes, and five queries of them by another drawer."""
    data = tiny_dataset()
    torch.manual_seed(0)
    learner = fewshot.build_learner("protonet", 5, image_size=16)
    return learner, data.images[data.drawers == 0][:5], np.arange(5), data.images[data.drawers == 1][:5]


def test_inductive_two_way_scores_each_query_alone():
    learner, X, y, queries = untrained_one_shot_task()
    clf = fewshot.LearnerClassifier(learner, scoring="two-way-inductive").fit(X, y)
    together = clf.predict(queries)
    assert together.tolist() == [clf.predict(queries[i:i + 1])[0] for i in range(5)]
    two_way = fewshot.LearnerClassifier(learner, scoring="two-way").fit(X, y)
    assert not hasattr(two_way, "reference_")


def test_views_adapt_to_distorted_copies_and_average_the_logits():
    learner, X, y, queries = untrained_one_shot_task()
    one = fewshot.LearnerClassifier(learner).fit(X, y)
    first = fewshot.LearnerClassifier(learner, views=4, seed=3).fit(X, y).predict(queries)
    assert np.array_equal(first, fewshot.LearnerClassifier(learner, views=4, seed=3).fit(X, y).predict(queries))
    stub = FixedLogits(np.eye(5))
    fewshot.LearnerClassifier(stub, views=4).fit(X, y)
    assert stub.support_sizes == [20]
    assert set(one.predict(queries)) <= set(y)
    with pytest.raises(ValueError, match="unknown scoring"):
        fewshot.LearnerClassifier(learner, scoring="hungarian")
    with pytest.raises(ValueError, match="views must be a positive integer"):
        fewshot.LearnerClassifier(learner, views=0)


def test_fine_tune_trains_a_copy_on_the_support_images_and_leaves_the_learner_alone():
    data = tiny_dataset()
    torch.manual_seed(0)
    learner = fewshot.build_learner("protonet", 5, image_size=16)
    running_mean = [m.running_mean.clone() for m in learner.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [p.detach().clone() for p in learner.parameters()]
    x = torch.from_numpy(data.images[data.drawers == 0][:5]).unsqueeze(1)
    y = torch.arange(5)
    tuned = fewshot.fine_tune(learner, x, y, steps=3, lr=1e-2, generator=torch.Generator().manual_seed(0))
    assert tuned is not learner and not tuned.training
    assert all(torch.equal(a, b) for a, b in zip(before, learner.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before, tuned.parameters()))
    tuned_mean = [m.running_mean for m in tuned.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(running_mean, tuned_mean))  # evaluation mode: statistics kept
    again = fewshot.fine_tune(learner, x, y, steps=3, lr=1e-2, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(tuned.parameters(), again.parameters()))
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        fewshot.fine_tune(learner, x, y, steps=0, lr=1e-2, generator=torch.Generator())
    with pytest.raises(ValueError, match="lr must be positive"):
        fewshot.fine_tune(learner, x, y, steps=1, lr=0.0, generator=torch.Generator())
    with pytest.raises(ValueError, match="needs a metric learner"):
        fewshot.fine_tune(fewshot.build_learner("maml", 5, image_size=16), x, y, steps=1, lr=1e-3,
                          generator=torch.Generator())


def test_learner_classifier_fine_tunes_before_adapting_and_checks_its_settings():
    data = tiny_dataset()
    torch.manual_seed(0)
    learner = fewshot.build_learner("protonet", 5, image_size=16)
    X, y = data.images[data.drawers == 0][:5], np.array([3, 1, 4, 0, 2])
    queries = data.images[data.drawers == 1][:5]
    tuned = fewshot.LearnerClassifier(learner, fine_tune_steps=2, seed=1).fit(X, y)
    assert np.array_equal(tuned.predict(queries),
                          fewshot.LearnerClassifier(learner, fine_tune_steps=2, seed=1).fit(X, y).predict(queries))
    assert set(tuned.predict(queries)) <= set(y)
    with pytest.raises(ValueError, match="fine_tune_steps must be a non-negative integer"):
        fewshot.LearnerClassifier(learner, fine_tune_steps=-1)
    with pytest.raises(ValueError, match="fine_tune_lr must be positive"):
        fewshot.LearnerClassifier(learner, fine_tune_steps=1, fine_tune_lr=-1.0)
    with pytest.raises(ValueError, match="gradient-based learners fine-tune in adapt"):
        fewshot.LearnerClassifier(fewshot.build_learner("reptile", 5, image_size=16), fine_tune_steps=1)


def test_fine_tuning_on_the_support_images_alone_beats_the_untrained_embedding():
    # 6-way one-shot episodes (drawer 0's images the support set, each other
    # drawer's the queries): an untrained Conv4 against the same network
    # fine-tuned on the six support images (seeds 0-2: +0.12 to +0.24)
    data = tiny_dataset(n_alphabets=1, chars=6, drawers=8)
    torch.manual_seed(0)
    learner = fewshot.build_learner("protonet", 6, image_size=16)
    plain, tuned = [], []
    for drawer in range(1, 8):
        support = data.images[data.drawers == 0]
        query, truth = data.images[data.drawers == drawer], data.labels[data.drawers == drawer]
        labels = data.labels[data.drawers == 0]
        plain.append((fewshot.LearnerClassifier(learner).fit(support, labels).predict(query) == truth).mean())
        clf = fewshot.LearnerClassifier(learner, fine_tune_steps=30, fine_tune_lr=1e-3, seed=drawer)
        tuned.append((clf.fit(support, labels).predict(query) == truth).mean())
    assert np.mean(tuned) > np.mean(plain) + 0.1


def test_precision_resolves_per_learner_and_device(monkeypatch):
    protonet_learner = fewshot.build_learner("protonet", 5, image_size=16)
    maml = fewshot.build_learner("maml", 5, image_size=16)
    assert fewshot.resolve_precision("float32", protonet_learner, "cpu") is None
    assert fewshot.resolve_precision("bfloat16", protonet_learner, "cpu") is torch.bfloat16
    assert fewshot.resolve_precision("float32", maml, "cpu") is None
    with pytest.raises(ValueError, match="MAML trains in float32 only"):
        fewshot.resolve_precision("bfloat16", maml, "cpu")
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16, got 'half'"):
        fewshot.resolve_precision("half", protonet_learner, "cpu")
    for native in (True, False):
        monkeypatch.setattr(fewshot, "native_bfloat16", lambda device, native=native: native)
        assert fewshot.resolve_precision("auto", protonet_learner, "cpu") is (torch.bfloat16 if native else None)
        assert fewshot.resolve_precision("auto", maml, "cpu") is None  # never an error


def test_native_bfloat16_follows_the_hardware(monkeypatch):
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    assert not fewshot.native_bfloat16("cpu")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert fewshot.native_bfloat16("cpu")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")  # older torch: the check is missing, not an error
    assert not fewshot.native_bfloat16(torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for capability, native in (((7, 5), False), ((8, 0), True), ((9, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert fewshot.native_bfloat16("cuda:0") is native
    assert not fewshot.native_bfloat16("meta")


def test_train_in_bfloat16_leaves_a_full_precision_learner():
    learner, summary = fewshot.train(tiny_dataset(), "protonet", n_way=5, steps=2, precision="bfloat16")
    assert summary["precision"] == "bfloat16" and learner.training_dtype is None
    assert all(p.dtype == torch.float32 for p in learner.parameters())
    _, summary = fewshot.train(tiny_dataset(), "matching", n_way=5, steps=1)
    assert summary["precision"] == fewshot.RECIPES["matching"].precision
    with pytest.raises(ValueError, match="trains in float32 only"):
        fewshot.train(tiny_dataset(), "reptile", n_way=5, steps=1, precision="bfloat16")


def test_an_ensemble_is_its_members_each_trained_on_a_share_of_the_steps():
    data = tiny_dataset()
    ensemble, summary = fewshot.train(data, "protonet", n_way=5, steps=5, seed=3, ensemble=2)
    members = [fewshot.train(data, "protonet", n_way=5, steps=steps, seed=seed)
               for steps, seed in ((3, 3), (2, 4))]
    assert summary["ensemble"] == 2 and summary["steps"] == 5
    assert len(summary["best_step"]) == len(summary["best_val_accuracy"]) == 2
    assert [s["ensemble"] for _, s in members] == [1, 1]
    expected = ProtoNet.ensemble([m for m, _ in members])
    assert ensemble.config == expected.config and ensemble.training_dtype is None
    for name, value in expected.state_dict().items():  # the same runs, seeded: the same weights
        torch.testing.assert_close(ensemble.state_dict()[name], value)
    with pytest.raises(ValueError, match="an ensemble is of ProtoNets"):
        fewshot.train(data, "matching", n_way=5, steps=2, ensemble=2)
    with pytest.raises(ValueError, match="3 steps cannot be shared by an ensemble of 4"):
        fewshot.train(data, "protonet", n_way=5, steps=3, ensemble=4)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="ensemble must be a positive integer"):
            fewshot.train(data, "protonet", n_way=5, steps=2, ensemble=bad)


def test_an_ensemble_shares_the_time_budget(monkeypatch):
    budgets = []
    real_train = fewshot.meta_train

    def recording(*args, time_budget=None, **kwargs):
        budgets.append(time_budget)
        return real_train(*args, time_budget=time_budget, **{**kwargs, "steps": 1})

    monkeypatch.setattr(fewshot, "meta_train", recording)
    fewshot.train(tiny_dataset(), "protonet", n_way=5, time_budget=60.0, ensemble=3)
    fewshot.train(tiny_dataset(), "protonet", n_way=5, ensemble=2)
    assert budgets == [20.0, 20.0, 20.0, fewshot.TIME_BUDGET / 2, fewshot.TIME_BUDGET / 2]


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_train_learns_and_validates_on_a_held_out_alphabet(precision):
    data = tiny_dataset()
    learner, summary = fewshot.train(data, "protonet", n_way=5, steps=60, time_budget=None, val_alphabets=["A2"],
                                     precision=precision)
    assert summary["steps"] == 60 and summary["val_alphabets"] == ["A2"] and summary["best_step"] > 0
    test = data.subset_alphabets(["A2"])

    def episodes():
        return EpisodeSampler(torch.from_numpy(test.images).unsqueeze(1), test.labels, 5, 1, 3, random_state=5)

    trained, _ = fewshot.evaluate_episodes(learner, episodes(), 50)
    torch.manual_seed(0)
    untrained, _ = fewshot.evaluate_episodes(fewshot.build_learner("protonet", 5, image_size=16), episodes(), 50)
    pixels, _ = fewshot.pixel_nearest_neighbour_accuracy(episodes(), 50)
    assert trained > untrained + 0.1 and trained > pixels + 0.1
    with pytest.raises(ValueError, match="unknown algorithm"):
        fewshot.train(data, "siamese")


def test_the_command_line_offers_the_recipes_scorings():
    from autometa.apps.cli import fewshot as command

    assert command.SCORINGS == fewshot.SCORINGS and command.TRAIN_SECONDS == fewshot.TIME_BUDGET
    assert command.DISTORTIONS == tuple(fewshot.DISTORTIONS) and command.LOSSES == protonet.LOSSES
    assert command.PROTONET_DISTORTION == fewshot.RECIPES["protonet"].distortion
    assert command.FINE_TUNE_LR == fewshot.FINE_TUNE_LR
    assert command.PRECISIONS == fewshot.PRECISIONS
    assert command.PROTONET_PRECISION == fewshot.RECIPES["protonet"].precision
