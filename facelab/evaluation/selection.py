"""Which images an evaluation runs on: LFW or any folder, their identities, the View-2 pairs, and `--limit`.

A subset is the first N images of a fixed, seeded order, so a larger limit always contains a smaller one
(and every cached result is reused). With a pairs file the order walks the View-2 pairs first, taking whole
pairs round-robin over the 20 groups (fold 1 same, fold 1 different, fold 2 same, ...; each group shuffled
with the seed), so any subset holds complete pairs from every fold and the pairs protocol still applies;
the images no pair names follow in seeded random order. Without pairs the order is a seeded shuffle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from facelab.data.files import file_key, list_images
from facelab.data.lfw import find_lfw, read_pairs
from facelab.data.lfw_aligned import FILES_VIEW, VIEW as ALIGNED_VIEW, align_lfw
from facelab.errors import DatasetError
from facelab.image_io import IMAGE_SUFFIXES

LFW_SIZES = (FILES_VIEW, ALIGNED_VIEW)
"""LFW views `facelab evaluate --lfw-size` offers: the files as they are, or faces aligned to 112x96 (the paper's)."""


@dataclass(frozen=True)
class EvalImage:
    """One image to evaluate: its path, identity (None when unknown), file size and cache key (path in its set, content).

    In an aligned view `path` is the crop, `source` the LFW file, and `fallback` says MTCNN found no face to place it.
    """

    path: Path
    identity: str | None
    file_bytes: int
    key: str
    source: Path | None = None
    fallback: bool = False


@dataclass(frozen=True)
class EvalPair:
    """A View-2 pair inside an evaluation set: indices of its two images, same person or not, and its fold."""

    first: int
    second: int
    same: bool
    fold: int


@dataclass
class EvalSet:
    """The images of one evaluation (sorted by path), their pairs, where they came from, how they were picked, and
    the LFW view (one of LFW_SIZES; None for a folder)."""

    name: str
    source: str
    images: list[EvalImage]
    pairs: list[EvalPair] = field(default_factory=list)
    total_available: int = 0
    selection: str = "all"
    view: str | None = None

    @property
    def identities(self) -> np.ndarray | None:
        """Each image's identity, or None when no image has one (a flat folder)."""
        names = [image.identity for image in self.images]
        return None if any(name is None for name in names) else np.asarray(names)

    def subset(self, count: int | None, order: list[int]) -> EvalSet:
        """The first `count` images of `order` (indices into this set), sorted by path, with their complete pairs."""
        chosen = sorted(order[:count] if count is not None else order)
        position = {old: new for new, old in enumerate(chosen)}
        pairs = [EvalPair(position[p.first], position[p.second], p.same, p.fold) for p in self.pairs
                 if p.first in position and p.second in position]
        selection = self.selection if count is None or count >= len(order) else (
            f"first {len(chosen)} of the seeded order (see facelab.evaluation.selection)")
        return replace(self, images=[self.images[i] for i in chosen], pairs=pairs, selection=selection)


def _image(path: Path, identity: str | None, root: Path) -> EvalImage:
    """An EvalImage with its cache key: its path under the set's root and its content key (size and hash)."""
    return EvalImage(path, identity, path.stat().st_size, f"{path.relative_to(root).as_posix()}|{file_key(path)}")


def lfw_set(root: str | os.PathLike | None = None) -> EvalSet:
    """All LFW images (identity = person folder) and its View-2 pairs if pairs.txt is there; DatasetError if absent."""
    layout = find_lfw(root)
    images = [_image(path, path.parent.name, layout.images_dir) for path in layout.files()]
    pairs: list[EvalPair] = []
    if layout.pairs is not None:
        index = {image.path: number for number, image in enumerate(images)}
        pairs = [EvalPair(index[p.path1], index[p.path2], p.same, p.fold)
                 for p in read_pairs(root, missing="skip") if p.path1 in index and p.path2 in index]
    return EvalSet("lfw", f"LFW {layout.variant} at {layout.images_dir}", images, pairs, len(images), view=LFW_SIZES[0])


def lfw_view(evalset: EvalSet, size: str, root: str | os.PathLike | None = None, device: str | None = None,
             progress: bool = True) -> EvalSet:
    """The LFW set in the view `size` names: itself at 250x250, else its aligned crops (made once, cached).

    The crops keep the images' order, identities and pairs; their keys name the view, so no cached row is shared.
    """
    if size not in LFW_SIZES:
        raise DatasetError(f"unknown LFW size {size!r}: use {' or '.join(LFW_SIZES)}")
    if evalset.view != LFW_SIZES[0]:
        raise DatasetError(f"LFW views are made from LFW's own files, not from {evalset.source}")
    if size == evalset.view:
        return evalset
    aligned = align_lfw(root, [image.path for image in evalset.images], device=device, progress=progress)
    fallback = set(aligned.fallback)
    images = []
    for image in evalset.images:
        crop = aligned.crops[image.path]
        images.append(EvalImage(crop, image.identity, crop.stat().st_size, f"{size}|{image.key}|{file_key(crop)}",
                                image.path, image.path in fallback))
    source = (f"{evalset.source}, aligned to {size} (MTCNN's five landmarks -> the standard face-recognition "
              f"template; facelab.data.lfw_aligned)")
    return replace(evalset, source=source, images=images, view=size)


def folder_set(folder: str | os.PathLike) -> EvalSet:
    """Every image under a folder; the identity is the sub-folder an image sits in (None for images at the top)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"image folder not found: {folder}")
    paths = list_images(folder, recursive=True, suffixes=IMAGE_SUFFIXES)
    if not paths:
        raise DatasetError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    images = [_image(path, None if path.parent == folder else str(path.parent.relative_to(folder)), folder)
              for path in paths]
    return EvalSet(folder.name, f"image folder {folder}", images, [], len(images))


def seeded_order(evalset: EvalSet, seed: int = 0) -> list[int]:
    """Every image index of the set in the subset order described in the module docstring."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple[int, bool], list[EvalPair]] = {}
    for pair in evalset.pairs:
        groups.setdefault((pair.fold, not pair.same), []).append(pair)
    shuffled = [[group[i] for i in rng.permutation(len(group))] for _, group in sorted(groups.items())]
    order: list[int] = []
    seen: set[int] = set()
    for round_ in range(max((len(group) for group in shuffled), default=0)):
        for group in shuffled:
            if round_ < len(group):
                for index in (group[round_].first, group[round_].second):
                    if index not in seen:
                        seen.add(index)
                        order.append(index)
    rest = np.asarray([i for i in range(len(evalset.images)) if i not in seen], dtype=np.int64)
    return order + [int(i) for i in rest[rng.permutation(len(rest))]]


def select(evalset: EvalSet, limit: int | None, seed: int = 0) -> tuple[EvalSet, list[int]]:
    """The evaluated set (the first `limit` images of the seeded order, or all) and that order within it."""
    if limit is not None and limit < 1:
        raise DatasetError(f"--limit must be at least 1, got {limit}")
    order = seeded_order(evalset, seed)
    chosen = evalset.subset(limit, order)
    position = {image.key: number for number, image in enumerate(chosen.images)}
    return chosen, [position[evalset.images[i].key] for i in order if evalset.images[i].key in position]
