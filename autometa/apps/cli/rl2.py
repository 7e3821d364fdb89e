"""``autometa rl2``: meta-train an RL^2 agent (``train``), score it against the baselines (``eval``) and print
its learning curve (``curve``)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, fields

from autometa.apps.cli.options import (DEVICE_HELP, UserError, as_user_error, comma_ints, comma_list, device,
                                       integer, non_negative_int, positive_float, positive_int, set_threads)

DEFAULT_TIME_BUDGET = 600.0


def register(commands) -> None:
    """Add ``rl2 train``, ``rl2 eval`` and ``rl2 curve`` to ``commands``, the subparsers of ``autometa``."""
    from autometa.rl.config import RL2Config

    defaults = RL2Config()
    rl2 = commands.add_parser("rl2", help="RL^2: a GRU agent meta-trained with PPO on bandits or tabular MDPs")
    actions = rl2.add_subparsers(dest="rl2", metavar="ACTION", required=True)

    train = actions.add_parser("train", help="meta-train an RL^2 agent and save it",
                               description="Meta-train an RL^2 agent. Hyperparameters not given take the recipe "
                                           "for the setting (RL2Config.for_setting).")
    train.add_argument("--env", choices=("bandit", "mdp"), default="bandit", help="default: %(default)s")
    train.add_argument("--arms", type=int, help="arms K of the bandits (bandit only)")
    train.add_argument("--horizon", type=int, default=10,
                       help="pulls per trial (bandit) or episodes per trial (mdp) (default: %(default)s)")
    train.add_argument("--out", required=True, help="where to save the agent")
    train.add_argument("--steps", type=positive_int, help="PPO iterations (default: until the time budget is spent)")
    train.add_argument("--time-budget", type=positive_float,
                       help=f"seconds (default: {DEFAULT_TIME_BUDGET:g} when --steps is not given)")
    recipe = "default: the setting's recipe"
    train.add_argument("--trials-per-batch", type=positive_int, help=f"trials per PPO iteration ({recipe})")
    train.add_argument("--hidden-size", type=positive_int, help=f"GRU width ({recipe}; {defaults.hidden_size})")
    train.add_argument("--layer-norm", action=argparse.BooleanOptionalAction,
                       help="layer-normalised GRU (slower on CPU) instead of nn.GRU (default: no)")
    train.add_argument("--separate-value", action=argparse.BooleanOptionalAction,
                       help=f"a separate value GRU ({recipe})")
    train.add_argument("--lr", type=float, help=f"learning rate, decayed linearly to 0 after --lr-hold ({recipe})")
    train.add_argument("--lr-hold", type=float,
                       help=f"fraction of training at the full learning rate before its decay starts ({recipe}: "
                            f"{RL2Config.for_setting('mdp', 10).lr_hold:g} for MDPs, {defaults.lr_hold:g} for bandits)")
    train.add_argument("--weight-decay", type=float, help=f"AdamW's decoupled weight decay ({recipe}; "
                                                          f"{defaults.weight_decay:g})")
    train.add_argument("--gae-lambda", type=float, help=f"{recipe}")
    train.add_argument("--gamma", type=float, help=f"{recipe}")
    train.add_argument("--epochs", type=positive_int, help=f"PPO passes per batch ({recipe})")
    train.add_argument("--minibatches", type=positive_int, help=f"minibatches of whole trials per pass ({recipe})")
    train.add_argument("--clip", type=float, help=f"PPO ratio clip ({recipe})")
    train.add_argument("--target-kl", type=float, help=f"KL early stop ({recipe})")
    train.add_argument("--entropy-coef", type=float, help=f"initial entropy bonus, decayed to 0 ({recipe})")
    train.add_argument("--curve", help="write the learning curve to this PNG")
    train.add_argument("--history", help="append each iteration's metrics to this JSON-lines file")
    train.add_argument("--save-every", type=positive_int,
                       help="also save the agent (and the curve) every this many iterations")
    train.add_argument("--device", default="auto", help=DEVICE_HELP)
    train.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice; 1 is "
                                                   "fastest for the small default network, and on busy machines)")
    train.add_argument("--seed", type=non_negative_int, default=0)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)

    evaluate = actions.add_parser("eval", help="score a saved agent against the baselines on new tasks")
    evaluate.add_argument("--agent", required=True,
                          help="an agent saved by `autometa rl2 train`, or pretrained:NAME for a shipped one "
                               "(bandit-k5-n10, bandit-k10-n100, mdp-n10 where trained)")
    evaluate.add_argument("--trials", type=integer(2, "for a confidence interval"), default=10_000, help="default: %(default)s")
    evaluate.add_argument("--seed", type=non_negative_int, default=0, help="draws the evaluation tasks (default: %(default)s)")
    evaluate.add_argument("--greedy", action="store_true", help="the agent takes its most probable action")
    evaluate.add_argument("--device", default="auto", help=DEVICE_HELP)
    evaluate.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    evaluate.set_defaults(func=run_eval)

    curve = actions.add_parser("curve", help="the learning curve of a training run, as a Markdown table",
                               description="Print the learning curve that `autometa rl2 train --history FILE` "
                                           "wrote: trailing means of the batches' mean trial reward and of the "
                                           "baselines' on the same tasks, at chosen iterations.")
    curve.add_argument("history", help="the JSON-lines file of `rl2 train --history`")
    curve.add_argument("--at", type=comma_ints, help="iterations to show (default: 30, 100, 200, then every 400; "
                                                     "the last is always shown)")
    curve.add_argument("--window", type=positive_int, default=30,
                       help="iterations in each trailing mean (default: %(default)s)")
    curve.add_argument("--metrics", type=comma_list, default=[],
                       help="more metrics of the history, as trailing means (e.g. approx_kl,epochs,explained_variance)")
    curve.set_defaults(func=run_curve)


def _command_line(args) -> str:
    """The ``autometa rl2 train`` command that ``args`` stand for (recorded with the agent)."""
    import shlex

    words = ["autometa", "rl2", "train"]
    for key, value in vars(args).items():
        if key in ("func", "command", "rl2", "extra", "passes_options"):
            continue
        if value is None or value is False or value == []:
            continue
        words.append("--" + key.replace("_", "-"))
        if value is not True:
            words.append(str(value))
    return shlex.join(words)


def run_train(args) -> None:
    """Run ``autometa rl2 train``."""
    import json

    from autometa._common import describe
    from autometa.rl.agent import RL2Agent
    from autometa.rl.ppo import RL2Config, train_rl2
    from autometa.rl.tasks import make_tasks

    if args.env == "bandit" and args.arms is None:
        raise UserError("bandits need the number of arms: add --arms K (e.g. --arms 5)")
    with as_user_error(ValueError):  # --arms and --horizon, checked by the task family
        tasks = make_tasks(args.env, args.horizon, n_arms=args.arms)
    time_budget = args.time_budget if args.time_budget is not None or args.steps is not None else DEFAULT_TIME_BUDGET
    names = {f.name for f in fields(RL2Config)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    with as_user_error(ValueError):  # --trials-per-batch, --lr, --gae-lambda, --gamma, ...
        config = RL2Config.for_setting(args.env, args.horizon, args.arms, **given)
        config.validate()
    resolved = device(args.device)
    set_threads(args.threads)
    print(describe(resolved))
    print(f"training RL2 on {tasks!r}, {tasks.trial_length} steps a trial, seed {args.seed}, device {resolved}")
    print(f"config: {config}")
    import torch

    torch.manual_seed(args.seed)
    agent = RL2Agent(tasks.spec(), **config.agent_kwargs())
    history: list[dict] = []
    command = _command_line(args)
    if args.history:
        open(args.history, "w").close()

    def checkpoint(final: bool = False) -> None:
        if not final:
            agent.training_summary = {"iterations": len(history), "env_steps": int(history[-1]["env_steps"]),
                                      "seconds": round(history[-1]["seconds"], 1), "seed": args.seed,
                                      "device": str(resolved), "config": asdict(config), "checkpoint": True,
                                      "command": command}
        agent.save(args.out, training={**agent.training_summary, "command": command})
        if args.curve:
            from autometa.rl.curves import plot_learning_curve

            plot_learning_curve(history, args.curve, title=f"RL2 on {tasks!r}, seed {args.seed}")

    def callback(iteration: int, metrics: dict) -> None:
        history.append(metrics)
        if args.history:
            with open(args.history, "a") as file:
                file.write(json.dumps({"iteration": iteration, **metrics}) + "\n")
        if args.save_every and iteration % args.save_every == 0:
            checkpoint()

    agent, _ = train_rl2(tasks, config, iterations=args.steps, time_budget=time_budget, device=resolved,
                         seed=args.seed, verbose=not args.quiet and sys.stderr.isatty(), callback=callback,
                         agent=agent)
    summary = agent.training_summary
    last = history[-10:]
    recent = sum(h["mean_total"] for h in last) / len(last)
    baselines = "".join(f", {key} {sum(h[key] for h in last) / len(last):.3f}"
                        for key in ("random", "greedy", "oracle") if key in last[0])
    print(f"trained {summary['iterations']} PPO iterations ({summary['env_steps']:,} agent steps) in "
          f"{summary['seconds']:.1f} s ({summary['env_steps'] / max(summary['seconds'], 1e-9):,.0f} agent steps/s); "
          f"mean trial reward over the last {len(last)} batches: {recent:.3f}{baselines}")
    checkpoint(final=True)
    print(f"saved {args.out}" + (f" and {args.curve}" if args.curve else ""))


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
        if trained.get("command"):
            print(f"trained with: {trained['command']}")
    print(f"evaluating on {args.trials} new tasks, seed {args.seed}")
    results = compare(agent, args.trials, seed=args.seed, greedy=args.greedy)
    print(format_results(results))
    rl2 = results[-1]
    print(f"RL2 mean total reward: {rl2.mean:.3f} +- {rl2.half_width:.3f}")


def run_curve(args) -> None:
    """Run ``autometa rl2 curve``."""
    import json

    from autometa.rl.curves import curve_table

    try:
        with open(args.history) as lines:
            history = [json.loads(line) for line in lines if line.strip()]
    except FileNotFoundError:
        raise UserError(f"no history file {args.history!r}: `autometa rl2 train --history FILE` writes one") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{args.history} is not the JSON lines of `rl2 train --history` ({error})") from None
    with as_user_error(ValueError):
        print("\n".join(curve_table(history, at=args.at, window=args.window, extra=args.metrics)))
