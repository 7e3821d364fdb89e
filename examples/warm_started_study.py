"""Warm-start an Optuna study from the knowledge base that ships with autometa.

Tunes scikit-learn's HistGradientBoostingClassifier on the wine data set:
``MetaLearnedSampler.from_pretrained`` describes the data set by its
meta-features, starts from configurations that did best on the most similar
of the PMLB data sets it was built from, then searches with its meta-learned
surrogate. TPE with the same budget runs beside it.

Run: python examples/warm_started_study.py [--smoke]
"""

import argparse

import optuna
from sklearn.datasets import load_wine

from autometa.hpo import MetaLearnedSampler, make_objective


def main(smoke: bool = False) -> dict[str, float]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = load_wine(return_X_y=True, as_frame=True)
    objective = make_objective("hist_gradient_boosting", X, y, cv=3)  # balanced accuracy
    n_trials = 4 if smoke else 25
    best = {}
    for name, sampler in {
        "MetaLearnedSampler.from_pretrained": MetaLearnedSampler.from_pretrained("hist_gradient_boosting", X, y, seed=0),
        "TPE": optuna.samplers.TPESampler(seed=0),
    }.items():
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective, n_trials=n_trials)
        best[name] = study.best_value
        print(f"{name:36s} best {objective.metric} {study.best_value:.4f} after {n_trials} trials")
    return best


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few trials only, to check it runs")
    main(smoke=parser.parse_args().smoke)
