"""Meta-train a Prototypical Network on Omniglot alphabets, then classify characters of unseen ones.

Run: python examples/fewshot_omniglot.py --data images_background_small1.zip --data images_background_small2.zip [--smoke]
"""

import argparse

from autometa.apps import omniglot_recipe as fewshot
from autometa.data import load_omniglot
from autometa.tasks import EpisodeSampler

TEST_ALPHABETS = ["Japanese_(katakana)", "Korean"]


def main(data: list[str], smoke: bool = False) -> float:
    omniglot = load_omniglot(data, rotations=True)
    train_set = omniglot.subset_alphabets([a for a in omniglot.alphabet_names if a not in TEST_ALPHABETS])
    learner, summary = fewshot.train(train_set, "protonet", steps=5 if smoke else 1000, device="cpu", seed=0)
    print(f"meta-trained on {len(train_set.alphabet_names)} alphabets in {summary['seconds']:.0f} s")

    test_set = load_omniglot(data).subset_alphabets(TEST_ALPHABETS)
    import torch

    episodes = EpisodeSampler(torch.from_numpy(test_set.images).unsqueeze(1), test_set.labels, n_way=20, k_shot=1,
                              n_query=5, groups=test_set.groups, random_state=1)
    accuracy, half = fewshot.evaluate_episodes(learner, episodes, n_episodes=20 if smoke else 500)
    print(f"20-way 1-shot within unseen alphabets: {100 * accuracy:.1f}% +- {100 * half:.1f}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True, help="an Omniglot zip or folder (repeatable)")
    parser.add_argument("--smoke", action="store_true", help="a few steps only, to check it runs")
    args = parser.parse_args()
    main(args.data, smoke=args.smoke)
