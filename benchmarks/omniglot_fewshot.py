"""Few-shot accuracy on Omniglot alphabets never seen in meta-training.

Meta-train each algorithm with :func:`autometa.apps.omniglot_recipe.train` on all but the
test alphabets (rotations as classes, augmentation, one training alphabet
held out for model selection), then score 5- and 20-way, 1- and 5-shot
episodes drawn within one test alphabet, 15 queries per class, with a 95%
confidence interval over episodes; pixel-space nearest neighbour on the same
episodes is the baseline. Gradient-based learners have an output layer per
number of ways, so they are trained once for 5-way and once for 20-way.
``learner_options`` maps an algorithm to constructor arguments of its
learner (e.g. ``{"matching": {"fce": True}}``); its rows name them.
"""

from __future__ import annotations

import time

import torch

from autometa.apps import omniglot_recipe as fewshot
from autometa._common import describe
from autometa.data import load_omniglot
from autometa.tasks import EpisodeSampler

SETTINGS = ((5, 1), (5, 5), (20, 1), (20, 5))
GRADIENT_BASED = ("maml", "fomaml", "reptile")


def run(sources, test_alphabets=("Japanese_(katakana)", "Korean"), algorithms=("protonet", "matching", "maml", "reptile"),
        steps: int = 2000, n_episodes: int = 1000, device: str = "cpu", seed: int = 0, verbose: bool = False,
        ways=(5, 20), learner_options: dict[str, dict] | None = None) -> list[dict]:
    settings = [(n_way, k_shot) for n_way, k_shot in SETTINGS if n_way in ways]
    if not settings:
        raise ValueError(f"ways {list(ways)}: expected a subset of 5, 20")
    train_set = load_omniglot(sources, rotations=True)
    names = train_set.alphabet_names
    train_set = train_set.subset_alphabets([a for a in names if a not in test_alphabets])
    test_set = load_omniglot(sources).subset_alphabets(list(test_alphabets))
    test_x = torch.from_numpy(test_set.images).unsqueeze(1)
    print(f"Omniglot few-shot: meta-train on {', '.join(train_set.alphabet_names)} (rotations as classes); "
          f"test within {', '.join(test_alphabets)}; {n_episodes} episodes, 15 queries per class; "
          f"{steps} meta-steps per model; seed {seed}")
    print(f"machine: {describe(device)}")

    def sampler(n_way, k_shot):
        return EpisodeSampler(test_x, test_set.labels, n_way, k_shot, 15, groups=test_set.groups,
                              random_state=seed + 1000 * n_way + k_shot)

    rows = []
    for n_way, k_shot in settings:
        accuracy, half = fewshot.pixel_nearest_neighbour_accuracy(sampler(n_way, k_shot), n_episodes)
        rows.append({"algorithm": "pixel 1-NN", "n_way": n_way, "k_shot": k_shot, "accuracy": accuracy, "ci": half})
    _print(rows)
    learner_options = learner_options or {}
    for algorithm in algorithms:
        options = learner_options.get(algorithm, {})
        label = algorithm + "".join(f" {key}={value}" for key, value in options.items())
        train_ways = sorted({n_way for n_way, _ in settings}) if algorithm in GRADIENT_BASED else (None,)
        for train_way in train_ways:
            learner, summary = fewshot.train(train_set, algorithm, n_way=train_way, steps=steps, time_budget=None,
                                             device=device, seed=seed, verbose=verbose,
                                             learner_options=options)
            new = []
            for n_way, k_shot in settings:
                if train_way is not None and n_way != train_way:
                    continue
                start = time.perf_counter()
                accuracy, half = fewshot.evaluate_episodes(learner, sampler(n_way, k_shot), n_episodes, device=device)
                new.append({"algorithm": label, "n_way": n_way, "k_shot": k_shot, "accuracy": accuracy, "ci": half,
                            "train_s": summary["seconds"], "train_way": summary["n_way"],
                            "eval_s": time.perf_counter() - start})
            _print(new)
            rows += new
    return rows


def _print(rows) -> None:
    for row in rows:
        extra = f"  (trained {row['train_way']}-way, {row['train_s']:.0f} s)" if "train_s" in row else ""
        print(f"  {row['algorithm']:<11} {row['n_way']:>2}-way {row['k_shot']}-shot  "
              f"{100 * row['accuracy']:5.1f}% +- {100 * row['ci']:.1f}{extra}", flush=True)
