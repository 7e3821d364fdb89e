"""End to end: the demo's MAML learns sinusoids far better than training from scratch."""

import pytest

from autometa import demo


@pytest.mark.slow
def test_demo_maml_beats_training_from_scratch(capsys):
    result = demo.run(seed=0, meta_steps=1500, n_test_tasks=100, verbose=False)
    mse = result["mse"]
    assert mse[10][1] < mse[1][1] < mse[0][1]  # adapting helps, more steps help more
    assert result["ratio_at_10"] > 3
    assert "MAML's error is" in capsys.readouterr().out
