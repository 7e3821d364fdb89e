"""Meta-learn to play 5-armed Bernoulli bandits with RL^2, then compare with the classics.

A GRU agent plays trials of 10 pulls on bandits whose arm probabilities are
drawn from U[0, 1]; PPO trains it across trials, so that within a trial it
learns from its own rewards which arm to pull. It is then scored on 2,000 new
bandits beside Thompson sampling, UCB1, Gittins indices and the exact
Bayes-optimal value.

Run: python examples/rl2_bandits.py [--smoke]
"""

import argparse

from autometa.rl import BernoulliBandits, RL2Config, compare, train_rl2
from autometa.rl.evaluation import format_results


def main(smoke: bool = False) -> float:
    bandits = BernoulliBandits(n_arms=5, n_pulls=10)
    config = RL2Config(trials_per_batch=32 if smoke else 256)
    agent, history = train_rl2(bandits, config, iterations=3 if smoke else 300, seed=0)
    print(f"trained {len(history)} PPO iterations; last batch's mean trial reward {history[-1]['mean_total']:.3f}")
    results = compare(agent, n_trials=300 if smoke else 2000, seed=1)
    print(format_results(results))
    return results[-1].mean


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few PPO iterations only, to check it runs")
    main(smoke=parser.parse_args().smoke)
