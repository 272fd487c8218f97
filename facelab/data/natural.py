"""Natural images for pretraining: CLIC 2020 when it is under the data root, else facelab's natural/ folder.

Training items are random crops (uniform position, torch's RNG, so `seed_everything` repeats them);
validation items are one centre crop per image. With CLIC, training is its professional + mobile
train images and validation its valid images. With natural/, training is photos/ and 18 of the 24
Kodak images (random crops), and validation is the other 6 Kodak images (every 4th, fixed centre
crops), never seen in training. `describe()` says which source was used.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from facelab.data.files import Scan, image_tensor, list_images, read_rgb, scan_images
from facelab.data.registry import missing_error
from facelab.runtime import data_root

CLIC_FOLDERS = ("clic2020", "CLIC2020", "clic", "CLIC")
"""Folder names under the data root searched for CLIC 2020, in this order."""

NATURAL_CROPS_PER_IMAGE = 19
"""Random crops per natural/ image per epoch: 30 training images x 19 = 570 crops, about one pass over the paper's 568 CLIC images."""

KODAK_VAL_EVERY = 4
"""With natural/, every 4th Kodak image (kodim04, 08, ..., 24) is held out for validation, the rest train."""


@dataclass
class NaturalSource:
    """Where natural images were found: 'clic2020' or 'natural', its folder, and its train and validation files."""

    name: str
    location: Path
    train: list[Path]
    val: list[Path]
    note: str


def clic_split(relative: Path) -> str:
    """'valid', 'test' or 'train' for a file inside the CLIC folder, from the words in its folder names."""
    words = {word for part in relative.parts[:-1] for word in re.split(r"[^a-z0-9]+", part.lower())}
    if words & {"valid", "val", "validation"}:
        return "valid"
    return "test" if "test" in words else "train"


def find_clic(root: Path) -> NaturalSource | None:
    """CLIC 2020 under `root` (any of CLIC_FOLDERS, PNGs at any depth), or None when it holds no training image."""
    for folder in CLIC_FOLDERS:
        base = root / folder
        files = list_images(base, recursive=True, suffixes=(".png",))
        splits: dict[str, list[Path]] = {"train": [], "valid": [], "test": []}
        for path in files:
            splits[clic_split(path.relative_to(base))].append(path)
        if splits["train"]:
            note = f"CLIC 2020 at {base}"
            return NaturalSource("clic2020", base, splits["train"], splits["valid"], note)
    return None


def find_natural(root: str | os.PathLike | None = None) -> NaturalSource:
    """The natural-image source under the data root: CLIC 2020 when present, else natural/, else DatasetError.

    Validation is CLIC's valid images, else natural/kodak; `val` is empty when neither exists.
    """
    root = data_root(root)
    clic = find_clic(root)
    kodak = list_images(root / "natural" / "kodak")
    photos = list_images(root / "natural" / "photos")
    if clic:
        if not clic.val and kodak:
            clic.val, clic.note = kodak, f"{clic.note} (validation: natural/kodak, CLIC has no valid/ images)"
        return clic
    if not kodak and not photos:
        raise missing_error("clic2020", root, "neither CLIC 2020 nor the natural/ fallback (kodak/, photos/) was found")
    held_out = kodak[KODAK_VAL_EVERY - 1::KODAK_VAL_EVERY]
    note = f"natural/ fallback at {root / 'natural'} (CLIC 2020 not found under {root})"
    if not held_out:
        return NaturalSource("natural", root / "natural", photos + kodak, kodak,
                             f"{note}; fewer than {KODAK_VAL_EVERY} Kodak images, so validation overlaps training")
    train = photos + [path for path in kodak if path not in held_out]
    return NaturalSource("natural", root / "natural", train, held_out,
                         f"{note}; validation: every {KODAK_VAL_EVERY}th Kodak image, held out of training")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header."""
    with Image.open(path) as image:
        return image.size


class NaturalImages(Dataset):
    """Crops (3, crop, crop) float in [0, 1] of natural images: random in 'train', centred in 'val'.

    `max_images` keeps the first images (sorted by path); images smaller than the crop and broken
    files are skipped and counted. `crops_per_image` sets the epoch length in 'train' (default 1 for
    CLIC, NATURAL_CROPS_PER_IMAGE for natural/). `in_memory` keeps decoded images (default: only natural/).
    """

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", crop: int = 256,
                 max_images: int | None = None, crops_per_image: int | None = None,
                 in_memory: bool | None = None, progress: bool = False) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', not {split!r}")
        if crop < 1:
            raise ValueError(f"crop must be a positive number of pixels, not {crop}")
        self.source = find_natural(root)
        self.split, self.crop = split, crop
        paths = self.source.train if split == "train" else self.source.val
        if not paths:
            raise missing_error(self.source.name, data_root(root), f"no {split} images in {self.source.location} "
                                "(validation needs CLIC's valid/ images or natural/kodak/)")
        self.scan: Scan = scan_images(paths[:max_images] if max_images else paths, progress)
        small = {path for path in self.scan.good if min(image_size(path)) < crop}
        self.scan.skipped.update({str(path): f"smaller than the {crop}-px crop" for path in sorted(small)})
        self.scan.good = [path for path in self.scan.good if path not in small]
        self.paths = self.scan.good
        if not self.paths:
            raise missing_error(self.source.name, data_root(root),
                                f"no usable {split} image of at least {crop}x{crop} pixels in {self.source.location}")
        default_crops = 1 if self.source.name == "clic2020" else NATURAL_CROPS_PER_IMAGE
        self.crops_per_image = (crops_per_image or default_crops) if split == "train" else 1
        self.in_memory = self.source.name == "natural" if in_memory is None else in_memory
        self._memory: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.paths) * self.crops_per_image

    def image(self, index: int) -> np.ndarray:
        """The whole (H, W, 3) uint8 image behind item `index`."""
        number = index % len(self.paths)
        if number in self._memory:
            return self._memory[number]
        image = read_rgb(self.paths[number])
        if self.in_memory:
            self._memory[number] = image
        return image

    def __getitem__(self, index: int) -> torch.Tensor:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} crops")
        image = self.image(index % len(self))
        height, width = image.shape[:2]
        if self.split == "train":
            top = int(torch.randint(0, height - self.crop + 1, ()))
            left = int(torch.randint(0, width - self.crop + 1, ()))
        else:
            top, left = (height - self.crop) // 2, (width - self.crop) // 2
        patch = image[top:top + self.crop, left:left + self.crop]
        return image_tensor(patch)

    def describe(self) -> dict[str, object]:
        """JSON-ready description: which source was used (CLIC or natural/), where, and the counts."""
        return {"dataset": self.source.name, "source": self.source.note, "split": self.split,
                "images": len(self.paths), "items": len(self), "crop": self.crop,
                "crops_per_image": self.crops_per_image, **self.scan.summary()}
