"""LFW aligned to 112x96 the way face-recognition work (and the paper) evaluates it, made once and cached.

Each image's face is the one FaceNet's align_dataset_mtcnn keeps (largest, nearest the centre: on 100 seeded
deep-funneled images the most probable face was a bystander in 2); a similarity transform puts its five MTCNN
landmarks on the standard template (`facelab.data.align.FR_TEMPLATE`). Every image gets a crop: where MTCNN
finds no face, FALLBACK_LANDMARKS place it, and the image is counted. Crops are lossless PNGs under
`cache_dir()/lfw-aligned/`, named by the LFW file's content key; the index of each LFW folder is keyed by
file name and content (`facelab.data.celeba.FaceIndex`), so a re-copied data set keeps its cache and an
interrupted build resumes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facelab.data.align import FR_SIZE, FR_TEMPLATE, align_face
from facelab.data.celeba import FaceIndex, box_list, cached_results
from facelab.data.files import file_key
from facelab.data.lfw import find_lfw
from facelab.errors import DatasetError
from facelab.image_io import atomic_write, encode_png
from facelab.runtime import cache_dir

VIEW = f"{FR_SIZE[0]}x{FR_SIZE[1]}"
"""The view's name, as `facelab evaluate --lfw-size` takes it."""

FILES_VIEW = "250x250"
"""LFW's deep-funneled files as they are, beside VIEW, their faces aligned to the paper's template."""

CACHE_VERSION = 1
"""Bumped when detection, alignment or the fallback changes, which invalidates every cached crop."""

FALLBACK_LANDMARKS = np.array([[0.4188, 0.4537], [0.5891, 0.4494], [0.5049, 0.5497],
                               [0.4326, 0.6339], [0.5837, 0.6310]])
"""Five landmarks (x, y) as fractions of width / height: median MTCNN landmarks of 100 seeded deep-funneled files."""

FACE_BOX = (0.056, 0.096, 0.901, 1.082)
"""x1, y1, x2, y2 as fractions of the crop: the median MTCNN box on 100 such crops (it runs past the bottom edge)."""


@dataclass
class AlignedLFW:
    """The aligned view of some LFW files: each file's 112x96 PNG crop, and the files MTCNN found no face in."""

    crops: dict[Path, Path]
    fallback: list[Path]

    def describe(self) -> dict[str, object]:
        """JSON-ready counts: crops, and those placed by the fallback landmarks (with a few examples)."""
        return {"view": VIEW, "images": len(self.crops), "fallback": len(self.fallback),
                "fallback_examples": [str(path) for path in self.fallback[:5]]}


def cache_folder() -> Path:
    """The view's cache folder: crops/ (PNG, by content key) and one index per LFW folder name."""
    return cache_dir() / "lfw-aligned" / f"{VIEW}-v{CACHE_VERSION}"


def fallback_landmarks(height: int, width: int) -> np.ndarray:
    """FALLBACK_LANDMARKS in pixels of a height x width image."""
    return FALLBACK_LANDMARKS * [width, height]


def align_lfw(root: str | os.PathLike | None = None, files: list[Path] | None = None, device: str | None = None,
              progress: bool = True) -> AlignedLFW:
    """The 112x96 crop of each LFW file (default: every image of `find_lfw(root)`), from the cache or made now.

    MTCNN runs on `device` for files not cached yet. A file that cannot be read raises DatasetError naming it.
    """
    from facelab.faces import detect_faces

    layout = find_lfw(root)
    if files is None:
        files = layout.files()
    crops = cache_folder() / "crops"

    def detect_chunk(paths: list[Path], images: list[np.ndarray]) -> list[dict]:
        entries = []
        for path, image, face in zip(paths, images, detect_faces(images, device=device, pick="central"), strict=True):
            landmarks = fallback_landmarks(*image.shape[:2]) if face is None else face.landmarks
            name = f"{file_key(path)}.png"
            atomic_write(crops / name, encode_png(align_face(image, landmarks, FR_SIZE, FR_TEMPLATE)), overwrite=True)
            entries.append({"box": None if face is None else box_list(face.box), "crop": name,
                            "landmarks": [box_list(point) for point in landmarks],
                            "problem": "no face found by MTCNN: placed by the fallback landmarks" if face is None
                            else None})
        return entries

    def usable(entry: dict) -> bool:
        return bool(entry.get("crop")) and (crops / entry["crop"]).is_file()

    index = FaceIndex(cache_folder() / f"{layout.images_dir.name}.json")
    results = cached_results(index, list(files), detect_chunk, f"aligning LFW to {VIEW} (once)", progress, usable)
    unreadable = [path for path, entry in results.items() if not entry.get("crop")]
    if unreadable:
        raise DatasetError(f"{len(unreadable)} LFW images cannot be read, e.g. {unreadable[0]}: "
                           f"{results[unreadable[0]]['problem']}; run `facelab data check`")
    return AlignedLFW({path: crops / entry["crop"] for path, entry in results.items()},
                      [path for path, entry in results.items() if entry["box"] is None])


def lfw_face(root: str | os.PathLike | None, name: str, view: str = VIEW, device: str | None = None) -> np.ndarray:
    """One LFW image as an RGB array, by its path under LFW's image folder ('Person/Person_0001.jpg'), in `view`:
    FILES_VIEW is the file as it is, VIEW its aligned crop (made now if not cached)."""
    from facelab.image_io import load_image

    path = find_lfw(root).images_dir / name
    if view == VIEW:
        path = align_lfw(root, files=[path], device=device, progress=False).crops[path]
    elif view != FILES_VIEW:
        raise DatasetError(f"unknown LFW view {view!r}: use {FILES_VIEW} or {VIEW}")
    return load_image(path)


def lfw_faces(root: str | os.PathLike | None = None, limit: int = 32, device: str | None = None) -> list[dict]:
    """`limit` aligned LFW faces spread over the people, as TemplateFaces items: dict(image, box) on the crop.

    For measuring and showing models when CelebA is absent (lesson 04's fallback), never for training.
    The box is MTCNN's on the crop, else FACE_BOX.
    """
    import torch

    from facelab.data.files import image_tensor, read_rgb
    from facelab.data.lfw import LFWImages
    from facelab.faces import detect_faces

    files = LFWImages(root).paths
    picked = files[:: max(1, len(files) // limit)][:limit]
    aligned = align_lfw(root, files=picked, device=device, progress=False)
    crops = [read_rgb(aligned.crops[path]) for path in picked]
    fallback = np.array(FACE_BOX) * np.array([FR_SIZE[1], FR_SIZE[0]] * 2)
    return [{"image": image_tensor(crop), "box": torch.tensor(face.box if face is not None else fallback,
                                                                 dtype=torch.float32)}
            for crop, face in zip(crops, detect_faces(crops, device=device, pick="central"))]
