"""RL^2 at scale: the per-setting recipe, the layer-normalised GRU, the separate value
network, return normalisation, the diagnostics, the learning curve and shipped agents."""

import json

import numpy as np
import pytest
import torch

from autometa.rl import (BernoulliBandits, LayerNormGRU, RL2Agent, RL2Config, TabularMDPs, available_pretrained,
                         batch_baselines, evaluate_agent, explained_variance, plot_learning_curve, ppo_update,
                         pretrained_path, rollout, train_rl2)


def test_for_setting_recipes():
    short = RL2Config.for_setting("bandit", 10, n_arms=5)
    assert short.separate_value and short.gamma == 1.0 and short.advantage_norm == "minibatch"
    for env, horizon, arms in (("bandit", 100, 10), ("mdp", 10, None)):
        long = RL2Config.for_setting(env, horizon, n_arms=arms)
        assert (long.gae_lambda, long.gamma, long.clip, long.target_kl) == (0.3, 0.99, 0.1, 0.01)
        assert long.normalize_returns and long.separate_value and long.forget_bias == 1.0
        assert long.advantage_norm == "batch" and long.value_loss == "huber"
        long.validate()
        assert (long.lr, long.lr_hold) == ((6e-3, 0.75) if env == "mdp" else (3e-3, 0.0))
    assert RL2Config.for_setting("mdp", 10, hidden_size=32, layer_norm=True).hidden_size == 32
    with pytest.raises(ValueError, match="env"):
        RL2Config.for_setting("gridworld", 10)
    with pytest.raises(TypeError):
        RL2Config.for_setting("mdp", 10, no_such_field=1)


@pytest.mark.parametrize("bad", [dict(advantage_norm="trial"), dict(value_loss="l1"), dict(target_kl=0.0),
                                 dict(weight_decay=-1.0), dict(baseline_trials=-1), dict(lr_hold=1.5),
                                 dict(lr_hold=-0.1)])
def test_new_config_fields_are_validated(bad):
    with pytest.raises(ValueError):
        RL2Config(**bad).validate()


def test_learning_rate_is_held_then_decayed(monkeypatch):
    from autometa.rl import ppo

    assert [ppo.learning_rate_factor(p, 0.0) for p in (0.0, 0.25, 1.0)] == [1.0, 0.75, 0.0]
    assert [ppo.learning_rate_factor(p, 0.5) for p in (0.0, 0.5, 0.75, 1.0)] == [1.0, 1.0, 0.5, 0.0]
    assert ppo.learning_rate_factor(1.0, 1.0) == 1.0
    seen = []
    real = ppo.torch.optim.AdamW

    class Recording(real):
        def step(self, *args, **kwargs):
            seen.append(self.param_groups[0]["lr"])
            return super().step(*args, **kwargs)

    monkeypatch.setattr(ppo.torch.optim, "AdamW", Recording)
    config = RL2Config(hidden_size=8, trials_per_batch=8, epochs=1, minibatches=1, lr=1e-3, lr_hold=0.5)
    ppo.train_rl2(BernoulliBandits(2, 3), config, iterations=4, seed=0)
    assert seen == pytest.approx([1e-3, 1e-3, 1e-3, 0.5e-3])  # progress 0, 1/4, 1/2, 3/4


def test_layer_norm_gru_carries_its_state_like_nn_gru():
    torch.manual_seed(0)
    gru = LayerNormGRU(5, 8, forget_bias=1.0)
    x = torch.randn(3, 6, 5)
    out, h = gru(x)
    assert out.shape == (3, 6, 8) and h.shape == (1, 3, 8)
    torch.testing.assert_close(out[:, -1], h[0])
    first, h1 = gru(x[:, :2])
    second, h2 = gru(x[:, 2:], h1)  # a sequence in two parts, the state carried, equals one pass
    torch.testing.assert_close(torch.cat([first, second], 1), out)
    torch.testing.assert_close(h2, h)
    assert torch.all(gru.bias[1] == 1.0) and torch.all(gru.bias[0] == 0.0)
    out.sum().backward()
    assert all(p.grad is not None for p in gru.parameters())


def test_forget_bias_on_nn_gru():
    agent = RL2Agent(BernoulliBandits(3, 4).spec(), hidden_size=8, forget_bias=1.0)
    bias = agent.gru.bias_ih_l0.detach()
    assert torch.all(bias[8:16] == 1.0) and torch.all(agent.gru.bias_hh_l0.detach()[8:16] == 0.0)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_separate_value_network(layer_norm):
    torch.manual_seed(0)
    agent = RL2Agent(TabularMDPs(2, n_states=3, n_actions=2, episode_length=2).spec(), hidden_size=8,
                     separate_value=True, layer_norm=layer_norm)
    trials = rollout(agent, agent.tasks.sample(4, generator=torch.Generator().manual_seed(0)))
    logits, values, hidden = agent(trials.inputs)
    assert hidden.shape == (1, 4, 16)
    # recomputed from a zero state, whole trials reproduce the rollout step by step
    torch.testing.assert_close(torch.log_softmax(logits, -1).gather(2, trials.actions[..., None]).squeeze(-1),
                               trials.log_probs)
    torch.testing.assert_close(values, trials.values)
    # the value network's weights do not move the policy
    ids = {id(p) for p in agent.value_parameters()}
    assert ids and not ids & {id(p) for p in agent.policy_parameters()}
    values.sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in agent.policy_parameters())


