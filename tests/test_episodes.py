import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autometa.tasks import EpisodeSampler, TaskBatch, split_classes
from autometa.tasks._sampling import Members

FEATURES = (2, 3)


def make_pool(counts, groups_of_classes=None, labels=None):
    """A pool whose example ``i`` is the constant image ``i``: episodes reveal their examples."""
    labels = np.arange(len(counts)) if labels is None else np.asarray(labels)
    y = np.repeat(labels, counts)
    X = np.broadcast_to(np.arange(len(y), dtype=np.float32)[:, None, None], (len(y), *FEATURES)).copy()
    groups = None if groups_of_classes is None else np.repeat(np.asarray(groups_of_classes), counts)
    return X, y, groups


def example_indices(x: torch.Tensor) -> np.ndarray:
    return x[..., 0, 0].long().numpy()


def check_episodes(batch: TaskBatch, y, n_way, k_shot, n_query, groups=None):
    """Every property an episode must have, given the pool's labels (and groups)."""
    B = len(batch)
    assert batch.support_x.shape == (B, n_way * k_shot, *FEATURES)
    assert batch.query_x.shape == (B, n_way * n_query, *FEATURES)
    assert batch.support_x.dtype == batch.query_x.dtype == torch.float32
    assert batch.support_y.dtype == batch.query_y.dtype == torch.int64
    for labels, per_class in ((batch.support_y, k_shot), (batch.query_y, n_query)):
        expected = torch.arange(n_way).repeat_interleave(per_class)
        assert torch.equal(labels, expected.expand(B, -1))
    support, query = example_indices(batch.support_x), example_indices(batch.query_x)
    for s, q in zip(support, query):
        assert len(set(s) | set(q)) == len(s) + len(q), "an example appears twice in an episode"
        support_classes = y[s].reshape(n_way, k_shot)
        query_classes = y[q].reshape(n_way, n_query)
        assert (support_classes == support_classes[:, :1]).all(), "an episode label maps to two classes"
        assert (query_classes == support_classes[:, :1]).all(), "query and support classes differ"
        assert len(set(support_classes[:, 0])) == n_way, "two episode labels map to one class"
        if groups is not None:
            assert len(set(groups[s])) == 1, "an episode mixes groups"


