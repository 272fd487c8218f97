"""The classic codecs facelab is compared with (JPEG, WebP, JPEG 2000, AVIF), through Pillow, at a quality or a target bpp.

Each codec's quality knob, with Pillow's defaults otherwise (as CompressAI's ``find_close`` does):

- ``jpeg``: quality 1-95 (Pillow advises against more), baseline Huffman tables (``optimize`` off) and
  4:2:0 chroma subsampling, Pillow's defaults and what the paper's "JPG quality factor" rows used.
- ``webp``: lossy WebP, quality 0-100, ``method`` 4 (Pillow's default); WebP is always 4:2:0.
- ``jpeg2000``: OpenJPEG in ``quality_mode="rates"``; the knob is the compression ratio against the raw
  24-bit image, 1-1000, so a file holds about 24 / quality bpp. It is the one knob that runs the other
  way: a higher ratio is a smaller file. Lossy 9/7 wavelet (``irreversible=True``; Pillow's default 5/3 is
  the lossless one), full 4:4:4 colour, and a bare codestream (``no_jp2=True``: no JP2 boxes, 85 bytes less).
- ``avif``: libavif through Pillow, quality 0-100, speed 6 (Pillow's default), 4:2:0.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from facelab.errors import BitstreamError, FacelabError
from facelab.image_io import check_array, to_rgb8
from facelab.rate import bpp

CODECS = ("jpeg", "webp", "jpeg2000", "avif")
"""The classic codecs, by facelab's names."""

AVIF_SPEED = 6
"""libavif's encoder speed (0 slowest and smallest .. 10 fastest); 6 is Pillow's default."""

FIND_CLOSE_TOLERANCE = 0.01
"""find_close stops a JPEG 2000 search once it lands within 1% below the target bpp."""

JPEG2000_MAX_STEPS = 12
"""Most encodes a JPEG 2000 search makes (it usually needs 2-4: OpenJPEG's rate control is close)."""


@dataclass(frozen=True)
class Knob:
    """A codec's quality setting: its range, whether it is a whole number, and whether raising it grows the file."""

    low: float
    high: float
    integer: bool
    grows_file: bool


KNOBS = {
    "jpeg": Knob(1, 95, integer=True, grows_file=True),
    "webp": Knob(0, 100, integer=True, grows_file=True),
    "jpeg2000": Knob(1, 1000, integer=False, grows_file=False),
    "avif": Knob(0, 100, integer=True, grows_file=True),
}
"""Each codec's quality knob (see the module docstring for what it means)."""

_PILLOW_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "jpeg2000": "JPEG2000", "avif": "AVIF"}


@dataclass(frozen=True)
class Encoded:
    """One image coded by a classic codec: the codec, its quality setting, the file's bytes and its bits per pixel."""

    codec: str
    quality: float
    data: bytes
    bpp: float


def _knob(codec: str) -> Knob:
    """The knob of a codec name, or a FacelabError listing the known ones."""
    if codec not in KNOBS:
        raise FacelabError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    return KNOBS[codec]


def _save_options(codec: str, quality: float) -> dict:
    """Pillow's save() options for one codec at one quality."""
    if codec == "jpeg":
        return {"quality": int(quality), "subsampling": "4:2:0"}
    if codec == "webp":
        return {"quality": int(quality)}
    if codec == "jpeg2000":
        return {"quality_mode": "rates", "quality_layers": [float(quality)], "irreversible": True, "no_jp2": True}
    return {"quality": int(quality), "speed": AVIF_SPEED}


def encode(image: np.ndarray, codec: str, quality: float) -> bytes:
    """Code an (H, W, 3) uint8 image with a classic codec at one quality setting (see the module docstring)."""
    check_array(image)
    knob = _knob(codec)
    if not knob.low <= quality <= knob.high or (knob.integer and quality != int(quality)):
        kind = "a whole number" if knob.integer else "a number"
        raise FacelabError(f"{codec} quality must be {kind} from {knob.low:g} to {knob.high:g}, got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=_PILLOW_FORMATS[codec], **_save_options(codec, quality))
    return buffer.getvalue()


def decode(data: bytes, codec: str) -> np.ndarray:
    """Decode a classic codec's bytes back to an (H, W, 3) uint8 image, or raise BitstreamError."""
    _knob(codec)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != _PILLOW_FORMATS[codec]:
                raise BitstreamError(f"expected {codec} data, got {image.format or 'an unknown format'}")
            image.load()
            return to_rgb8(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BitstreamError(f"cannot decode {codec} data ({len(data)} bytes): {exc}") from None


def at_quality(image: np.ndarray, codec: str, quality: float) -> Encoded:
    """Code an image at a fixed quality, e.g. at_quality(image, "jpeg", 80) for the paper's JPG rows."""
    data = encode(image, codec, quality)
    return Encoded(codec, quality, data, bpp(len(data), *image.shape[:2]))


def find_close(image: np.ndarray, codec: str, target_bpp: float) -> Encoded:
    """Search the quality setting whose file comes closest to `target_bpp` without exceeding it.

    The rule, as CompressAI's ``find_close``: the largest file at or under the target; when even the
    smallest file the codec makes is over it, that smallest file (so its bpp > target says so).
    Integer knobs are bisected (7 encodes at most for 0-100), so a result lies within one quality step
    of the target, typically 1-5% under it; JPEG 2000's ratio is steered by its rate control to
    within FIND_CLOSE_TOLERANCE under it.
    """
    check_array(image)
    knob = _knob(codec)
    if not target_bpp > 0:
        raise FacelabError(f"target bpp must be positive, got {target_bpp}")
    if knob.integer:
        return _bisect_integer(image, codec, knob, target_bpp)
    return _steer_ratio(image, codec, knob, target_bpp)


def _bisect_integer(image: np.ndarray, codec: str, knob: Knob, target_bpp: float) -> Encoded:
    """The largest-file integer quality at or under the target, by bisection; else the smallest file."""
    low, high = int(knob.low), int(knob.high)
    best = None
    while low <= high:
        mid = (low + high) // 2
        candidate = at_quality(image, codec, mid)
        if candidate.bpp <= target_bpp:
            if best is None or candidate.bpp > best.bpp:
                best = candidate
            low, high = (mid + 1, high) if knob.grows_file else (low, mid - 1)
        else:
            low, high = (low, mid - 1) if knob.grows_file else (mid + 1, high)
    return best or at_quality(image, codec, knob.low if knob.grows_file else knob.high)


def _steer_ratio(image: np.ndarray, codec: str, knob: Knob, target_bpp: float) -> Encoded:
    """JPEG 2000: start at ratio 24 / target, then rescale the ratio by bpp / target inside a shrinking bracket."""
    too_big, small_enough = knob.low, knob.high
    ratio = min(max(24.0 / target_bpp, knob.low), knob.high)
    best = None
    for _ in range(JPEG2000_MAX_STEPS):
        candidate = at_quality(image, codec, ratio)
        if candidate.bpp <= target_bpp:
            small_enough = min(small_enough, ratio)
            if best is None or candidate.bpp > best.bpp:
                best = candidate
            if candidate.bpp >= target_bpp * (1 - FIND_CLOSE_TOLERANCE):
                break
        else:
            too_big = max(too_big, ratio)
        guess = ratio * candidate.bpp / (target_bpp * (1 - FIND_CLOSE_TOLERANCE / 2))
        ratio = guess if too_big < guess < small_enough else math.sqrt(too_big * small_enough)
        if small_enough / too_big < 1 + 1e-4:
            break
    return best or at_quality(image, codec, knob.high)
