"""The ``autometa rl2`` command: ``train`` and ``eval``.

:func:`add_parser` adds it to the top-level ``autometa`` command's subparsers.
User mistakes raise ValueError or FileNotFoundError, which the top-level
command reports as ``autometa: error: ...``.
"""

from __future__ import annotations

import sys
from dataclasses import fields

from autometa.apps.cli import _device

DEFAULT_TIME_BUDGET = 300.0


def add_parser(commands) -> None:
    """Add ``rl2 train`` and ``rl2 eval`` to ``commands``, the subparsers of ``autometa``."""
    from autometa.rl.config import RL2Config

    defaults = RL2Config()
    rl2 = commands.add_parser("rl2", help="RL^2: a GRU agent meta-trained with PPO on bandits or tabular MDPs")
    actions = rl2.add_subparsers(dest="rl2", metavar="ACTION", required=True)

    train = actions.add_parser("train", help="meta-train an RL^2 agent and save it")
    train.add_argument("--env", choices=("bandit", "mdp"), default="bandit", help="default: %(default)s")
    train.add_argument("--arms", type=int, help="arms K of the bandits (bandit only)")
    train.add_argument("--horizon", type=int, default=10,
                       help="pulls per trial (bandit) or episodes per trial (mdp) (default: %(default)s)")
    train.add_argument("--out", required=True, help="where to save the agent")
    train.add_argument("--steps", type=int, help="PPO iterations (default: until the time budget is spent)")
    train.add_argument("--time-budget", type=float,
                       help=f"seconds (default: {DEFAULT_TIME_BUDGET:g} when --steps is not given)")
    train.add_argument("--trials-per-batch", type=int, default=defaults.trials_per_batch,
                       help="trials per PPO iteration (default: %(default)s)")
    train.add_argument("--hidden-size", type=int, default=defaults.hidden_size, help="default: %(default)s")
    train.add_argument("--lr", type=float, default=defaults.lr, help="default: %(default)s")
    train.add_argument("--gae-lambda", type=float, default=defaults.gae_lambda, help="default: %(default)s")
    train.add_argument("--gamma", type=float, default=defaults.gamma, help="default: %(default)s")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    train.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice; 1 is "
                                                   "fastest for the small default network, and on busy machines)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)

    evaluate = actions.add_parser("eval", help="score a saved agent against the baselines on new tasks")
    evaluate.add_argument("--agent", required=True, help="an agent saved by `autometa rl2 train`")
    evaluate.add_argument("--trials", type=int, default=10_000, help="default: %(default)s")
    evaluate.add_argument("--seed", type=int, default=0, help="draws the evaluation tasks (default: %(default)s)")
    evaluate.add_argument("--greedy", action="store_true", help="the agent takes its most probable action")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    evaluate.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    evaluate.set_defaults(func=cmd_eval)


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` unless None; ValueError below 1."""
    import torch

    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)


def cmd_train(args) -> None:
    """``autometa rl2 train``."""
    from autometa._common import describe
    from autometa.rl.ppo import RL2Config, train_rl2
    from autometa.rl.tasks import make_tasks

    if args.env == "bandit" and args.arms is None:
        raise ValueError("bandits need the number of arms: add --arms K (e.g. --arms 5)")
    tasks = make_tasks(args.env, args.horizon, n_arms=args.arms)
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be a positive number of PPO iterations, got {args.steps}")
    if args.time_budget is not None and not args.time_budget > 0:
        raise ValueError(f"--time-budget must be a positive number of seconds, got {args.time_budget}")
    time_budget = args.time_budget if args.time_budget is not None or args.steps is not None else DEFAULT_TIME_BUDGET
    names = {f.name for f in fields(RL2Config)}
    config = RL2Config(**{k: v for k, v in vars(args).items() if k in names})
    config.validate()
    device = _device(args.device)
    set_threads(args.threads)
    print(describe(device))
    print(f"training RL2 on {tasks!r}, {tasks.trial_length} steps a trial, seed {args.seed}, device {device}")
    agent, history = train_rl2(tasks, config, iterations=args.steps, time_budget=time_budget, device=device,
                               seed=args.seed, verbose=not args.quiet and sys.stderr.isatty())
    summary = agent.training_summary
    last = history[-10:]
    recent = sum(h["mean_total"] for h in last) / len(last)
    print(f"trained {summary['iterations']} PPO iterations ({summary['env_steps']:,} agent steps) in "
          f"{summary['seconds']:.1f} s; mean trial reward over the last {len(last)} batches: {recent:.3f}")
    agent.save(args.out, training=summary)
    print(f"saved {args.out}")


def cmd_eval(args) -> None:
    """``autometa rl2 eval``."""
    from autometa._common import describe
    from autometa.rl.agent import RL2Agent
    from autometa.rl.evaluation import compare, format_results

    if args.trials < 2:
        raise ValueError(f"--trials must be at least 2 (for a confidence interval), got {args.trials}")
    device = _device(args.device)
    set_threads(args.threads)
    agent = RL2Agent.load(args.agent, map_location=device)
    print(describe(device))
    trained = agent.training_summary
    if trained:
        print(f"agent: {agent.tasks!r}, {trained.get('iterations')} PPO iterations, {trained.get('seconds')} s "
              f"on {trained.get('device')}, seed {trained.get('seed')}")
    print(f"evaluating on {args.trials} new tasks, seed {args.seed}")
    results = compare(agent, args.trials, seed=args.seed, greedy=args.greedy)
    print(format_results(results))
    rl2 = results[-1]
    print(f"RL2 mean total reward: {rl2.mean:.3f} +- {rl2.half_width:.3f}")
