"""CelebA faces for the face phase: the official aligned set, or aligned-like crops made from the in-the-wild images.

Like the paper, only faces MTCNN detects are kept; the box MTCNN finds on each (aligned) image comes
with it, for the feature loss. Detection runs once per image: results are cached under
`facelab.runtime.cache_dir()/celeba/`, keyed by each file's size and content hash so that a
changed file is detected again. In-the-wild images are aligned like CelebA's own crops
(`facelab.data.align`): MTCNN's five landmarks are fitted to CelebA's mean aligned landmarks, and the
178x218 crops are cached as PNG. On the course's 1,022 in-the-wild images this puts MTCNN's box on the
crop at 46% of the width (median; 5th-95th percentile 42-50%), centred at (88, 124).

Split (deterministic): with identities, 'val' is every tenth identity in ascending order (10% of
people, none shared with 'train'); without, every tenth file by name. 'all' is everything.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from facelab.data.align import CELEBA_SIZE, align_face
from facelab.data.files import file_key, folder_tag, image_tensor, list_images, read_rgb
from facelab.data.registry import missing_error
from facelab.errors import DatasetError, ImageError
from facelab.image_io import atomic_write, encode_png, load_image
from facelab.runtime import cache_dir, data_root

ALIGNED_FOLDERS = ("img_align_celeba", "img_align_celeba_png")
WILD_FOLDER = "img_celeba"
IDENTITY_FILES = ("identity_CelebA.txt", "Anno/identity_CelebA.txt")
VAL_EVERY = 10
"""Every VAL_EVERY-th identity (or file) goes to validation."""

DETECT_MAX_SIDE = 1024
"""In-the-wild images are shrunk to this longest side for MTCNN (landmarks are scaled back)."""

CHUNK = 32
"""Images loaded and detected together."""

SAVE_EVERY_S = 30.0
"""Seconds between saves of a cache index while it is being built, so an interrupted build resumes."""

CACHE_VERSION = 1
"""Bumped when detection or cropping changes, which invalidates every cached result."""


@dataclass
class CelebALayout:
    """Where CelebA was found: its folder, 'aligned' or 'wild', the image folder and the identity file."""

    location: Path
    kind: str
    images_dir: Path
    identity_file: Path | None


def find_celeba(root: str | os.PathLike | None = None, source: str = "auto") -> CelebALayout:
    """CelebA under the data root: the aligned set when present (source='auto'), else the in-the-wild images."""
    if source not in ("auto", "aligned", "wild"):
        raise ValueError(f"source must be 'auto', 'aligned' or 'wild', not {source!r}")
    root = data_root(root)
    location = root / "celeba"
    identity = next((location / name for name in IDENTITY_FILES if (location / name).is_file()), None)
    candidates = [(location / name, "aligned") for name in ALIGNED_FOLDERS] + [(location / WILD_FOLDER, "wild")]
    for folder, kind in candidates:
        if source in ("auto", kind) and folder.is_dir():
            if not list_images(folder):
                raise missing_error("celeba", root, f"{folder} holds no images")
            return CelebALayout(location, kind, folder, identity)
    wanted = {"auto": "img_align_celeba/ or img_celeba/", "aligned": "img_align_celeba/", "wild": "img_celeba/"}[source]
    raise missing_error("celeba", root, f"no {wanted} under {location}")


def face_training_problem(root: str | os.PathLike | None = None) -> str | None:
    """None when CelebA's aligned faces (the face phase's data) are under the data root, else one line on what is missing.

    CelebA's quota-limited Drive links often refuse `facelab data download celeba`: lessons call this to
    fall back to the shipped face models with that line instead of failing.
    """
    try:
        find_celeba(root, "aligned")
    except DatasetError as exc:
        return str(exc)
    return None


def read_identities(path: Path) -> dict[str, int]:
    """CelebA's `identity_CelebA.txt` ('file identity' per line) as {file name: identity}."""
    identities: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the identity file ({exc})") from None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise DatasetError(f"{path}:{number}: expected 'file identity', got {line.strip()!r}")
        identities[fields[0]] = int(fields[1])
    return identities


def identity_of(path: Path, identities: dict[str, int]) -> int:
    """A file's identity, matching .png names to CelebA's .jpg ones; -1 when unknown."""
    return identities.get(path.name, identities.get(f"{path.stem}.jpg", -1))


def split_files(files: list[Path], identities: dict[str, int], split: str) -> list[Path]:
    """The files of `split`: 'val' is every VAL_EVERY-th identity (or, without one, every VAL_EVERY-th file)."""
    if split not in ("train", "val", "all"):
        raise ValueError(f"split must be 'train', 'val' or 'all', not {split!r}")
    if split == "all":
        return list(files)
    known = sorted({identity_of(path, identities) for path in files} - {-1})
    val_ids = set(known[VAL_EVERY - 1::VAL_EVERY])
    unknown = [path for path in files if identity_of(path, identities) == -1]
    val_unknown = set(unknown[VAL_EVERY - 1::VAL_EVERY])
    is_val = {path: (path in val_unknown) if identity_of(path, identities) == -1
              else identity_of(path, identities) in val_ids for path in files}
    return [path for path in files if is_val[path] == (split == "val")]


