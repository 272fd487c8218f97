"""LFW for evaluation: the deep-funneled 250x250 images by person, and the View 2 pairs of `pairs.txt`."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from facelab.data.files import Scan, image_tensor, list_images, read_rgb, scan_images
from facelab.data.registry import missing_error
from facelab.errors import DatasetError
from facelab.runtime import data_root

IMAGE_FOLDERS = (("lfw/lfw-deepfunneled/lfw-deepfunneled", "deep-funneled (Kaggle mirror layout)"),
                 ("lfw/lfw-deepfunneled", "deep-funneled"),
                 ("lfw-deepfunneled", "deep-funneled"),
                 ("lfw", "plain layout (original or funneled images)"))
"""Image folders tried under the data root, in order, with what each layout holds."""

PAIRS_FILES = ("lfw/pairs.txt", "lfw/lfw-deepfunneled/pairs.txt", "pairs.txt")


@dataclass
class LFWLayout:
    """Where LFW was found: the folder of per-person folders, which variant it is, and the pairs file."""

    images_dir: Path
    variant: str
    pairs: Path | None

    def files(self) -> list[Path]:
        """Every image file, person folder by person folder in name order: the one listing of LFW."""
        return [path for person in sorted(p for p in self.images_dir.iterdir() if p.is_dir())
                for path in list_images(person, suffixes=(".jpg", ".jpeg", ".png"))]


def holds_people(folder: Path) -> bool:
    """Whether `folder` looks like LFW's: it has sub-folders with JPEGs in them."""
    if not folder.is_dir():
        return False
    people = sorted(child for child in folder.iterdir() if child.is_dir())
    return any(next(person.glob("*.jpg"), None) for person in people[:50])


def find_lfw(root: str | os.PathLike | None = None) -> LFWLayout:
    """LFW under the data root (see IMAGE_FOLDERS), or DatasetError saying where to get it and put it."""
    root = data_root(root)
    pairs = next((root / name for name in PAIRS_FILES if (root / name).is_file()), None)
    for folder, variant in IMAGE_FOLDERS:
        if holds_people(root / folder):
            return LFWLayout(root / folder, variant, pairs)
    if (root / "lfw").is_dir():
        raise missing_error("lfw", root, f"{root / 'lfw'} has no <Name>/<Name>_NNNN.jpg folders")
    raise missing_error("lfw", root, f"{root / 'lfw'} does not exist")


def image_path(images_dir: Path, name: str, number: int) -> Path:
    """LFW's file for a person's `number`-th image: <Name>/<Name>_NNNN.jpg."""
    return images_dir / name / f"{name}_{number:04d}.jpg"


class LFWImages(Dataset):
    """LFW images: dict(image=(3, 250, 250) float [0, 1], identity=int, name=str, path=str).

    Identities number the people with images in alphabetical order. `limit` keeps the first images
    (by person, then file); `size=(h, w)` resizes. Broken files are skipped and counted, grayscale kept as RGB.
    """

    def __init__(self, root: str | os.PathLike | None = None, limit: int | None = None,
                 size: tuple[int, int] | None = None, progress: bool = False) -> None:
        self.layout = find_lfw(root)
        files = self.layout.files()
        self.scan: Scan = scan_images(files[:limit] if limit else files, progress, desc="checking LFW")
        if not self.scan.good:
            raise missing_error("lfw", data_root(root), f"no readable image in {self.layout.images_dir}")
        self.paths = self.scan.good
        self.people = sorted({path.parent.name for path in self.paths})
        self._identity = {name: number for number, name in enumerate(self.people)}
        self.size = (int(size[0]), int(size[1])) if size else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, object]:
        path = self.paths[index]
        image = read_rgb(path)
        if self.size and self.size != image.shape[:2]:
            image = np.asarray(Image.fromarray(image).resize(self.size[::-1], Image.Resampling.BICUBIC))
        return {"image": image_tensor(image),
                "identity": self._identity[path.parent.name], "name": path.parent.name, "path": str(path)}

    def describe(self) -> dict[str, object]:
        """JSON-ready description: layout, image and identity counts, skips."""
        return {"dataset": "lfw", "source": f"{self.layout.variant} at {self.layout.images_dir}",
                "images": len(self.paths), "identities": len(self.people), **self.scan.summary()}


@dataclass(frozen=True)
class LFWPair:
    """One View 2 pair: its fold (0-9), whether both images show the same person, and the two images."""

    fold: int
    same: bool
    name1: str
    number1: int
    name2: str
    number2: int
    path1: Path
    path2: Path


def parse_pairs(path: Path) -> tuple[int, int, list[tuple[str, int, str, int, bool]]]:
    """(folds, pairs per fold and kind, [(name1, n1, name2, n2, same)]) from a pairs.txt, or DatasetError at the bad line."""
    try:
        lines = [line.split() for line in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the pairs file ({exc})") from None
    lines = [fields for fields in lines if fields]
    if not lines or len(lines[0]) != 2 or not all(field.isdigit() for field in lines[0]):
        raise DatasetError(f"{path}: first line must be '<folds> <pairs per fold>' (View 2: '10 300')")
    folds, per_fold = int(lines[0][0]), int(lines[0][1])
    pairs = []
    for number, fields in enumerate(lines[1:], 2):
        try:
            if len(fields) == 3:
                pairs.append((fields[0], int(fields[1]), fields[0], int(fields[2]), True))
            elif len(fields) == 4:
                pairs.append((fields[0], int(fields[1]), fields[2], int(fields[3]), False))
            else:
                raise ValueError
        except ValueError:
            raise DatasetError(f"{path}: line {number} is neither 'name i j' nor 'name1 i name2 j': "
                               f"{' '.join(fields)!r}") from None
    if len(pairs) != 2 * folds * per_fold:
        raise DatasetError(f"{path}: {len(pairs)} pairs, but its first line promises {folds} folds of "
                           f"{per_fold} same + {per_fold} different = {2 * folds * per_fold}")
    return folds, per_fold, pairs


def read_pairs(root: str | os.PathLike | None = None, path: str | os.PathLike | None = None,
               missing: str = "error") -> list[LFWPair]:
    """LFW View 2 pairs (6,000: 10 folds of 300 same then 300 different) with fold, label and image paths.

    `path` overrides the pairs file found under the data root. Pairs naming images that are not there
    raise DatasetError (missing='error') or are left out with a warning that counts them (missing='skip').
    """
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', not {missing!r}")
    layout = find_lfw(root)
    pairs_file = Path(path) if path else layout.pairs
    if pairs_file is None or not pairs_file.is_file():
        raise missing_error("lfw", data_root(root), f"pairs file {pairs_file or data_root(root) / 'lfw' / 'pairs.txt'} "
                            "not found")
    _, per_fold, rows = parse_pairs(pairs_file)
    pairs, absent = [], []
    for index, (name1, number1, name2, number2, same) in enumerate(rows):
        path1, path2 = image_path(layout.images_dir, name1, number1), image_path(layout.images_dir, name2, number2)
        lost = [str(p) for p in (path1, path2) if not p.is_file()]
        if lost:
            absent.extend(lost)
            continue
        pairs.append(LFWPair(index // (2 * per_fold), same, name1, number1, name2, number2, path1, path2))
    if absent:
        message = (f"{pairs_file}: {len(rows) - len(pairs)} of {len(rows)} pairs name images missing from "
                   f"{layout.images_dir} (e.g. {absent[0]})")
        if missing == "error":
            raise DatasetError(f"{message}; pass missing='skip' to leave those pairs out")
        warnings.warn(f"{message}; left out", stacklevel=2)
    return pairs