def test_episodes_have_the_right_shape_labels_and_examples():
    X, y, groups = make_pool([8] * 12, groups_of_classes=np.arange(12) // 4)
    sampler = EpisodeSampler(X, y, n_way=3, k_shot=2, n_query=3, groups=groups, random_state=0)
    check_episodes(sampler.sample(meta_batch=16), y, 3, 2, 3, groups)
    check_episodes(sampler.sample(), y, 3, 2, 3, groups)


def test_string_labels_torch_inputs_and_flat_features():
    X, y, _ = make_pool([5] * 4, labels=["b", "a", "d", "c"])
    sampler = EpisodeSampler(torch.from_numpy(X), list(y), n_way=4, k_shot=1, n_query=4, random_state=0)
    check_episodes(sampler.sample(8), y, 4, 1, 4)
    np.testing.assert_array_equal(sampler.classes_, ["a", "b", "c", "d"])
    flat = EpisodeSampler(np.arange(20.0), torch.arange(20) % 4, n_way=2, k_shot=1, n_query=1)
    assert flat.sample(3).support_x.shape == (3, 2)


def test_same_seed_same_episodes_and_different_seed_different_episodes():
    X, y, groups = make_pool([6] * 10, groups_of_classes=np.arange(10) % 2)

    def draw(seed):
        sampler = EpisodeSampler(X, y, 3, 1, 2, groups=groups, random_state=seed)
        return [example_indices(sampler.sample(4).query_x) for _ in range(3)]

    np.testing.assert_array_equal(draw(7), draw(7))
    np.testing.assert_array_equal(draw(np.random.default_rng(7)), draw(7))
    assert not np.array_equal(draw(7), draw(8))


def test_every_class_example_label_and_split_is_drawn():
    # 4 classes of 3 examples, 2-way 1-shot 2-query: every example must
    # sometimes be support and sometimes query, every class sometimes label 0.
    X, y, _ = make_pool([3] * 4)
    batch = EpisodeSampler(X, y, 2, 1, 2, random_state=0).sample(400)
    support, query = example_indices(batch.support_x), example_indices(batch.query_x)
    assert set(support.ravel()) == set(query.ravel()) == set(range(12))
    assert set(y[support[:, 0]]) == set(range(4))


def test_groups_with_too_few_classes_are_never_drawn():
    X, y, groups = make_pool([4] * 7, groups_of_classes=["x"] * 3 + ["y"] * 2 + ["z"] * 2)
    sampler = EpisodeSampler(X, y, n_way=3, k_shot=1, n_query=1, groups=groups, random_state=0)
    np.testing.assert_array_equal(sampler.groups_, ["x"])
    np.testing.assert_array_equal(sampler.classes_, [0, 1, 2])
    assert set(y[example_indices(sampler.sample(50).support_x)].ravel()) == {0, 1, 2}


def test_groups_are_drawn_in_proportion_to_their_classes():
    X, y, groups = make_pool([2] * 8, groups_of_classes=[0, 0, 1, 1, 1, 1, 1, 1])
    sampler = EpisodeSampler(X, y, 2, 1, 1, groups=groups, random_state=0)
    support = example_indices(sampler.sample(4000).support_x)
    share_of_group_1 = np.mean(groups[support[:, 0]] == 1)
    assert share_of_group_1 == pytest.approx(0.75, abs=0.03)


def test_classes_restricts_the_draw():
    X, y, _ = make_pool([3] * 6)
    sampler = EpisodeSampler(X, y, 2, 1, 1, classes=[1, 4, 5], random_state=0)
    np.testing.assert_array_equal(sampler.classes_, [1, 4, 5])
    assert set(y[example_indices(sampler.sample(100).support_x)].ravel()) == {1, 4, 5}


def test_read_only_input_is_accepted_without_warning():
    X, y, _ = make_pool([2] * 3)
    X.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EpisodeSampler(X, y, 2, 1, 1).sample()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_tensor_on_the_gpu_gives_episodes_on_the_gpu():
    X, y, _ = make_pool([3] * 4)
    batch = EpisodeSampler(torch.from_numpy(X).cuda(), y, 2, 1, 2, random_state=0).sample(5)
    assert batch.device.type == "cuda" and batch.support_y.device.type == "cuda"
    check_episodes(batch.to("cpu"), y, 2, 1, 2)


@pytest.mark.parametrize("name", ["n_way", "k_shot", "n_query"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_counts_must_be_positive_integers(name, value):
    X, y, _ = make_pool([4] * 4)
    kwargs = {"n_way": 2, "k_shot": 1, "n_query": 1, name: value}
    with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
        EpisodeSampler(X, y, **kwargs)


def test_meta_batch_must_be_a_positive_integer():
    X, y, _ = make_pool([4] * 4)
    with pytest.raises(ValueError, match="meta_batch must be a positive integer"):
        EpisodeSampler(X, y, 2, 1, 1).sample(0)


def test_mismatched_lengths_are_refused():
    X, y, groups = make_pool([4] * 4, groups_of_classes=[0, 0, 1, 1])
    with pytest.raises(ValueError, match="y has 15 entries but there are 16 examples"):
        EpisodeSampler(X, y[:-1], 2, 1, 1)
    with pytest.raises(ValueError, match="groups has 15 entries"):
        EpisodeSampler(X, y, 2, 1, 1, groups=groups[1:])
    with pytest.raises(ValueError, match="one-dimensional"):
        EpisodeSampler(X, y.reshape(-1, 1), 2, 1, 1)


def test_fewer_classes_than_n_way_is_refused():
    X, y, _ = make_pool([4] * 4)
    with pytest.raises(ValueError, match="n_way=5 but only 4 classes are available; lower n_way"):
        EpisodeSampler(X, y, 5, 1, 1)
    with pytest.raises(ValueError, match="n_way=3 but only 2 classes"):
        EpisodeSampler(X, y, 3, 1, 1, classes=[0, 1])


def test_small_classes_are_refused_naming_the_smallest():
    X, y, _ = make_pool([5, 3, 2, 6], labels=["a", "b", "c", "d"])
    message = r"2 of 4 classes have fewer than k_shot \+ n_query = 4 .*'c' with 2"
    with pytest.raises(ValueError, match=message):
        EpisodeSampler(X, y, 2, 1, 3)
    # Leaving the small classes out is the suggested fix, and works.
    EpisodeSampler(X, y, 2, 1, 3, classes=["a", "d"]).sample()


def test_a_class_spanning_two_groups_is_refused():
    X, y, groups = make_pool([4] * 3, groups_of_classes=["x", "x", "y"])
    groups[0] = "y"
    with pytest.raises(ValueError, match="class 0 spans groups 'x' and 'y'"):
        EpisodeSampler(X, y, 2, 1, 1, groups=groups)


def test_no_group_with_n_way_classes_is_refused():
    X, y, groups = make_pool([4] * 5, groups_of_classes=["x", "x", "y", "y", "y"])
    with pytest.raises(ValueError, match="no group has n_way=4 classes \\(largest: 'y' with 3\\)"):
        EpisodeSampler(X, y, 4, 1, 1, groups=groups)


def test_unknown_classes_are_refused():
    X, y, _ = make_pool([4] * 3)
    with pytest.raises(ValueError, match="1 of the requested classes do not occur in y"):
        EpisodeSampler(X, y, 2, 1, 1, classes=[0, 1, 9])


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 6), min_size=1, max_size=8),
    n_groups=st.integers(1, 3),
    n_way=st.integers(1, 4),
    k_shot=st.integers(1, 3),
    n_query=st.integers(1, 3),
    meta_batch=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_pool_gives_valid_episodes_or_a_clear_error(
    counts, n_groups, n_way, k_shot, n_query, meta_batch, seed
):
    class_group = np.arange(len(counts)) % n_groups
    X, y, groups = make_pool(counts, groups_of_classes=class_group)
    feasible = min(counts) >= k_shot + n_query and np.bincount(class_group).max() >= n_way
    if not feasible:
        with pytest.raises(ValueError):
            EpisodeSampler(X, y, n_way, k_shot, n_query, groups=groups, random_state=seed)
        return
    sampler = EpisodeSampler(X, y, n_way, k_shot, n_query, groups=groups, random_state=seed)
    check_episodes(sampler.sample(meta_batch), y, n_way, k_shot, n_query, groups)


def test_members_draws_uniformly_in_uniform_order():
    members = Members(np.array([0, 1, 0, -1, 0, 0]), n_sets=2)
    np.testing.assert_array_equal(members.sizes, [4, 1])
    draws = members.sample(np.zeros(8000, dtype=int), 2, np.random.default_rng(0))
    for position in range(2):
        frequencies = np.bincount(draws[:, position], minlength=6) / len(draws)
        np.testing.assert_allclose(frequencies, [0.25, 0, 0.25, 0, 0.25, 0.25], atol=0.02)
    assert (draws[:, 0] != draws[:, 1]).all()
    assert (members.sample(np.array([1, 1]), 1, np.random.default_rng(0)) == 1).all()


def test_split_classes_is_a_reproducible_partition():
    y = np.repeat(np.arange(10), 3)
    train, val = split_classes(y, val_fraction=0.3, random_state=0)
    assert len(val) == 3 and len(train) == 7
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(10))
    again = split_classes(y, val_fraction=0.3, random_state=0)
    np.testing.assert_array_equal(again[1], val)


