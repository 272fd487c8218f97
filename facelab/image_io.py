"""Reading and writing images safely: any Pillow mode in, 8-bit RGB out, atomic writes out."""

from __future__ import annotations

import glob
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from facelab import limits
from facelab.errors import FacelabWarning, ImageError, OutputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")

PARTIAL = ".incomplete-"
"""Marks a file still being written, '<name>.incomplete-<pid>-<random>': one that a killed run leaves behind
says at sight that it can be deleted, and the next write to the same path deletes it once its writer is gone."""

STALE_SECONDS = 60
"""Age after which a partial file whose writer has exited is removed (a writer on another machine sharing the
folder has a process id this one cannot see, so a young file is left alone)."""


def to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow image -> (H, W, 3) uint8 RGB: 16-bit scaled down, alpha composited on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        scale = 257.0 if values.max(initial=0) > 255 or image.mode.startswith("I;16") else 1.0
        gray = np.clip(np.round(values / scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "F":
        gray = np.clip(np.round(np.asarray(image) * (255.0 if np.asarray(image).max(initial=0) <= 1 else 1.0)), 0, 255)
        return np.repeat(gray.astype(np.uint8)[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, or raise ImageError naming the problem.

    The EXIF orientation is applied, as image viewers do, so a phone's portrait photo is not compressed
    sideways; of an animation (GIF, APNG, WebP, multi-page TIFF) only the first frame is kept, with a warning.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            too_large = limits.pixel_problem(image.height, image.width)
            if too_large:
                raise ImageError(f"{path}: {too_large}")
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                warnings.warn(f"{path}: an animation of {frames} frames; facelab keeps only the first",
                              FacelabWarning, stacklevel=2)
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            return to_rgb8(image)
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file Pillow can read") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: image too large (Pillow's decompression-bomb limit)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: unreadable or truncated image ({exc})") from None


def check_array(image: np.ndarray) -> np.ndarray:
    """Validate an in-memory image: (H, W, 3) uint8, H, W >= 1, within `limits.MAX_PIXELS`."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected an (H, W, 3) RGB array, got {getattr(image, 'shape', type(image).__name__)}")
    if image.dtype != np.uint8:
        raise ImageError(f"expected uint8 pixels, got {image.dtype}")
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise ImageError("image has no pixels")
    too_large = limits.pixel_problem(h, w)
    if too_large:
        raise ImageError(too_large)
    return image


def to_tensor(image: np.ndarray, unit: bool = True) -> torch.Tensor:
    """(H, W, 3) or (N, H, W, 3) uint8 -> (1 or N, 3, H, W) float32, in [0, 1] (`unit`) or in 0-255.

    The one place an image array becomes a tensor; a read-only array (Pillow's) is copied first.
    """
    array = np.ascontiguousarray(image)
    if not array.flags.writeable:
        array = array.copy()
    tensor = torch.from_numpy(array[None] if array.ndim == 3 else array).permute(0, 3, 1, 2).float()
    return tensor.div(255) if unit else tensor


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) float in [0, 1] -> (H, W, 3) uint8, rounded."""
    if image.dim() == 4:
        image = image[0]
    return image.detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def atomic_write(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> Path:
    """Write bytes to `path` through a partial file and a rename: never a partial file under the final name.

    The file gets the permissions the umask allows, as `open` would give. A path that cannot be written
    (a read-only folder, a full disk, a parent that is a regular file) is an OutputError naming it.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    make_parent(path)
    remove_stale_partials(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}{PARTIAL}{os.getpid()}-")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def make_parent(path: Path) -> None:
    """Create the folders above `path`, or raise OutputError saying which part of it is in the way."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
        raise OutputError(f"cannot write {path}: {blocker} is a file, not a folder") from None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back, the only portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_partials(path: Path) -> None:
    """Delete the partial files of `path` whose writer has exited (killed before its rename)."""
    for partial in path.parent.glob(f"{glob.escape(path.name)}{PARTIAL}*"):
        pid = partial.name[len(path.name) + len(PARTIAL):].split("-")[0]
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        try:
            if time.time() - partial.stat().st_mtime >= STALE_SECONDS:
                partial.unlink()
        except OSError:
            continue


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (always True on Windows, where it cannot be asked safely)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def encode_png(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def save_image(image: np.ndarray, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save (H, W, 3) uint8 as PNG (or any format the suffix names), atomically."""
    import io

    path = Path(path)
    if path.suffix.lower() in ("", ".png"):
        return atomic_write(path, encode_png(image), overwrite)
    buffer = io.BytesIO()
    try:
        Image.fromarray(image).save(buffer, format=Image.registered_extensions().get(path.suffix.lower()))
    except (KeyError, ValueError, OSError) as exc:
        raise ImageError(f"cannot write {path.suffix} images: {exc}") from None
    return atomic_write(path, buffer.getvalue(), overwrite)
