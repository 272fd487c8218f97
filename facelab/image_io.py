"""Reading and writing images safely: any Pillow mode in, 8-bit RGB out, atomic writes out."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from facelab.errors import ImageError

MAX_PIXELS = 64_000_000
"""Largest image facelab compresses in one piece (64 megapixels: about 8 GB of activations)."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


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
    """Read an image file as (H, W, 3) uint8 RGB, or raise ImageError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ImageError(
                    f"{path}: {image.width}x{image.height} is {image.width * image.height / 1e6:.0f} megapixels; "
                    f"facelab compresses up to {MAX_PIXELS / 1e6:.0f}"
                )
            image.load()
            return to_rgb8(image)
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file Pillow can read") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: image too large (Pillow's decompression-bomb limit)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: unreadable or truncated image ({exc})") from None


def check_array(image: np.ndarray) -> np.ndarray:
    """Validate an in-memory image: (H, W, 3) uint8, H, W >= 1, within MAX_PIXELS."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected an (H, W, 3) RGB array, got {getattr(image, 'shape', type(image).__name__)}")
    if image.dtype != np.uint8:
        raise ImageError(f"expected uint8 pixels, got {image.dtype}")
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise ImageError("image has no pixels")
    if h * w > MAX_PIXELS:
        raise ImageError(f"{w}x{h} is over facelab's {MAX_PIXELS / 1e6:.0f}-megapixel limit")
    return image


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255).unsqueeze(0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) float in [0, 1] -> (H, W, 3) uint8, rounded."""
    if image.dim() == 4:
        image = image[0]
    return image.detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def atomic_write(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> Path:
    """Write bytes to `path` through a temporary file and a rename: never a partial file."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


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
