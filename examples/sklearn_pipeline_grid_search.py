"""Meta-train once, then fit new few-shot tasks inside scikit-learn pipelines.

A table of 100 classes whose means differ in a few directions hidden among
noisy ones: classes 0-59 are the past tasks we meta-learn from, classes
60-99 hold a new 5-way task with three labelled examples per class. A grid
search tunes how many inner steps MAML adapts with, on the new task's few
examples; every candidate starts from the same meta-learned initialisation.

Run: python examples/sklearn_pipeline_grid_search.py [--smoke]
"""

import argparse

import numpy as np
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from autometa import FewShotClassifier


def main(smoke: bool = False) -> float:
    X, y = make_classification(n_samples=3000, n_features=30, n_informative=7, n_redundant=0,
                               n_classes=100, n_clusters_per_class=1, class_sep=1.5, random_state=0)
    past = y < 60
    clf = FewShotClassifier(algorithm="maml", n_way=5, k_shot=3, meta_steps=20 if smoke else 500,
                            random_state=0, device="cpu")
    clf.meta_fit(StandardScaler().fit_transform(X[past]), y[past])

    rng = np.random.default_rng(0)
    classes = rng.choice(np.arange(60, 100), 5, replace=False)
    rows = [rng.permutation(np.flatnonzero(y == c)) for c in classes]
    support = np.concatenate([r[:3] for r in rows])
    query = np.concatenate([r[3:] for r in rows])

    pipeline = make_pipeline(StandardScaler(), clf)
    search = GridSearchCV(pipeline, {"fewshotclassifier__inner_steps": [1, 5, 10]}, cv=3)
    search.fit(X[support], y[support])
    accuracy = search.score(X[query], y[query])

    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(1)).fit(X[support], y[support])
    print(f"best inner_steps: {search.best_params_['fewshotclassifier__inner_steps']}")
    print(f"5-way 3-shot accuracy on new classes: meta-trained MAML {accuracy:.3f}, "
          f"1-nearest neighbour {knn.score(X[query], y[query]):.3f}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few meta-steps only, to check it runs")
    main(smoke=parser.parse_args().smoke)
