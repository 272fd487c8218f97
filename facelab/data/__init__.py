"""facelab's datasets, read from a local data root: CLIC 2020 (or natural/), CelebA faces and LFW.

The data root is the `root` argument, else $FACELAB_DATA, else <facelab cache>/data. Nothing is
downloaded unless `download(name)` (`facelab data download NAME`) is called; a missing dataset raises
DatasetError saying what to get, from where, and where to put it. `check()` / `format_check()` back
`facelab data check`; `face_training_problem()` says whether CelebA faces for the face phase are there.
"""

from __future__ import annotations

from typing import Any

from facelab.data.celeba import CelebAFaces, face_training_problem, find_celeba, read_identities
from facelab.data.check import DatasetStatus, check, format_check
from facelab.data.downloads import download
from facelab.data.lfw import LFWImages, LFWPair, find_lfw, read_pairs
from facelab.data.natural import NaturalImages, find_natural
from facelab.data.registry import REGISTRY, DatasetInfo, OfficialFile, dataset_info

__all__ = [
    "REGISTRY", "CelebAFaces", "DatasetInfo", "DatasetStatus", "LFWImages", "LFWPair", "NaturalImages",
    "OfficialFile", "check", "dataset_info", "describe", "download", "face_training_problem", "find_celeba",
    "find_lfw", "find_natural", "format_check", "read_identities", "read_pairs",
]


def describe(dataset: Any) -> dict[str, Any]:
    """A JSON-ready description of a facelab dataset (or a torch Subset of one): source, split and counts."""
    if hasattr(dataset, "dataset") and hasattr(dataset, "indices"):
        return {**describe(dataset.dataset), "subset": len(dataset.indices)}
    if hasattr(dataset, "describe"):
        return dataset.describe()
    return {"dataset": type(dataset).__name__, "items": len(dataset)}