def test_return_statistics_keep_the_predictions():
    torch.manual_seed(0)
    agent = RL2Agent(BernoulliBandits(3, 20).spec(), hidden_size=8, separate_value=True)
    inputs = rollout(agent, agent.tasks.sample(6)).inputs
    _, before, _ = agent(inputs)
    returns = 10 + 3 * torch.randn(400)
    agent.update_return_statistics(returns[:150])
    agent.update_return_statistics(returns[150:])
    _, after, _ = agent(inputs)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    assert float(agent.value_shift) == pytest.approx(float(returns.mean()), rel=1e-5)
    assert float(agent.value_scale) == pytest.approx(float(returns.std(unbiased=False)), rel=1e-4)


def test_explained_variance():
    targets = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(targets, targets) == 1.0
    assert explained_variance(torch.full((4,), 2.5), targets) == pytest.approx(0.0)
    assert explained_variance(-targets, targets) < 0
    assert np.isnan(explained_variance(targets, torch.ones(4)))


def test_batch_baselines():
    batch = BernoulliBandits(4, 30).sample(300, generator=torch.Generator().manual_seed(0))
    scores = batch_baselines(batch, 200)
    assert scores["random"] == pytest.approx(float(batch.probs[:200].mean()) * 30, rel=1e-6)
    assert scores["greedy"] > scores["random"] + 3
    mdps = TabularMDPs(3).sample(50, generator=torch.Generator().manual_seed(0))
    scores = batch_baselines(mdps, 50)
    assert set(scores) == {"random", "oracle"} and scores["oracle"] > scores["random"] > 0


def test_kl_stop_and_huber_loss():
    torch.manual_seed(0)
    agent = RL2Agent(BernoulliBandits(3, 4).spec(), hidden_size=8, separate_value=True)
    trials = rollout(agent, agent.tasks.sample(32, generator=torch.Generator().manual_seed(1)))
    optimizer = torch.optim.Adam(agent.parameters(), lr=0.05)
    config = RL2Config(epochs=5, minibatches=2, target_kl=1e-9, value_loss="huber", advantage_norm="batch",
                       normalize_returns=True)
    metrics = ppo_update(agent, optimizer, trials, config, 0.0)
    assert metrics["epochs"] == 1 and metrics["approx_kl"] >= 0
    assert float(agent.return_count) == 32 * 4


def test_train_history_and_learning_curve(tmp_path):
    tasks = BernoulliBandits(3, 6)
    config = RL2Config.for_setting("bandit", 6, 3, hidden_size=8, trials_per_batch=16, baseline_trials=16)
    agent, history = train_rl2(tasks, config, iterations=3, seed=0)
    assert [h["env_steps"] for h in history] == [96, 192, 288]
    assert {"random", "greedy", "entropy", "explained_variance", "approx_kl", "clip_fraction"} <= set(history[0])
    plot_learning_curve(history, tmp_path / "curve.png", title="test")
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="empty"):
        plot_learning_curve([], tmp_path / "x.png")
    # continuing a given agent; an agent for other tasks is refused
    agent, more = train_rl2(tasks, config, iterations=1, agent=agent)
    assert len(more) == 1
    with pytest.raises(ValueError, match="built for"):
        train_rl2(BernoulliBandits(4, 6), config, iterations=1, agent=agent)


def test_files_from_before_return_normalisation_still_load(tmp_path):
    agent = RL2Agent(BernoulliBandits(3, 4).spec(), hidden_size=8)
    agent.save(tmp_path / "a.pt")
    payload = torch.load(tmp_path / "a.pt", weights_only=True)
    payload["state_dict"] = {k: v for k, v in payload["state_dict"].items()
                             if not k.startswith(("value_", "return_")) or k.startswith("value_head")}
    config = json.loads(payload["config"])
    for key in ("layer_norm", "forget_bias", "separate_value"):
        del config[key]
    payload["config"] = json.dumps(config)
    torch.save(payload, tmp_path / "old.pt")
    old = RL2Agent.load(tmp_path / "old.pt")
    assert float(old.value_scale) == 4 and float(old.value_shift) == 0


def test_pretrained_names():
    with pytest.raises(ValueError, match="no pretrained RL.2 agent named 'nope'"):
        RL2Agent.load("pretrained:nope")
    for name in available_pretrained():
        assert pretrained_path(name).is_file()
        agent = RL2Agent.load(f"pretrained:{name}")
        assert agent.training_summary.get("command", "").startswith("autometa rl2 train")
        totals = evaluate_agent(agent, agent.tasks.sample(64, generator=torch.Generator().manual_seed(0)))
        assert totals.shape == (64,)