class FaceIndex:
    """Per-image results in one JSON file under the cache, each valid while its image's content is unchanged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict] = {}
        self.saved_at = time.monotonic()
        try:
            stored = json.loads(path.read_text())
            if stored.get("version") == CACHE_VERSION:
                self.entries = stored["entries"]
        except (OSError, ValueError, KeyError, AttributeError):
            pass

    def lookup(self, image: Path) -> dict | None:
        """The cached entry of `image`, or None when there is none or the file changed since."""
        entry = self.entries.get(image.name)
        return entry if entry is not None and entry.get("key") == file_key(image) else None

    def store(self, image: Path, entry: dict) -> None:
        """Remember `entry` for `image` under its current content key, saving now and then."""
        self.entries[image.name] = {"key": file_key(image), **entry}
        if time.monotonic() - self.saved_at > SAVE_EVERY_S:
            self.save()

    def save(self) -> None:
        """Write the index atomically."""
        data = json.dumps({"version": CACHE_VERSION, "entries": self.entries}).encode()
        atomic_write(self.path, data, overwrite=True)
        self.saved_at = time.monotonic()


def cache_folder(layout: CelebALayout) -> Path:
    """This image folder's own cache folder under facelab's cache."""
    return cache_dir() / "celeba" / folder_tag(layout.images_dir)


def looks_gray(image: np.ndarray) -> bool:
    """Whether an RGB image has three equal channels (a grayscale file loaded as RGB)."""
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))


def shrink_for_detection(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The image shrunk to at most DETECT_MAX_SIDE, and the factor that maps its coordinates back."""
    height, width = image.shape[:2]
    factor = max(height, width) / DETECT_MAX_SIDE
    if factor <= 1:
        return image, 1.0
    size = (round(width / factor), round(height / factor))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC)), width / size[0]


ChunkDetector = Callable[[list[Path], list[np.ndarray]], list[dict]]


def cached_results(index: FaceIndex, files: list[Path], detect_chunk: ChunkDetector, desc: str, progress: bool,
                   usable: Callable[[dict], bool] = lambda entry: True) -> dict[Path, dict]:
    """Each file's entry: from `index` when cached and `usable`, else decoded and passed to `detect_chunk` now.

    Unreadable files get an entry with their problem; the index is saved as it grows and at the end.
    """
    todo = [path for path in files if (entry := index.lookup(path)) is None or not usable(entry)]
    try:
        with tqdm(total=len(todo), desc=desc, disable=not progress or not todo) as bar:
            for start in range(0, len(todo), CHUNK):
                chunk, good, images = todo[start:start + CHUNK], [], []
                for path in chunk:
                    try:
                        images.append(load_image(path))
                        good.append(path)
                    except ImageError as exc:
                        index.store(path, {"box": None, "problem": f"unreadable: {exc}", "gray": False})
                for path, image, entry in zip(good, images, detect_chunk(good, images), strict=True):
                    index.store(path, {**entry, "gray": looks_gray(image)})
                bar.update(len(chunk))
    finally:
        if todo:
            index.save()
    return {path: index.lookup(path) for path in files}


def box_list(box: np.ndarray) -> list[float]:
    """A box as a short JSON list."""
    return [round(float(value), 2) for value in box]


def detect_aligned(layout: CelebALayout, files: list[Path], device: str | None, progress: bool) -> dict[Path, dict]:
    """MTCNN's box on each aligned image (None when it finds no face), from the cache or detected now."""
    from facelab.faces import detect_faces

    def detect_chunk(paths: list[Path], images: list[np.ndarray]) -> list[dict]:
        return [{"box": None, "problem": "no face found by MTCNN"} if face is None
                else {"box": box_list(face.box), "problem": None}
                for face in detect_faces(images, device=device)]

    index = FaceIndex(cache_folder(layout) / "detections.json")
    results = cached_results(index, files, detect_chunk, "MTCNN on CelebA (once)", progress)
    return {path: {**entry, "image": str(path)} for path, entry in results.items()}


