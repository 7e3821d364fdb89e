"""RL^2 against the bandit and MDP baselines: train, then score on new tasks.

The same as ``autometa rl2 train`` followed by ``autometa rl2 eval``, in one
call, with the machine and versions printed beside the numbers. The paper's
settings (Duan et al., 2016, table 1 and 2): bandits with k = 5, 10 arms and
n = 10, 100 pulls; tabular MDPs with n = 10, 25, 50, 75, 100 episodes.

Run: python -m benchmarks.rl2 --env bandit --arms 5 --horizon 10 --time-budget 300
Throughput of the recipes (agent steps/s, rollout and update together):
python -m benchmarks.rl2 --env bandit --arms 10 --horizon 100 --throughput 5
"""

from __future__ import annotations

import argparse
import time

from autometa._common import describe
from autometa.rl.evaluation import compare, format_results
from autometa.rl.ppo import RL2Config, train_rl2
from autometa.rl.stats import PolicyResult
from autometa.rl.tasks import make_tasks


def run(env: str = "bandit", arms: int | None = 5, horizon: int = 10, iterations: int | None = None,
        time_budget: float | None = 300.0, n_trials: int = 10_000, config: RL2Config | None = None,
        device: str = "cpu", seed: int = 0, verbose: bool = False) -> list[PolicyResult]:
    """Train an RL^2 agent on ``env`` and print it beside the baselines; return the results (RL2 last)."""
    tasks = make_tasks(env, horizon, n_arms=arms if env == "bandit" else None)
    print(f"RL2 benchmark: {tasks!r}, seed {seed}, device {device}")
    print(f"machine: {describe(device)}")
    start = time.perf_counter()
    agent, history = train_rl2(tasks, config, iterations=iterations, time_budget=time_budget, device=device,
                               seed=seed, verbose=verbose)
    summary = agent.training_summary
    print(f"trained {summary['iterations']} PPO iterations ({summary['env_steps']:,} agent steps) "
          f"in {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    results = compare(agent, n_trials, seed=seed + 1)
    print(format_results(results))
    print(f"evaluated {n_trials} trials in {time.perf_counter() - start:.0f} s")
    rl2 = results[-1]
    print(f"RL2 mean total reward: {rl2.mean:.3f} +- {rl2.half_width:.3f}")
    return results


def throughput(env: str = "bandit", arms: int | None = 10, horizon: int = 100, iterations: int = 5,
               device: str = "cpu", seed: int = 0) -> dict[str, float]:
    """Agent steps per second of PPO training (rollouts and updates) in one process, for
    the small recipe ``RL2Config()`` (the default before per-setting recipes), the
    setting's recipe (:meth:`RL2Config.for_setting`), and that recipe with the
    layer-normalised GRU; one warm-up iteration each is not timed."""
    tasks = make_tasks(env, horizon, n_arms=arms if env == "bandit" else None)
    recipes = {"RL2Config()": RL2Config(baseline_trials=0),
               "for_setting": RL2Config.for_setting(env, horizon, arms, baseline_trials=0),
               "for_setting + layer_norm": RL2Config.for_setting(env, horizon, arms, baseline_trials=0,
                                                                 layer_norm=True)}
    print(f"RL2 throughput: {tasks!r}, {iterations} iterations each, device {device}")
    print(f"machine: {describe(device)}")
    rates = {}
    for name, config in recipes.items():
        train_rl2(tasks, config, iterations=1, device=device, seed=seed)
        start = time.perf_counter()
        agent, _ = train_rl2(tasks, config, iterations=iterations, device=device, seed=seed)
        seconds = time.perf_counter() - start
        rates[name] = agent.training_summary["env_steps"] / seconds
        print(f"{name:<26} {config.trials_per_batch:>5} trials/batch, hidden {config.hidden_size}, "
              f"separate value {config.separate_value}: {rates[name]:>9,.0f} agent steps/s")
    return rates


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=("bandit", "mdp"), default="bandit")
    parser.add_argument("--arms", type=int, default=5)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--steps", type=int, help="PPO iterations")
    parser.add_argument("--time-budget", type=float, default=300.0)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--throughput", type=int, metavar="ITERATIONS",
                        help="only measure the recipes' training throughput over this many iterations")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.throughput:
        throughput(args.env, args.arms, args.horizon, args.throughput, args.device, args.seed)
        raise SystemExit
    run(args.env, args.arms, args.horizon, args.steps, args.time_budget, args.trials, device=args.device,
        seed=args.seed)
