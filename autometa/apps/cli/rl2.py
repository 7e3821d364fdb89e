"""``autometa rl2``: meta-train an RL^2 agent (``train``) and score it against the baselines (``eval``)."""

from __future__ import annotations

import sys
from dataclasses import fields

from autometa.apps.cli.options import (DEVICE_HELP, UserError, as_user_error, device, integer, non_negative_int,
                                       positive_float, positive_int, set_threads)

DEFAULT_TIME_BUDGET = 300.0


def register(commands) -> None:
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
    train.add_argument("--steps", type=positive_int, help="PPO iterations (default: until the time budget is spent)")
    train.add_argument("--time-budget", type=positive_float,
                       help=f"seconds (default: {DEFAULT_TIME_BUDGET:g} when --steps is not given)")
    train.add_argument("--trials-per-batch", type=int, default=defaults.trials_per_batch,
                       help="trials per PPO iteration (default: %(default)s)")
    train.add_argument("--hidden-size", type=int, default=defaults.hidden_size, help="default: %(default)s")
    train.add_argument("--lr", type=float, default=defaults.lr, help="default: %(default)s")
    train.add_argument("--gae-lambda", type=float, default=defaults.gae_lambda, help="default: %(default)s")
    train.add_argument("--gamma", type=float, default=defaults.gamma, help="default: %(default)s")
    train.add_argument("--device", default="auto", help=DEVICE_HELP)
    train.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice; 1 is "
                                                   "fastest for the small default network, and on busy machines)")
    train.add_argument("--seed", type=non_negative_int, default=0)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)

    evaluate = actions.add_parser("eval", help="score a saved agent against the baselines on new tasks")
    evaluate.add_argument("--agent", required=True, help="an agent saved by `autometa rl2 train`")
    evaluate.add_argument("--trials", type=integer(2, "for a confidence interval"), default=10_000, help="default: %(default)s")
    evaluate.add_argument("--seed", type=non_negative_int, default=0, help="draws the evaluation tasks (default: %(default)s)")
    evaluate.add_argument("--greedy", action="store_true", help="the agent takes its most probable action")
    evaluate.add_argument("--device", default="auto", help=DEVICE_HELP)
    evaluate.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    evaluate.set_defaults(func=run_eval)


def run_train(args) -> None:
    """Run ``autometa rl2 train``."""
    from autometa._common import describe
    from autometa.rl.ppo import RL2Config, train_rl2
    from autometa.rl.tasks import make_tasks

    if args.env == "bandit" and args.arms is None:
        raise UserError("bandits need the number of arms: add --arms K (e.g. --arms 5)")
    with as_user_error(ValueError):  # --arms and --horizon, checked by the task family
        tasks = make_tasks(args.env, args.horizon, n_arms=args.arms)
    time_budget = args.time_budget if args.time_budget is not None or args.steps is not None else DEFAULT_TIME_BUDGET
    names = {f.name for f in fields(RL2Config)}
    config = RL2Config(**{k: v for k, v in vars(args).items() if k in names})
    with as_user_error(ValueError):  # --trials-per-batch, --hidden-size, --lr, --gae-lambda, --gamma
        config.validate()
    resolved = device(args.device)
    set_threads(args.threads)
    print(describe(resolved))
    print(f"training RL2 on {tasks!r}, {tasks.trial_length} steps a trial, seed {args.seed}, device {resolved}")
    agent, history = train_rl2(tasks, config, iterations=args.steps, time_budget=time_budget, device=resolved,
                               seed=args.seed, verbose=not args.quiet and sys.stderr.isatty())
    summary = agent.training_summary
    last = history[-10:]
    recent = sum(h["mean_total"] for h in last) / len(last)
    print(f"trained {summary['iterations']} PPO iterations ({summary['env_steps']:,} agent steps) in "
          f"{summary['seconds']:.1f} s; mean trial reward over the last {len(last)} batches: {recent:.3f}")
    agent.save(args.out, training=summary)
    print(f"saved {args.out}")


def run_eval(args) -> None:
    """Run ``autometa rl2 eval``."""
    from autometa._common import describe
    from autometa.rl.agent import RL2Agent
    from autometa.rl.evaluation import compare, format_results

    resolved = device(args.device)
    set_threads(args.threads)
    with as_user_error(FileNotFoundError, ValueError):
        agent = RL2Agent.load(args.agent, map_location=resolved)
    print(describe(resolved))
    trained = agent.training_summary
    if trained:
        print(f"agent: {agent.tasks!r}, {trained.get('iterations')} PPO iterations, {trained.get('seconds')} s "
              f"on {trained.get('device')}, seed {trained.get('seed')}")
    print(f"evaluating on {args.trials} new tasks, seed {args.seed}")
    results = compare(agent, args.trials, seed=args.seed, greedy=args.greedy)
    print(format_results(results))
    rl2 = results[-1]
    print(f"RL2 mean total reward: {rl2.mean:.3f} +- {rl2.half_width:.3f}")
