"""OptunaHub package: autometa's ``MetaLearnedSampler``.

The sampler itself lives in the ``autometa`` package (``pip install autometa``);
this module re-exports it so that

    module = optunahub.load_module("samplers/meta_learned")
    sampler = module.MetaLearnedSampler(module.KnowledgeBase.from_storage(url))

works like any other OptunaHub sampler.
"""

from autometa.hpo import KnowledgeBase, MetaLearnedSampler, compute_metafeatures

__all__ = ["KnowledgeBase", "MetaLearnedSampler", "compute_metafeatures"]
