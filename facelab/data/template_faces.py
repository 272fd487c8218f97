"""CelebA's aligned faces moved onto the 112x96 face-recognition template, decoded once into one uint8 tensor.

The paper evaluates LFW at 112x96, aligned the way face-recognition work aligns faces (`FR_TEMPLATE`).
CelebA's aligned crops all put the landmarks at `CELEBA_TEMPLATE`, so one fixed similarity maps every
one of them onto the 112x96 template: training then sees faces at the scale and place it is tested on.
Each face is warped onto a canvas `MARGIN` pixels larger on every side, so training can take randomly
shifted 112x96 crops (and mirror them) without decoding anything again. MTCNN's box on each centred
crop, for the feature loss, is found once; faces it misses are left out and counted, as in the paper.
Everything is cached under `cache_dir()/celeba/`, keyed by the files' content.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from facelab.data.align import CELEBA_TEMPLATE, FR_SIZE, FR_TEMPLATE, fit_similarity, warp
from facelab.data.celeba import find_celeba, identity_of, read_identities, split_files
from facelab.data.files import file_key, list_images, read_rgb
from facelab.data.registry import missing_error
from facelab.errors import DatasetError
from facelab.image_io import atomic_write, encode_png
from facelab.runtime import cache_dir, data_root

MARGIN = 8
"""Pixels of canvas around the 112x96 face on each side: the range of the random shifts in training."""

CACHE_VERSION = 1
"""Bumped when the warp or the detection changes, which invalidates the cached tensors."""


def celeba_to_template() -> np.ndarray:
    """The 2x3 similarity from CelebA's aligned 178x218 crops onto the canvas around the 112x96 template."""
    return fit_similarity(CELEBA_TEMPLATE, FR_TEMPLATE + MARGIN)


def canvas_size() -> tuple[int, int]:
    """(height, width) of the canvas each face is stored on."""
    return FR_SIZE[0] + 2 * MARGIN, FR_SIZE[1] + 2 * MARGIN


def build_faces(files: list[Path], device: str | None, progress: bool) -> dict[str, torch.Tensor]:
    """Warp each file onto the canvas and find MTCNN's box on its centred crop: images, boxes (NaN if none)."""
    from facelab.faces import detect_faces

    matrix = celeba_to_template()
    height, width = canvas_size()
    images = np.empty((len(files), height, width, 3), dtype=np.uint8)
    for index, path in enumerate(tqdm(files, desc="CelebA -> 112x96", disable=not progress)):
        images[index] = warp(read_rgb(path), matrix, (height, width))
    centred = images[:, MARGIN:MARGIN + FR_SIZE[0], MARGIN:MARGIN + FR_SIZE[1]]
    detections = detect_faces(list(centred), device=device, progress=progress)
    boxes = np.array([face.box if face is not None else [np.nan] * 4 for face in detections], dtype=np.float32)
    return {"images": torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
            "boxes": torch.from_numpy(boxes.reshape(-1, 4))}


def cached_faces(files: list[Path], device: str | None, progress: bool) -> dict[str, torch.Tensor]:
    """`build_faces` for these files, read from the cache when it holds them."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for path in files:
        digest.update(file_key(path).encode())
    path = cache_dir() / "celeba" / f"template-{digest.hexdigest()[:20]}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except (OSError, RuntimeError, EOFError) as exc:
            tqdm.write(f"facelab: rebuilding the damaged face cache {path} ({exc})")
    faces = build_faces(files, device, progress)
    buffer = io.BytesIO()
    torch.save(faces, buffer)
    atomic_write(path, buffer.getvalue(), overwrite=True)
    return faces


class TemplateFaces(Dataset):
    """CelebA faces on the 112x96 template: dict(image=(3, 112, 96) float [0, 1], box=(4,) x1 y1 x2 y2).

    'train' crops at a random shift of up to `MARGIN` pixels and mirrors half the faces (the box follows);
    'val' is the centred crop. Split by person, as `facelab.data.celeba.split_files` does. Only the official
    aligned set can be moved onto the template this way; `max_images` keeps the first files of the split.
    """

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", max_images: int | None = None,
                 device: str | None = None, progress: bool = True) -> None:
        layout = find_celeba(root, "aligned")
        identities = read_identities(layout.identity_file) if layout.identity_file else {}
        files = split_files(list_images(layout.images_dir), identities, split)
        files = files[:max_images] if max_images else files
        if not files:
            raise missing_error("celeba", data_root(root), f"no {split} faces in {layout.images_dir}")
        faces = cached_faces(files, device, progress)
        found = torch.isfinite(faces["boxes"]).all(dim=1)
        self.split = split
        self.source = str(layout.images_dir)
        self.images = faces["images"][found]
        self.boxes = faces["boxes"][found]
        self.identities = [identity_of(path, identities) for path, keep in zip(files, found.tolist()) if keep]
        self.candidates, self.missed = len(files), int((~found).sum())
        if not len(self.images):
            raise DatasetError(f"MTCNN found no face in the {len(files)} {split} images of {layout.images_dir}")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        height, width = FR_SIZE
        if self.split == "train":
            top, left = (int(v) for v in torch.randint(0, 2 * MARGIN + 1, (2,)))
            flip = bool(torch.rand(()) < 0.5)
        else:
            top = left = MARGIN
            flip = False
        image = self.images[index, :, top:top + height, left:left + width].float() / 255
        x1, y1, x2, y2 = (self.boxes[index] + torch.tensor([MARGIN - left, MARGIN - top] * 2)).tolist()
        if flip:
            image = image.flip(-1)
            x1, x2 = width - x2, width - x1
        return {"image": image, "box": torch.tensor([x1, y1, x2, y2])}

    def describe(self) -> dict[str, object]:
        """JSON-ready description: source, split, size, counts of faces, people and faces MTCNN missed."""
        return {"dataset": "celeba", "source": f"official aligned set at {self.source}, moved onto the 112x96 "
                "face-recognition template", "split": self.split, "size": list(FR_SIZE),
                "images": len(self), "identities": len(set(self.identities) - {-1}),
                "candidates": self.candidates, "no_face": self.missed}


def validation_folder(root: str | os.PathLike | None = None) -> Path:
    """The CelebA validation people's faces (never trained on) as centred 112x96 PNGs in a folder per person, made
    once under `cache_dir()/celeba/`: a second face set beside LFW for `facelab evaluate --images`.

    Sharper than LFW's JPEG-sourced faces, so a codec that wins only on LFW's soft faces shows it here.
    """
    faces = TemplateFaces(root, split="val", progress=False)
    folder = cache_dir() / "celeba" / f"val-{FR_SIZE[0]}x{FR_SIZE[1]}-v{CACHE_VERSION}"
    height, width = FR_SIZE
    for index, identity in enumerate(faces.identities):
        path = folder / f"person-{identity}" / f"{index:04d}.png"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            crop = faces.images[index, :, MARGIN:MARGIN + height, MARGIN:MARGIN + width]
            atomic_write(path, encode_png(crop.permute(1, 2, 0).numpy()))
    return folder


def validation_sample(count: int, root: str | os.PathLike | None = None) -> list[np.ndarray]:
    """`count` of the CelebA validation faces (`validation_folder`), every k-th so that all 19 people are in it:
    the benchmarks' sample of unseen faces."""
    paths = sorted(validation_folder(root).glob("*/*.png"))
    return [read_rgb(path) for path in paths[:: max(1, len(paths) // count)][:count]]
