"""The Optuna face of autometa: task descriptors now; the knowledge base and
the meta-learned sampler will follow.

:mod:`autometa.hpo.metafeatures` imports no Optuna, so descriptors can be
computed where Optuna is not installed.
"""

from autometa.hpo.metafeatures import METAFEATURES, compute_metafeatures, metafeature_vector

__all__ = ["METAFEATURES", "compute_metafeatures", "metafeature_vector"]
