"""RL^2 against the bandit and MDP baselines: train, then score on new tasks.

The same as ``autometa rl2 train`` followed by ``autometa rl2 eval``, in one
call, with the machine and versions printed beside the numbers. The paper's
settings (Duan et al., 2016, table 1 and 2): bandits with k = 5, 10 arms and
n = 10, 100 pulls; tabular MDPs with n = 10, 25, 50, 75, 100 episodes.

Run: python -m benchmarks.rl2 --env bandit --arms 5 --horizon 10 --time-budget 300
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
    args = parser.parse_args()
    run(args.env, args.arms, args.horizon, args.steps, args.time_budget, args.trials, device=args.device,
        seed=args.seed)