def test_split_classes_by_group_keeps_groups_whole():
    labels = [f"c{i}" for i in range(12)]
    X, y, groups = make_pool([2] * 12, groups_of_classes=np.arange(12) // 3, labels=labels)
    train, val = split_classes(y, groups=groups, val_fraction=0.25, random_state=1)
    assert set(train).isdisjoint(val) and len(train) + len(val) == 12
    group_of = dict(zip(y, groups))
    assert {group_of[c] for c in train}.isdisjoint({group_of[c] for c in val})
    assert len({group_of[c] for c in val}) == 1
    # The split feeds the sampler.
    EpisodeSampler(X, y, 3, 1, 1, groups=groups, classes=val, random_state=0).sample()


def test_split_classes_refuses_an_empty_side_and_bad_input():
    y = np.arange(4)
    with pytest.raises(ValueError, match="leaves 0 for validation"):
        split_classes(y, val_fraction=0.1)
    with pytest.raises(ValueError, match="leaves 2 for validation and 0 for training"):
        split_classes(y, groups=[0, 0, 1, 1], val_fraction=0.9)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        split_classes(y, val_fraction=1.0)
    with pytest.raises(ValueError, match="spans groups"):
        split_classes([0, 0, 1], groups=[0, 1, 1])


def test_benchmark_runs_and_reports(capsys):
    from benchmarks.episode_sampling import omniglot_like, run

    pool = omniglot_like(n_classes=20, n_per_class=4, n_groups=2)
    result = run(*pool, n_way=5, k_shot=1, n_query=2, n_episodes=20, meta_batch=8, repeats=2)
    assert result["episodes"] == 24 and result["episodes_per_s"] > 0 and result["speedup"] > 0
    assert "episodes/s" in capsys.readouterr().out