def test_the_long_trial_recipe_learns():
    """Two-armed bandits of 30 pulls: the long-trial recipe leaves random play (15) within a few seconds."""
    tasks = BernoulliBandits(2, 30)
    config = RL2Config.for_setting("bandit", 30, 2, hidden_size=32, trials_per_batch=128, lr=3e-3,
                                   baseline_trials=0)
    agent, history = train_rl2(tasks, config, iterations=40, seed=0)
    totals = evaluate_agent(agent, tasks.sample(4000, generator=torch.Generator().manual_seed(5)), seed=1)
    assert float(totals.mean()) > 17.5, [round(h["mean_total"], 2) for h in history[::5]]
    assert history[-1]["explained_variance"] > 0.2


def test_cli_train_writes_curve_history_checkpoints_and_its_command(tmp_path, capsys):
    from autometa.apps.cli import main

    out, curve, log = tmp_path / "a.pt", tmp_path / "a.png", tmp_path / "a.jsonl"
    main(f"rl2 train --env mdp --horizon 2 --out {out} --steps 4 --save-every 2 --trials-per-batch 16 "
         f"--hidden-size 8 --epochs 1 --lr-hold 0.5 --weight-decay 0.01 --curve {curve} --history {log} "
         f"--threads 1 --quiet".split())
    text = capsys.readouterr().out
    assert "agent steps/s" in text and "random" in text and "oracle" in text
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    assert curve.read_bytes()[:4] == b"\x89PNG"
    agent = RL2Agent.load(out)
    command = agent.training_summary["command"]
    assert command.startswith("autometa rl2 train --env mdp --horizon 2") and "--epochs 1" in command
    assert agent.training_summary["iterations"] == 4 and agent.training_summary["config"]["epochs"] == 1
    config = agent.training_summary["config"]
    assert config["lr_hold"] == 0.5 and config["weight_decay"] == 0.01
    assert "--lr-hold 0.5 --weight-decay 0.01" in command
    # the curve of that history, as a table: trailing means over 2 iterations at 1, 3 and the last
    assert main(["rl2", "curve", str(log), "--at", "1,3", "--window", "2", "--metrics", "epochs"]) in (None, 0)
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| iteration | agent steps | seconds | RL2 | random | entropy | epochs |"
    assert [line.split(" | ")[0] for line in table[2:]] == ["| 1", "| 3", "| 4"]
    expected = (rows[2]["mean_total"] + rows[3]["mean_total"]) / 2
    assert table[-1].split(" | ")[3] == f"{expected:.2f}" and table[-1].endswith(" | 1 |")  # --epochs 1
    assert main(["rl2", "curve", str(tmp_path / "none.jsonl")]) == 2
    assert "no history file" in capsys.readouterr().err


def test_curve_table_trailing_means_and_bad_input():
    from autometa.rl.curves import curve_table

    history = [{"iteration": i, "env_steps": 1000 * i, "seconds": 2.0 * i, "mean_total": float(i), "random": 1.0,
                "greedy": 2.0, "entropy": 1.0 / i} for i in range(1, 11)]
    lines = curve_table(history, at=[2, 5, 99], window=3)
    assert lines[0] == "| iteration | agent steps | seconds | RL2 | random | greedy | entropy |"
    assert lines[1] == "| --- | --- | --- | --- | --- | --- | --- |"
    assert lines[2:] == ["| 2 | 2,000 | 4 | 1.50 | 1.00 | 2.00 | 0.50 |",   # (1 + 2) / 2: fewer at the start
                         "| 5 | 5,000 | 10 | 4.00 | 1.00 | 2.00 | 0.20 |",   # (3 + 4 + 5) / 3
                         "| 10 | 10,000 | 20 | 9.00 | 1.00 | 2.00 | 0.10 |"]  # the last is always shown; 99 is past it
    default = curve_table([dict(h, iteration=i, env_steps=1e6 * i) for i, h in enumerate(history * 100, 1)])
    assert [line.split(" | ")[0] for line in default[2:]] == ["| 30", "| 100", "| 200", "| 400", "| 800", "| 1000"]
    assert default[2].split(" | ")[1] == "30.0M"
    with pytest.raises(ValueError, match="history is empty"):
        curve_table([])
    with pytest.raises(ValueError, match="lack mean_total"):
        curve_table([{"iteration": 1, "env_steps": 1, "seconds": 1, "entropy": 1}])
    with pytest.raises(ValueError, match="no iteration 2"):
        curve_table([history[0], history[2]], at=[2])
    with pytest.raises(ValueError, match="window"):
        curve_table(history, window=0)
    kl = curve_table([dict(h, approx_kl=0.001 * h["iteration"]) for h in history], at=[4], window=2,
                     extra=["approx_kl"])
    assert kl[0].endswith("| entropy | approx_kl |") and kl[2].endswith("| 0.25 | 0.0035 |")
    with pytest.raises(ValueError, match="lack approx_kl"):
        curve_table(history, extra=["approx_kl"])
