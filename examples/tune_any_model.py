"""Tune a scikit-learn model in one line with ``MetaSearchCV``, and compare with GridSearchCV.

``MetaSearchCV`` recognises the pipeline's last step (here
HistGradientBoostingClassifier), warm-starts its search from the knowledge
base that ships with autometa and behaves like ``GridSearchCV``: ``fit``,
``best_params_``, ``cv_results_``, ``predict``. It is scored here on a test
split the search never saw, beside a ``GridSearchCV`` over a small grid and
the untuned model.

Run: python examples/tune_any_model.py [--smoke]
"""

import argparse
import time

from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from autometa import MetaSearchCV


def main(smoke: bool = False) -> dict[str, float]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    model = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(random_state=0))
    n_trials, cv = (2, 2) if smoke else (10, 5)
    grid = {"histgradientboostingclassifier__learning_rate": [0.03, 0.1, 0.3],
            "histgradientboostingclassifier__max_leaf_nodes": [7, 31]}
    searches = {
        "untuned": model,
        f"MetaSearchCV, {n_trials} trials": MetaSearchCV(model, n_trials=n_trials, cv=cv, scoring="balanced_accuracy",
                                                         random_state=0),
        "GridSearchCV, 6 points": GridSearchCV(model, grid, cv=cv, scoring="balanced_accuracy"),
    }
    scores = {}
    for name, search in searches.items():
        start = time.perf_counter()
        search.fit(X_train, y_train)
        scores[name] = balanced_accuracy_score(y_test, search.predict(X_test))
        print(f"{name:28s} test balanced accuracy {scores[name]:.4f}  ({time.perf_counter() - start:.1f} s)")
    meta = searches[f"MetaSearchCV, {n_trials} trials"]
    print("best parameters:", {k.split("__")[-1]: v for k, v in meta.best_params_.items()})
    print(f"warm-started from the shipped '{meta.search_space_}' knowledge base: {meta.warm_started_}")
    return scores


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few trials only, to check it runs")
    main(smoke=parser.parse_args().smoke)