def crop_wild(layout: CelebALayout, files: list[Path], device: str | None, progress: bool) -> dict[Path, dict]:
    """Aligned 178x218 crops of in-the-wild images with MTCNN's box on each crop, from the cache or made now.

    MTCNN runs twice: on the in-the-wild image for the landmarks that place the crop, then on the crop
    itself, which gives the box (as on CelebA's own aligned images) and drops crops where it finds no face.
    """
    from facelab.faces import detect_faces

    folder = cache_folder(layout)

    def detect_chunk(paths: list[Path], images: list[np.ndarray]) -> list[dict]:
        shrunk = [shrink_for_detection(image) for image in images]
        faces = detect_faces([small for small, _ in shrunk], device=device)
        entries: list[dict] = [{"box": None, "problem": "no face found by MTCNN", "crop": None} for _ in paths]
        crops, placed = [], []
        for number, (image, (_, factor), face) in enumerate(zip(images, shrunk, faces, strict=True)):
            if face is not None:
                crops.append(align_face(image, (face.landmarks + 0.5) * factor - 0.5))
                placed.append(number)
        for number, crop, face in zip(placed, crops, detect_faces(crops, device=device), strict=True):
            if face is None:
                entries[number]["problem"] = "no face found by MTCNN on the aligned crop"
                continue
            name = f"{paths[number].stem}.png"
            atomic_write(folder / name, encode_png(crop), overwrite=True)
            entries[number] = {"box": box_list(face.box), "problem": None, "crop": name}
        return entries

    def usable(entry: dict) -> bool:
        return not entry.get("crop") or (folder / entry["crop"]).is_file()

    index = FaceIndex(folder / "crops.json")
    results = cached_results(index, files, detect_chunk, "aligning CelebA in-the-wild faces (once)", progress, usable)
    return {path: {**entry, "image": str(folder / entry["crop"]) if entry.get("crop") else None}
            for path, entry in results.items()}


def cached_count(layout: CelebALayout, files: list[Path]) -> tuple[int, int]:
    """(files with a cached MTCNN result, of which with a face); for `facelab data check`."""
    name = "detections.json" if layout.kind == "aligned" else "crops.json"
    index = FaceIndex(cache_folder(layout) / name)
    entries = [entry for entry in map(index.lookup, files) if entry is not None]
    return len(entries), sum(entry["box"] is not None for entry in entries)


class CelebAFaces(Dataset):
    """CelebA faces MTCNN detects: dict(image=(3, H, W) float [0, 1], box=(4,) x1 y1 x2 y2 pixels, identity, path, source).

    `size=(h, w)` resizes images (antialiased) and scales boxes to match; None keeps 178x218.
    `max_images` keeps the first candidates of the split (by file name) before the face filter.
    `source` is 'auto' (aligned when present, else in the wild), 'aligned' or 'wild'. The first use
    of an image runs MTCNN on `device` (progress shown); later uses read the cache. Unreadable files
    and faces MTCNN misses are skipped and counted; grayscale images are kept as RGB and counted.
    `identity` is -1 where identity_CelebA.txt is absent or does not list the file; `path` is the
    file the image is read from (a cached crop for in-the-wild images), `source` the original file.
    """

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 size: tuple[int, int] | None = None, max_images: int | None = None, source: str = "auto",
                 device: str | None = None, progress: bool = True) -> None:
        self.layout = find_celeba(root, source)
        self.split = split
        self.size = (int(size[0]), int(size[1])) if size else None
        self.identities = read_identities(self.layout.identity_file) if self.layout.identity_file else {}
        files = split_files(list_images(self.layout.images_dir), self.identities, split)
        files = files[:max_images] if max_images else files
        detect = detect_aligned if self.layout.kind == "aligned" else crop_wild
        self.results = detect(self.layout, files, device, progress)
        self.items = [(Path(entry["image"]), np.asarray(entry["box"], dtype=np.float32),
                       identity_of(path, self.identities), path)
                      for path, entry in self.results.items() if entry["box"] is not None]
        if not self.items:
            raise missing_error("celeba", data_root(root), f"no usable face among the {len(files)} {split} images "
                                f"in {self.layout.images_dir}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, object]:
        image_path, box, identity, source = self.items[index]
        image = read_rgb(image_path)
        height, width = image.shape[:2]
        if self.size and self.size != (height, width):
            image = np.asarray(Image.fromarray(image).resize(self.size[::-1], Image.Resampling.BICUBIC))
            box = box * np.array([self.size[1] / width, self.size[0] / height] * 2, dtype=np.float32)
        return {"image": image_tensor(image),
                "box": torch.from_numpy(box.copy()), "identity": identity, "path": str(image_path),
                "source": str(source)}

    def counts(self) -> dict[str, int]:
        """Candidates of the split, faces kept, files skipped as unreadable, faces MTCNN missed, grayscale kept."""
        entries = list(self.results.values())
        unreadable = sum(str(entry["problem"]).startswith("unreadable") for entry in entries)
        return {"candidates": len(entries), "faces": len(self.items), "unreadable": unreadable,
                "no_face": sum(entry["box"] is None for entry in entries) - unreadable,
                "grayscale_as_rgb": sum(bool(entry.get("gray")) for entry in entries if entry["box"] is not None)}

    def describe(self) -> dict[str, object]:
        """JSON-ready description: aligned or in-the-wild source, split, counts of faces, identities and skips."""
        kind = ("official aligned set" if self.layout.kind == "aligned"
                else "in-the-wild images aligned by facelab (MTCNN landmarks -> CelebA's mean aligned landmarks)")
        skipped = {str(path): entry["problem"] for path, entry in self.results.items() if entry["box"] is None}
        return {"dataset": "celeba", "source": f"{kind} at {self.layout.images_dir}", "split": self.split,
                "images": len(self.items), "identities": len({item[2] for item in self.items} - {-1}),
                "size": list(self.size or CELEBA_SIZE), **self.counts(),
                "skipped_examples": dict(list(skipped.items())[:5])}
