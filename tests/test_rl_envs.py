"""RL^2 task distributions: the gymnasium environments and their batched torch forms."""

import numpy as np
import pytest
import torch

gym = pytest.importorskip("gymnasium")
from gymnasium.utils.env_checker import check_env  # noqa: E402

from autometa.rl import BernoulliBandits, TabularMDPs, make_tasks, tasks_from_spec  # noqa: E402
from autometa.rl.envs import BernoulliBanditEnv, TabularMDPEnv  # noqa: E402
from autometa.rl.mdp_planning import policy_value  # noqa: E402


@pytest.mark.parametrize("env", [BernoulliBanditEnv(5, 10), BernoulliBanditEnv(2, 3), TabularMDPEnv(2),
                                 TabularMDPEnv(1, n_states=3, n_actions=2, episode_length=4)])
def test_gym_envs_pass_the_checker(env):
    check_env(env, skip_render_check=True)


def test_lazy_env_names_on_the_package():
    import autometa.rl

    assert autometa.rl.BernoulliBanditEnv is BernoulliBanditEnv
    with pytest.raises(AttributeError):
        autometa.rl.NoSuchThing  # noqa: B018


def test_bandit_env_trial_length_and_flags():
    env = BernoulliBanditEnv(3, 4)
    env.reset(seed=1)
    outcomes = [env.step(0) for _ in range(4)]
    assert [o[2] for o in outcomes] == [False, False, False, True]
    assert all(o[4]["episode_end"] for o in outcomes)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    with pytest.raises(ValueError, match="arm"):
        env.reset(seed=0) and env.step(3)


def test_mdp_env_episode_ends_and_restarts():
    env = TabularMDPEnv(n_episodes=3, episode_length=4)
    env.reset(seed=0)
    flags, terminated = [], []
    for _ in range(12):
        _, _, term, _, info = env.step(1)
        flags.append(info["episode_end"])
        terminated.append(term)
    assert flags == [False, False, False, True] * 3
    assert terminated == [False] * 11 + [True]
    np.testing.assert_allclose(env.transitions.sum(-1), 1.0)


@pytest.mark.parametrize("make", [lambda: BernoulliBandits(1, 10), lambda: BernoulliBandits(5, 0),
                                  lambda: TabularMDPs(0), lambda: BernoulliBandits(2.5, 3),
                                  lambda: BernoulliBanditEnv(1, 10), lambda: make_tasks("maze", 3),
                                  lambda: make_tasks("bandit", 3), lambda: make_tasks("mdp", 3, n_arms=4)])
def test_bad_task_parameters_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_specs_rebuild_the_distribution():
    for tasks in (BernoulliBandits(4, 7), TabularMDPs(3, episode_length=5)):
        assert repr(tasks_from_spec(tasks.spec())) == repr(tasks)


def test_batched_bandits_match_the_gym_env():
    n = 4000
    batch = BernoulliBandits(3, 5).sample(n, generator=torch.Generator().manual_seed(0))
    batch.reset()
    batched = torch.stack([batch.step(torch.full((n,), t % 3))[1] for t in range(5)], 1).sum(1)
    env = BernoulliBanditEnv(3, 5)
    gym_totals, probs = [], []
    for i in range(n):
        _, info = env.reset(seed=i)
        probs.append(info["probs"])
        gym_totals.append(sum(env.step(t % 3)[1] for t in range(5)))
    # both: probabilities U[0, 1] (mean 1/2, variance 1/12), and 5 pulls earn 2.5 on average
    for p in (batch.probs.numpy(), np.array(probs)):
        assert abs(p.mean() - 0.5) < 0.01 and abs(p.var() - 1 / 12) < 0.005
    assert abs(float(batched.float().mean()) - 2.5) < 0.1
    assert abs(np.mean(gym_totals) - 2.5) < 0.1
    assert abs(float(batched.float().var()) - np.var(gym_totals)) < 0.3


def test_batched_mdps_match_the_gym_env():
    n, episodes = 1500, 2
    tasks = TabularMDPs(episodes)
    batch = tasks.sample(n, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(batch.transitions.sum(-1).numpy(), 1.0, atol=1e-5)
    mu = batch.reward_means.numpy()
    assert abs(mu.mean() - 1) < 0.02 and abs(mu.std() - 1) < 0.02
    # a fixed action-0 policy: its exact value per MDP against both simulators
    policy = np.zeros((n, 10, 10, 5))
    policy[..., 0] = 1
    exact = episodes * policy_value(batch.transitions.double().numpy(), mu.astype(float), 10, policy)
    batch.reset()
    dones, totals = [], torch.zeros(n)
    for _ in range(tasks.trial_length):
        _, reward, done = batch.step(torch.zeros(n, dtype=torch.long))
        totals += reward
        dones.append(bool(done[0]))
    assert dones == ([False] * 9 + [True]) * episodes
    assert abs(float(totals.mean()) - exact.mean()) < 3 * float(totals.std()) / n**0.5 + 0.3
    env = TabularMDPEnv(episodes)
    gym_totals, gym_exact = [], []
    for i in range(n):
        env.reset(seed=i)
        gym_totals.append(sum(env.step(0)[1] for _ in range(tasks.trial_length)))
        gym_exact.append(episodes * policy_value(env.transitions[None], env.reward_means[None], 10, policy[:1])[0])
    assert abs(np.mean(gym_totals) - np.mean(gym_exact)) < 3 * np.std(gym_totals) / n**0.5 + 0.3
    # the two forms draw from one distribution: means of the exact values agree
    assert abs(np.mean(gym_exact) - exact.mean()) < 3 * np.std(gym_exact) * (2 / n) ** 0.5


def test_batched_steps_past_the_trial_raise():
    batch = BernoulliBandits(2, 1).sample(3)
    batch.reset()
    batch.step(torch.zeros(3, dtype=torch.long))
    with pytest.raises(RuntimeError, match="reset"):
        batch.step(torch.zeros(3, dtype=torch.long))
