"""Lake's one-shot benchmark cross-validated over alphabet folds of the small background sets.

The eight alphabets of ``images_background_small1`` and ``..._small2`` are
split into four folds of two. For each fold a model is trained exactly as
``autometa fewshot train`` trains it (its defaults unless told otherwise) on
the six other alphabets, and scored on 20 runs in Lake's layout (20-way
within-alphabet one-shot, training and test images by different drawers)
drawn from the fold's alphabets (:func:`autometa.data.make_lake_runs`).
Reported: each fold's mean error, the mean over folds with its 95% Student-t
interval over the four folds, and the mean over all 80 runs with its interval
over runs; pixel nearest neighbour on the same runs is the baseline.

Test-time choices can be tuned without the folds' test alphabets: with
``score_on="validation"`` each fold's model is scored instead on 20 runs
from the alphabet it held out for checkpoint selection (part of the fold's
training side), so the test runs stay unseen until the choice is made.

Models and runs are kept under ``out``; a fold whose model is already there
is scored again instead of retrained, so test-time choices can be compared
on the same models. Each run also writes ``out/results.json`` (settings and
per-run errors), so training choices, which need models of their own, can be
compared run by run with ``against``: the runs depend only on the folds and
the seed, so two folders with the same ones score their models on the same
runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from autometa._common import atomic_write_text, describe, mean_ci

# Two alphabets per fold, each fold with at least one alphabet of >= 20
# characters (Tagalog has 17, too few for a 20-way run); the first fold is the
# held-out pair of BENCHMARKS.md's single-split runs.
FOLDS = (
    ("Japanese_(katakana)", "Korean"),
    ("Sanskrit", "Tagalog"),
    ("Balinese", "Latin"),
    ("Early_Aramaic", "Greek"),
)
RESULTS = "results.json"  # in ``out``: the settings and per-run errors of the last run there
VALIDATION_RESULTS = "validation_results.json"  # the same, for runs from the validation alphabets
SCORE_ON = ("test", "validation")


def run(sources, out, folds=FOLDS, time_budget: float | None = None, steps: int | None = None, seed: int = 0,
        device: str = "cpu", scorings=("nearest",), views=(8,), validation: bool = True,
        distortion: str | None = None, loss: str = "prototypes", against=None, fine_tune_steps=(0,),
        fine_tune_lr: float | None = None, score_on: str = "test", precision: str | None = None,
        image_size: int = 28, ensemble: int = 1, verbose: bool = False) -> dict:
    """Train (or reuse) one model per fold and score it on its fold's runs.

    Every combination of ``scorings``, ``views`` and ``fine_tune_steps``
    (test-time choices of
    :class:`~autometa.apps.omniglot_recipe.LearnerClassifier`, fine-tuning
    at rate ``fine_tune_lr``, default the recipe's) is scored on
    the same models and runs; the first combination is the reference that
    the others are compared with, run by run. ``validation=False`` trains on
    every alphabet of the fold's training part and keeps the final model
    (``fewshot train --no-validation``); otherwise the recipe holds its
    default alphabet out to pick the best checkpoint. ``distortion`` names
    the training distortions (``fewshot train --distortion``; default:
    ProtoNet's recipe's), ``loss`` the
    ProtoNet's training loss (``fewshot train --loss``), ``precision`` the
    backbone's training precision (``fewshot train --precision``; default:
    ProtoNet's recipe's), ``image_size`` the side the images are decoded
    at for training and scoring (``fewshot train --image-size``; a reused
    model must have been trained at it), ``ensemble`` the number of
    ProtoNets per fold, each trained on an equal share of the budget
    (``fewshot train --ensemble``). ``against`` is
    another run's ``out`` folder, with the same folds and seed: every scoring
    both runs have is also compared with its errors there, run by run.
    ``score_on="validation"`` scores each model on runs from its validation
    alphabet instead of the fold's (``out/foldN/validation_runs``, seeded
    ``seed + 100 + N``; results in ``out/validation_results.json``); it needs
    models trained with validation.

    Returns ``{"pixel_errors": [per fold], "variants": {label: {"fold_errors":
    [per fold], "run_errors": [per run]}}}``, labels such as ``"nearest, 8 views"``.
    """
    import torch

    from autometa.apps import omniglot_recipe
    from autometa.data import (
        load_lake_runs,
        load_omniglot,
        make_lake_runs,
        pixel_distances,
        score_lake,
    )
    from autometa.meta import MetaLearner

    if score_on not in SCORE_ON:
        raise ValueError(f"score_on must be one of {', '.join(SCORE_ON)}, got {score_on!r}")
    if score_on == "validation" and not validation:
        raise ValueError("scoring on the validation alphabets needs models trained with validation; "
                         "drop --no-validation")
    results_name = RESULTS if score_on == "test" else VALIDATION_RESULTS
    distortion = distortion or omniglot_recipe.RECIPES["protonet"].distortion
    precision = precision or omniglot_recipe.RECIPES["protonet"].precision
    fine_tune_lr = omniglot_recipe.FINE_TUNE_LR if fine_tune_lr is None else fine_tune_lr
    out = Path(out).expanduser()
    reference_run = _read_against(against, folds, seed, results_name) if against is not None else None
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_omniglot(sources, image_size=image_size, rotations=True)
    names = set(dataset.alphabet_names)
    for fold in folds:
        unknown = [a for a in fold if a not in names]
        if unknown:
            raise ValueError(f"fold {fold}: unknown alphabet {unknown[0]!r}; valid: {', '.join(sorted(names))}")
    variants = {_label(scoring, n, tune): (scoring, n, tune)
                for scoring in scorings for n in views for tune in fine_tune_steps}
    limits = [f"{steps} steps"] if steps else []
    if time_budget or not steps:
        limits.append(f"{time_budget or omniglot_recipe.TIME_BUDGET:.0f} s budget")
    budget = ", ".join(limits)
    source = "the fold's alphabets" if score_on == "test" else "the alphabet its model validated on"
    print(f"Lake one-shot, cross-validated over {len(folds)} alphabet folds; per fold: train on the other alphabets "
          f"(`fewshot train` recipe, {budget}, {'' if validation else 'no validation, '}{distortion} distortions, "
          f"{loss} loss, {precision} precision, {image_size}x{image_size} images, "
          + (f"an ensemble of {ensemble} per fold, " if ensemble > 1 else "") + f"seed {seed}), "
          f"20 runs of 20-way one-shot from {source}; scored as: {'; '.join(variants)}"
          + (f" (fine-tuning rate {fine_tune_lr:g})" if any(fine_tune_steps) else ""))
    print(f"machine: {describe(str(device))}, torch threads {torch.get_num_threads()}")
    results = {label: {"fold_errors": [], "run_errors": []} for label in variants}
    pixel_errors = []
    for index, fold in enumerate(folds, start=1):
        fold_dir = out / f"fold{index}"
        model_path = fold_dir / "model.pt"
        train_set = dataset.subset_alphabets([a for a in dataset.alphabet_names if a not in fold])
        if score_on == "test":
            runs_dir, run_alphabets, run_seed = fold_dir / "runs", list(fold), seed + index
        else:
            run_alphabets = omniglot_recipe.default_val_alphabets(train_set)
            runs_dir, run_seed = fold_dir / "validation_runs", seed + 100 + index
        if not runs_dir.is_dir():
            make_lake_runs(sources, runs_dir, alphabets=run_alphabets, seed=run_seed)
        if model_path.is_file():
            learner = MetaLearner.load(model_path)
            trained_at = omniglot_recipe.trained_image_size(learner)
            if trained_at != image_size:
                raise ValueError(f"{model_path} was trained on {trained_at}x{trained_at} images, not {image_size}x"
                                 f"{image_size}; pass --image-size {trained_at} to score it, or another --out to "
                                 f"train at {image_size}")
            members = len(learner.backbone.branches) if learner.config["backbone"]["name"] == "concat" else 1
            if members != ensemble:
                raise ValueError(f"{model_path} is an ensemble of {members}, not {ensemble}; pass --ensemble "
                                 f"{members} to score it, or another --out to train an ensemble of {ensemble}")
            note = f"reused {model_path}"
        else:
            start, cpu = time.perf_counter(), os.times()
            learner, summary = omniglot_recipe.train(train_set, "protonet", steps=steps, time_budget=time_budget,
                                                     device=device, seed=seed, verbose=verbose,
                                                     val_alphabets=None if validation else [],
                                                     distortion=distortion, learner_options={"loss": loss},
                                                     precision=precision, ensemble=ensemble)
            learner.save(model_path)
            note = (f"trained {summary['steps']} steps in {time.perf_counter() - start:.0f} s "
                    f"(user {os.times().user - cpu.user:.0f} s, sys {os.times().system - cpu.system:.0f} s, "
                    f"{summary['precision']}), " + (
                        f"validated on {', '.join(summary['val_alphabets'])}, best step {summary['best_step']}"
                        if summary["val_alphabets"] else "no validation, final model"))
        learner.to(device)
        runs = load_lake_runs(runs_dir, image_size=image_size)
        pixel = score_lake(pixel_distances, runs)
        pixel_errors.append(pixel.mean_error)
        scored = "" if score_on == "test" else f", scored on {', '.join(run_alphabets)}"
        print(f"fold {index} ({', '.join(fold)}{scored}): pixel 1-NN {100 * pixel.mean_error:.1f}%; {note}")
        for label, (scoring, n, tune) in variants.items():
            classifier = omniglot_recipe.LearnerClassifier(learner, device, scoring=scoring, views=n,
                                                           fine_tune_steps=tune, fine_tune_lr=fine_tune_lr)
            result = score_lake(classifier, runs)
            errors = list(result.per_run_error.values())
            results[label]["fold_errors"].append(result.mean_error)
            results[label]["run_errors"] += errors
            print(f"  {label}: mean error {100 * result.mean_error:.1f}%; per run: "
                  f"{', '.join(f'{100 * e:.0f}' for e in errors)}", flush=True)
    print(f"over {len(folds)} folds (95% CI over folds; over all runs; paired with the first, run by run); "
          f"pixel 1-NN {100 * float(np.mean(pixel_errors)):.1f}%")
    reference = np.array(next(iter(results.values()))["run_errors"])
    for label, result in results.items():
        mean, half = mean_ci(result["fold_errors"])
        pooled, pooled_half = mean_ci(result["run_errors"])
        line = (f"  {label}: mean error {100 * mean:.1f}% +- {100 * half:.1f}; over {len(reference)} runs "
                f"{100 * pooled:.1f}% +- {100 * pooled_half:.1f}")
        difference = np.array(result["run_errors"]) - reference
        if difference.any():
            change, counts = _paired(difference)
            line += f"; minus the first: {change} points, {counts}"
        print(line)
    if reference_run is not None:
        print(f"against {against} ({_describe_training(reference_run['training'])}), this minus that, points over "
              f"the same {len(reference)} runs:")
        for label, result in results.items():
            if label in reference_run["variants"]:
                change, counts = _paired(np.array(result["run_errors"])
                                         - np.array(reference_run["variants"][label]["run_errors"]))
                print(f"  {label}: {change}, {counts}")
    training = {"budget": budget, "validation": validation, "distortion": distortion, "loss": loss,
                "precision": precision, "image_size": image_size, "ensemble": ensemble}
    summary = {"folds": [list(fold) for fold in folds], "seed": seed, "training": training,
               "scored_on": score_on, "pixel_errors": pixel_errors, "variants": results}
    atomic_write_text(out / results_name, json.dumps(summary, indent=1) + "\n")
    return {"pixel_errors": pixel_errors, "variants": results}


def _label(scoring: str, views: int, fine_tune_steps: int) -> str:
    """A variant's name, such as ``"nearest, 8 views, fine-tuned 20 steps"``."""
    label = f"{scoring}, {views} view{'s' * (views > 1)}"
    if fine_tune_steps:
        label += f", fine-tuned {fine_tune_steps} step{'s' * (fine_tune_steps > 1)}"
    return label


