"""Warm-start a study from three earlier ones through OptunaHub.

Run from the repository root: python plugins/samplers/meta_learned/example.py
"""

import optuna
import optunahub

module = optunahub.load_local_module(package="samplers/meta_learned", registry_root="plugins")


def objective(trial: optuna.Trial, optimum: float) -> float:
    x = trial.suggest_float("x", -10, 10)
    y = trial.suggest_float("y", -10, 10)
    return (x - optimum) ** 2 + (y + optimum) ** 2


def main(n_trials: int = 20) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    earlier = []
    for optimum in (1.0, 2.0, 3.0):
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
        study.optimize(lambda trial: objective(trial, optimum), n_trials=40)
        earlier.append(study)
    sampler = module.MetaLearnedSampler(module.KnowledgeBase.from_studies(earlier), n_warm_start=3, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda trial: objective(trial, 2.5), n_trials=n_trials)
    warm = sum(trial.user_attrs.get("autometa:warm_start", False) for trial in study.trials)
    print(f"best value {study.best_value:.4f} after {n_trials} trials ({warm} warm-started)")
    return study


if __name__ == "__main__":
    main()
