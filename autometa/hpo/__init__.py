"""The Optuna face of autometa: task descriptors, the knowledge base of
earlier studies, and ``MetaLearnedSampler`` (portfolio warm start, response
similarity, a meta-learned surrogate).

The models never see a study; the sampler is the protocol around them:

- :mod:`~autometa.hpo.metafeatures`, :mod:`~autometa.hpo.knowledge_base`:
  task descriptors and the earlier tasks' trials;
- :mod:`~autometa.hpo.encoding`: configurations and objective values as
  numbers (one scale, one notion of the same categorical value);
- :mod:`~autometa.hpo.portfolio`, :mod:`~autometa.hpo.similarity`,
  :mod:`~autometa.hpo.surrogate`, :mod:`~autometa.hpo.candidates`,
  :mod:`~autometa.hpo.encoded_tasks`: the warm start, task similarity, the
  meta-learned surrogate and the configurations it scores;
- :mod:`~autometa.hpo.sampler`: ``MetaLearnedSampler``, the Optuna protocol;
- :mod:`~autometa.hpo.search_cv`: ``MetaSearchCV``, the search as one
  scikit-learn estimator.

:mod:`autometa.hpo.metafeatures` imports no Optuna, so descriptors can be
computed where Optuna is not installed; the other names import Optuna (and
torch) on first use.
"""

from autometa._lazy import lazy_attributes

# public name -> module that defines it, imported on first access so that
# ``import autometa.hpo`` imports neither Optuna nor scikit-learn (the
# ``autometa`` command imports it to build its parser).
_LAZY = {
    "METAFEATURES": "autometa.hpo.metafeatures",
    "compute_metafeatures": "autometa.hpo.metafeatures",
    "metafeature_vector": "autometa.hpo.metafeatures",
    "KnowledgeBase": "autometa.hpo.knowledge_base",
    "MetaLearnedSampler": "autometa.hpo.sampler",
    "MetaSearchCV": "autometa.hpo.search_cv",
    "DeepKernelRegressor": "autometa.hpo.surrogate",
    "response_similarity": "autometa.hpo.similarity",
    "SEARCH_SPACES": "autometa.hpo.spaces",
    "make_objective": "autometa.hpo.spaces",
    "load_pretrained": "autometa.hpo.pretrained",
    "pretrained_names": "autometa.hpo.pretrained",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
