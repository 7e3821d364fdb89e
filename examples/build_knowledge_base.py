"""Build your own knowledge base from studies you already ran, then warm-start a new one.

Three earlier studies tune a k-nearest-neighbours classifier on three of
scikit-learn's data sets, in one SQLite storage. Each study's data set is
described by its meta-features (stored in the study's user attrs, so every
worker reading the storage sees them). A new study on a fourth data set then
starts from the configurations that did best on the most similar earlier ones.

Run: python examples/build_knowledge_base.py [--smoke] [--storage sqlite:///kb.db]
"""

import argparse
import tempfile
from pathlib import Path

import optuna
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from autometa import KnowledgeBase, MetaLearnedSampler
from autometa.hpo import compute_metafeatures


def objective_for(X, y):
    def objective(trial: optuna.Trial) -> float:
        model = make_pipeline(StandardScaler(), KNeighborsClassifier(
            n_neighbors=trial.suggest_int("n_neighbors", 1, 50, log=True),
            weights=trial.suggest_categorical("weights", ["uniform", "distance"]),
            p=trial.suggest_float("p", 1.0, 3.0),
        ))
        return cross_val_score(model, X, y, cv=3).mean()

    return objective


def main(smoke: bool = False, storage: str | None = None) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = storage or f"sqlite:///{Path(tempfile.mkdtemp()) / 'earlier.db'}"
    n_trials = 4 if smoke else 30
    for name, load in {"iris": load_iris, "wine": load_wine, "digits": load_digits}.items():
        X, y = load(return_X_y=True)
        study = optuna.create_study(study_name=f"knn:{name}", storage=storage, direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=0), load_if_exists=True)
        study.optimize(objective_for(X, y), n_trials=max(0, n_trials - len(study.trials)))
        KnowledgeBase.describe_study(study, X, y)  # the descriptor goes into the study's user attrs
    kb = KnowledgeBase.from_storage(storage)
    print(f"knowledge base: {kb}")

    X, y = load_breast_cancer(return_X_y=True)
    sampler = MetaLearnedSampler(kb, descriptor=compute_metafeatures(X, y), n_warm_start=3, n_similar=2, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective_for(X, y), n_trials=5 if smoke else 20)
    for trial in study.trials[:3]:
        print(f"warm start from {trial.user_attrs['autometa:source_task']}: {trial.params} -> {trial.value:.4f}")
    print(f"best: {study.best_value:.4f} with {study.best_params}")
    return study


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few trials only, to check it runs")
    parser.add_argument("--storage", help="Optuna storage URL for the earlier studies (default: a temporary SQLite file)")
    args = parser.parse_args()
    main(smoke=args.smoke, storage=args.storage)
