"""autometa: meta-learning made practical.

Few-shot learners in torch (:mod:`autometa.meta`), their scikit-learn face
(``FewShotClassifier``, ``FewShotRegressor``) and an Optuna sampler
warm-started from earlier studies (``MetaLearnedSampler``, ``KnowledgeBase``)
with its scikit-learn face (``MetaSearchCV``).

Importing the package is cheap: the heavy parts (torch models, Optuna) load
on first use of the name that needs them.
"""

from __future__ import annotations

from autometa._lazy import lazy_attributes

__version__ = "0.1.0"

# public name -> module that defines it; resolved lazily by __getattr__ so that
# ``import autometa`` imports neither Optuna nor matplotlib.
_LAZY = {
    "FewShotClassifier": "autometa.estimators",
    "FewShotRegressor": "autometa.estimators",
    "MetaLearnedSampler": "autometa.hpo",
    "KnowledgeBase": "autometa.hpo",
    "MetaSearchCV": "autometa.hpo",
}

__all__ = ["__version__", *_LAZY]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, also=["__version__"])
