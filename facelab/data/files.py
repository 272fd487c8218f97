"""Finding image files and spotting broken ones cheaply, before a DataLoader worker trips over them."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from facelab.errors import DatasetError, ImageError
from facelab.image_io import IMAGE_SUFFIXES, load_image, to_tensor

GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
"""Pillow modes of single-channel images: loaded as RGB with three equal channels, and counted."""


def list_images(folder: Path, recursive: bool = False, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files in `folder` (sorted; hidden files left out), or [] when it is not a folder."""
    if not folder.is_dir():
        return []
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.suffix.lower() in suffixes and not p.name.startswith(".") and p.is_file())


def probe_image(path: Path) -> tuple[str | None, bool]:
    """(problem, grayscale) for one file from its header and last bytes, without decoding it.

    A JPEG must end with its EOI marker and a PNG with its IEND chunk; a file that does not is decoded
    in full and called truncated only when that fails too (some JPEGs carry bytes after EOI).
    """
    try:
        with Image.open(path) as image:
            fmt, grayscale = image.format, image.mode in GRAYSCALE_MODES
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 12))
            tail = handle.read()
    except UnidentifiedImageError:
        return "not an image", False
    except (OSError, SyntaxError, ValueError) as exc:
        return f"unreadable ({exc})", False
    complete = (fmt != "JPEG" or tail.endswith(b"\xff\xd9")) and (fmt != "PNG" or b"IEND" in tail)
    if not complete:
        try:
            load_image(path)
        except ImageError:
            return "truncated", grayscale
    return None, grayscale


@dataclass
class Scan:
    """The outcome of probing a list of files: the usable ones, the skipped ones with why, and the grayscale count."""

    good: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    grayscale: int = 0

    def summary(self) -> dict[str, object]:
        """JSON-ready counts: usable, skipped (with the first few reasons) and grayscale images."""
        return {"usable": len(self.good), "skipped": len(self.skipped), "grayscale_as_rgb": self.grayscale,
                "skipped_examples": dict(list(self.skipped.items())[:5])}


def scan_images(paths: list[Path], progress: bool = False, desc: str = "checking images") -> Scan:
    """Probe every file: broken ones are skipped and counted, grayscale ones kept (loaded as RGB) and counted."""
    scan = Scan()
    for path in tqdm(paths, desc=desc, disable=not progress or len(paths) < 2000, leave=False):
        problem, grayscale = probe_image(path)
        if problem:
            scan.skipped[str(path)] = problem
        else:
            scan.good.append(path)
            scan.grayscale += grayscale
    return scan


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a dataset image, or DatasetError naming the file (safe to raise in a worker)."""
    try:
        return load_image(path)
    except ImageError as exc:
        raise DatasetError(f"dataset image cannot be read: {exc}; run `facelab data check`") from None


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1], copied (Pillow's arrays may be read-only)."""
    return to_tensor(image)[0]


def file_key(path: Path) -> str:
    """'<size>-<content hash>': what cached results of a file are keyed on, so a changed file is redone.

    Keyed on content, not modification time, so a copied or re-downloaded data set keeps its cache.
    """
    data = path.read_bytes()
    return f"{len(data)}-{hashlib.blake2b(data, digest_size=8).hexdigest()}"


def folder_tag(folder: Path) -> str:
    """A short stable name for a data folder, for its cache folder: its name and a hash of its full path."""
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:10]
    return f"{folder.name}-{digest}"


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
