import math

import numpy as np
import pandas as pd
import pytest
import torch

from autometa.tasks import GroupedRegressionTasks, SinusoidTasks


def test_sinusoid_batch_shapes_and_true_function():
    tasks = SinusoidTasks(k_shot=5, n_query=7, random_state=0)
    batch, amplitude, phase = tasks.sample(meta_batch=6, return_params=True)
    assert batch.support_x.shape == (6, 5, 1) and batch.support_y.shape == (6, 5)
    assert batch.query_x.shape == (6, 7, 1) and batch.query_y.shape == (6, 7)
    assert all(t.dtype == torch.float32 for t in (batch.support_x, batch.query_y, amplitude, phase))
    for x, y in ((batch.support_x, batch.support_y), (batch.query_x, batch.query_y)):
        torch.testing.assert_close(y, amplitude[:, None] * torch.sin(x[..., 0] - phase[:, None]))
        assert ((x >= -5) & (x <= 5)).all()
    assert ((amplitude >= 0.1) & (amplitude <= 5.0)).all() and ((phase >= 0) & (phase <= math.pi)).all()


def test_sinusoid_ranges_seed_and_grid():
    tasks = SinusoidTasks(k_shot=3, n_query=2, amplitude=(2.0, 2.0), phase=(0.0, 0.0), x_range=(1, 2))
    batch, amplitude, phase = tasks.sample(4, return_params=True)
    assert (amplitude == 2.0).all() and (phase == 0.0).all()
    torch.testing.assert_close(batch.support_y, 2.0 * torch.sin(batch.support_x[..., 0]))
    grid = torch.linspace(-5, 5, 11)
    curves = SinusoidTasks.true_function(grid, amplitude, phase)
    assert curves.shape == (4, 11)
    torch.testing.assert_close(curves[0], 2.0 * torch.sin(grid))

    first, second = SinusoidTasks(random_state=3).sample(5), SinusoidTasks(random_state=3).sample(5)
    assert torch.equal(first.query_x, second.query_x) and torch.equal(first.query_y, second.query_y)
    assert not torch.equal(first.query_x, SinusoidTasks(random_state=4).sample(5).query_x)


def test_sinusoid_validation():
    with pytest.raises(ValueError, match="k_shot must be a positive integer"):
        SinusoidTasks(k_shot=0)
    with pytest.raises(ValueError, match="amplitude must be a range"):
        SinusoidTasks(amplitude=(5.0, 0.1))
    with pytest.raises(ValueError, match="meta_batch must be a positive integer"):
        SinusoidTasks().sample(-1)


def make_table(sizes):
    """Rows whose first feature is the row index and whose target is 1000 * group + row."""
    groups = np.repeat(np.arange(len(sizes)), sizes)
    rows = np.arange(len(groups))
    X = np.stack([rows, np.zeros_like(rows)], axis=1).astype(np.float64)
    return X, 1000.0 * groups + rows, groups


def test_grouped_tasks_draw_distinct_rows_of_one_group():
    X, y, groups = make_table([5, 8, 3, 12])
    tasks = GroupedRegressionTasks(X, y, groups, k_shot=2, n_query=3, random_state=0)
    np.testing.assert_array_equal(tasks.groups_, [0, 1, 3])
    batch = tasks.sample(meta_batch=200)
    assert batch.support_x.shape == (200, 2, 2) and batch.query_y.shape == (200, 3)
    assert batch.support_x.dtype == batch.support_y.dtype == torch.float32
    rows = torch.cat([batch.support_x[..., 0], batch.query_x[..., 0]], dim=1).long().numpy()
    targets = torch.cat([batch.support_y, batch.query_y], dim=1).numpy()
    np.testing.assert_array_equal(targets, 1000.0 * groups[rows] + rows)
    assert all(len(set(task)) == 5 for task in rows), "a row is drawn twice in a task"
    assert all(len(set(groups[task])) == 1 for task in rows), "a task mixes groups"
    assert set(groups[rows[:, 0]]) == {0, 1, 3}


def test_grouped_tasks_accept_pandas_and_are_reproducible():
    X, y, groups = make_table([6, 6, 6])
    frame = pd.DataFrame(X, columns=["row", "zero"])
    labels = pd.Series(np.array(["a", "b", "c"])[groups])

    def draw(seed):
        return GroupedRegressionTasks(frame, pd.Series(y), labels, 2, 2, random_state=seed).sample(4)

    assert torch.equal(draw(1).support_x, draw(1).support_x)
    assert not torch.equal(draw(1).support_x, draw(2).support_x)


def test_grouped_tasks_validation():
    X, y, groups = make_table([3, 4])
    message = r"0 of 2 groups have k_shot \+ n_query = 5 rows \(largest: 1 with 4\)"
    with pytest.raises(ValueError, match=message):
        GroupedRegressionTasks(X, y, groups, k_shot=2, n_query=3)
    with pytest.raises(ValueError, match="y has 6 values but X has 7 rows"):
        GroupedRegressionTasks(X, y[:-1], groups, 1, 1)
    with pytest.raises(ValueError, match="groups has 6 entries but there are 7 examples"):
        GroupedRegressionTasks(X, y, groups[:-1], 1, 1)
    with pytest.raises(ValueError, match="n_query must be a positive integer"):
        GroupedRegressionTasks(X, y, groups, 1, 0)
