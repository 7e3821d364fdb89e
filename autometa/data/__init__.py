"""Loaders of real data: Omniglot, Lake's one-shot runs, PMLB."""

from autometa.data.lake import LakeResult, LakeRun, load_lake_runs, make_lake_runs, pixel_distances, score_lake
from autometa.data.omniglot import OmniglotDataset, decode_image, load_omniglot
from autometa.data.pmlb import load_pmlb, pmlb_index

__all__ = [
    "LakeResult",
    "LakeRun",
    "OmniglotDataset",
    "decode_image",
    "load_lake_runs",
    "load_omniglot",
    "load_pmlb",
    "make_lake_runs",
    "pixel_distances",
    "pmlb_index",
    "score_lake",
]