def _paired(difference: np.ndarray) -> tuple[str, str]:
    """Run-by-run error differences as ``"+x.x +- h.h"`` (points, 95% CI) and the runs better/equal/worse."""
    change, half = mean_ci(difference)
    return (f"{100 * change:+.1f} +- {100 * half:.1f}",
            f"runs better/equal/worse {(difference < 0).sum()}/{(difference == 0).sum()}/{(difference > 0).sum()}")


def _describe_training(training: dict) -> str:
    precision = training.get("precision", "float32")  # runs before precision were float32
    side = training.get("image_size", 28)  # and before image_size, 28x28
    return ", ".join([training["budget"], f"{training['distortion']} distortions", f"{training['loss']} loss",
                      f"{precision} precision", f"{side}x{side} images"]
                     + ([f"an ensemble of {training['ensemble']}"] if training.get("ensemble", 1) > 1 else [])
                     + ([] if training["validation"] else ["no validation"]))


def _read_against(folder, folds, seed: int, name: str = RESULTS) -> dict:
    """The results ``name`` of the run in ``folder``; a ValueError unless it used ``folds`` and ``seed`` (its runs)."""
    path = Path(folder).expanduser() / name
    if not path.is_file():
        raise ValueError(f"--against: no {name} in {path.parent}; give the --out folder of a finished lake-cv run"
                         + ("" if name == RESULTS else " scored on the validation alphabets"))
    try:
        results = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"--against: {path} is not JSON ({error})") from None
    if not isinstance(results, dict) or not {"folds", "seed", "training", "variants"} <= results.keys():
        raise ValueError(f"--against: {path} is not a lake-cv results file")
    if results["folds"] != [list(fold) for fold in folds] or results["seed"] != seed:
        raise ValueError(f"--against: {path} was scored on other runs (folds {results['folds']}, seed "
                         f"{results['seed']}); compare runs with the same folds and --seed")
    return results
