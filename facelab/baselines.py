"""The classic codecs facelab is compared with (JPEG, WebP, JPEG 2000, AVIF, HEIC, JPEG XL), through Pillow, at a
quality or a target bpp, each at its best practical setting.

Each codec's quality knob and fixed settings (`REGISTRY`, the one place a codec is added):

- ``jpeg``: quality 1-95 (Pillow advises against more), baseline Huffman tables (``optimize`` off) and
  4:2:0 chroma subsampling, Pillow's defaults and what the paper's "JPG quality factor" rows used.
- ``webp``: lossy WebP, quality 0-100, ``method`` 6 (the slowest, smallest; Pillow's default is 4); always 4:2:0.
- ``jpeg2000``: OpenJPEG in ``quality_mode="rates"``; the knob is the compression ratio against the raw
  24-bit image, 1-1000, so a file holds about 24 / quality bpp. It is the one knob that runs the other
  way: a higher ratio is a smaller file. Lossy 9/7 wavelet (``irreversible=True``; Pillow's default 5/3 is
  the lossless one), full 4:4:4 colour, and a bare codestream (``no_jp2=True``: no JP2 boxes, 85 bytes less).
- ``avif``: libavif (libaom) through Pillow, quality 0-100, ``speed`` 2 (Pillow's default is 6), 4:2:0.
- ``heic``: HEVC (x265) in HEIF through ``pillow-heif``, quality 0-100, x265 preset ``slower``, 4:2:0.
- ``jxl``: JPEG XL (libjxl) through ``pillow-jxl-plugin``, quality 0-99 (libjxl's distance 25 .. 0.19; 100
  would be lossless), ``effort`` 9 (the plugin's default is 7), a bare codestream (no container).

HEIC and JPEG XL need their Pillow plugins: `installed` keeps the codecs whose plugin is there and warns, naming
the package, for each that is not; coding with a missing one raises FacelabError naming it.

The settings were chosen by measurement: 50 LFW faces (the first of the evaluation's seeded order) and 50 CelebA
validation faces (18 people held out from training), all 112x96, each codec at 5 qualities; BD-rate on PSNR
against the library's default setting (negative: fewer bytes at equal PSNR), CPU ms per encode on one thread:

    setting                      CPU ms   BD-rate LFW   BD-rate CelebA
    WebP method 4 (default) / 6   1 / 2   0 / -1.4%     0 / -3.0%
    AVIF speed 6 (default)           10   0             0
    AVIF speed 4                     50   -4.2%         -4.5%
    AVIF speed 2 (chosen)           144   -6.0%         -6.9%
    AVIF speed 0                    350   -6.6%         -7.7%
    HEIC x265 preset medium           8   0             0
    HEIC slow (libheif's default)   ~12   -1.6%         -1.7%
    HEIC slower (chosen)             12   -1.7%         -1.7%  (veryslow the same, placebo -1.5%, 4:4:4 worse)
    JXL effort 7 (default)            8   0             0
    JXL effort 9 (chosen)            29   -1.1%         -1.3%  (effort 8 -0.6 / -1.0%, effort 10 no better)

An evaluation on all of LFW codes each face 5 times per codec for the curves and up to 8 times per equal-bpp
search (bisection of a 0-100 knob; 2 when the target is under the codec's smallest file): 13,233 x 13 AVIF
encodes at speed 2 are 6.9 CPU hours (3.4 h on two cores), against 16 at speed 0, for a tenth of the saving;
WebP, HEIC and JPEG XL together add 1.9 CPU hours.
"""

from __future__ import annotations

import importlib
import io
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from PIL import Image, UnidentifiedImageError

from facelab.errors import BitstreamError, FacelabError, FacelabWarning
from facelab.image_io import check_array, to_rgb8
from facelab.rate import bpp

WEBP_METHOD = 6
"""libwebp's effort (0 fastest .. 6 slowest and smallest; Pillow's default 4): 1-3% fewer bytes at equal PSNR."""

AVIF_SPEED = 2
"""libavif's encoder speed (0 slowest and smallest .. 10 fastest; Pillow's default 6): 2 saves 6-7% of bytes
over 6 at equal PSNR on 112x96 faces, speed 0 one more point at 2.4 times the time (module docstring)."""

HEIC_PRESET = "slower"
"""x265's preset for HEIC (libheif's default: 'slow'): 'slower' saves 1.7% over 'medium' at equal PSNR, 0.1% over
'slow'; 'veryslow' and 'placebo' save no more on 112x96 faces."""

JXL_EFFORT = 9
"""libjxl's effort (1 fastest .. 10 slowest); 9 saves 1.1-1.3% over the default 7 at equal PSNR, 10 no more."""

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

    @property
    def smallest_file(self) -> float:
        """The setting that makes the smallest file."""
        return self.low if self.grows_file else self.high


def _quality(quality: float) -> dict:
    """The usual quality option: a whole number."""
    return {"quality": int(quality)}


def _compression_ratio(quality: float) -> dict:
    """JPEG 2000's option: one quality layer at this compression ratio."""
    return {"quality_layers": [float(quality)]}


def _register_heif() -> None:
    """Register pillow-heif's HEIF plugin with Pillow (it decodes and encodes HEIC)."""
    from pillow_heif import register_heif_opener

    register_heif_opener(thumbnails=False)


def _register_jxl() -> None:
    """Register pillow-jxl-plugin's JPEG XL plugin with Pillow (importing it does)."""
    importlib.import_module("pillow_jxl")


@dataclass(frozen=True)
class ClassicCodec:
    """One classic codec: Pillow's format name, its quality knob, the fixed save options, and, for a codec that
    needs a Pillow plugin, the function that registers it and the package it comes from."""

    pillow_format: str
    knob: Knob
    settings: dict = field(default_factory=dict)
    quality_option: Callable[[float], dict] = _quality
    register: Callable[[], None] | None = None
    package: str | None = None


REGISTRY = {
    "jpeg": ClassicCodec("JPEG", Knob(1, 95, integer=True, grows_file=True), {"subsampling": "4:2:0"}),
    "webp": ClassicCodec("WEBP", Knob(0, 100, integer=True, grows_file=True), {"method": WEBP_METHOD}),
    "jpeg2000": ClassicCodec("JPEG2000", Knob(1, 1000, integer=False, grows_file=False),
                             {"quality_mode": "rates", "irreversible": True, "no_jp2": True}, _compression_ratio),
    "avif": ClassicCodec("AVIF", Knob(0, 100, integer=True, grows_file=True), {"speed": AVIF_SPEED}),
    "heic": ClassicCodec("HEIF", Knob(0, 100, integer=True, grows_file=True), {"enc_params": {"preset": HEIC_PRESET}},
                         register=_register_heif, package="pillow-heif"),
    "jxl": ClassicCodec("JXL", Knob(0, 99, integer=True, grows_file=True), {"effort": JXL_EFFORT},
                        register=_register_jxl, package="pillow-jxl-plugin"),
}
"""Every classic codec by facelab's name (see the module docstring for each one's knob and settings)."""

CODECS = tuple(REGISTRY)
"""The classic codecs, by facelab's names."""

KNOBS = {name: entry.knob for name, entry in REGISTRY.items()}
"""Each codec's quality knob."""


@dataclass(frozen=True)
class Encoded:
    """One image coded by a classic codec: the codec, its quality setting, the file's bytes and its bits per pixel."""

    codec: str
    quality: float
    data: bytes
    bpp: float


def _entry(codec: str) -> ClassicCodec:
    """The registry entry of a codec name, or a FacelabError listing the known ones."""
    if codec not in REGISTRY:
        raise FacelabError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    return REGISTRY[codec]


@cache
def missing_package(codec: str) -> str | None:
    """The package a codec's Pillow plugin comes from when it is not installed (registering it on first use),
    else None."""
    entry = _entry(codec)
    if entry.register is None:
        return None
    try:
        entry.register()
    except ImportError:
        return entry.package
    return None


def _ready(codec: str) -> ClassicCodec:
    """The registry entry of a codec whose plugin is installed, else a FacelabError naming the package."""
    entry = _entry(codec)
    package = missing_package(codec)
    if package:
        raise FacelabError(f"{codec} needs the {package} package: pip install {package}")
    return entry


def installed(codecs: Iterable[str]) -> tuple[str, ...]:
    """The codecs among `codecs` that can run here; each one whose plugin is missing is left out with a warning
    naming its package."""
    kept = []
    for codec in codecs:
        package = missing_package(codec)
        if package:
            warnings.warn(f"{codec} left out: its Pillow plugin is not installed (pip install {package})",
                          FacelabWarning, stacklevel=2)
        else:
            kept.append(codec)
    return tuple(kept)


def settings(codec: str) -> dict:
    """A codec's fixed save options (besides the quality): what its results depend on beyond the quality."""
    return dict(_entry(codec).settings)


def encode(image: np.ndarray, codec: str, quality: float) -> bytes:
    """Code an (H, W, 3) uint8 image with a classic codec at one quality setting (see the module docstring)."""
    check_array(image)
    entry = _ready(codec)
    knob = entry.knob
    if not knob.low <= quality <= knob.high or (knob.integer and quality != int(quality)):
        kind = "a whole number" if knob.integer else "a number"
        raise FacelabError(f"{codec} quality must be {kind} from {knob.low:g} to {knob.high:g}, got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=entry.pillow_format, **entry.settings, **entry.quality_option(quality))
    return buffer.getvalue()


def decode(data: bytes, codec: str) -> np.ndarray:
    """Decode a classic codec's bytes back to an (H, W, 3) uint8 image, or raise BitstreamError."""
    entry = _ready(codec)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != entry.pillow_format:
                raise BitstreamError(f"expected {codec} data, got {image.format or 'an unknown format'}")
            image.load()
            return to_rgb8(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, RuntimeError) as exc:
        raise BitstreamError(f"cannot decode {codec} data ({len(data)} bytes): {exc}") from None


def at_quality(image: np.ndarray, codec: str, quality: float) -> Encoded:
    """Code an image at a fixed quality, e.g. at_quality(image, "jpeg", 80) for the paper's JPG rows."""
    data = encode(image, codec, quality)
    return Encoded(codec, quality, data, bpp(len(data), *image.shape[:2]))


def find_close(image: np.ndarray, codec: str, target_bpp: float) -> Encoded:
    """Search the quality setting whose file comes closest to `target_bpp` without exceeding it.

    The rule, as CompressAI's ``find_close``: the largest file at or under the target; when even the
    smallest file the codec makes is over it, that smallest file (so its bpp > target says so).
    Integer knobs are bisected (8 encodes at most for 0-100, 2 for a target out of reach), so a result
    lies within one quality step of the target, typically 1-5% under it; JPEG 2000's ratio is steered by
    its rate control to within FIND_CLOSE_TOLERANCE under it.
    """
    check_array(image)
    knob = _ready(codec).knob
    if not target_bpp > 0:
        raise FacelabError(f"target bpp must be positive, got {target_bpp}")
    if knob.integer:
        return _bisect_integer(image, codec, knob, target_bpp)
    return _steer_ratio(image, codec, knob, target_bpp)


def _bisect_integer(image: np.ndarray, codec: str, knob: Knob, target_bpp: float) -> Encoded:
    """The largest-file integer quality at or under the target, by bisection; else the smallest file.

    Once the middle setting is too big, the smallest-file setting is tried next: a target out of the codec's
    reach (AVIF under about 0.33 bpp at 112x96) then costs two encodes instead of eight.
    """
    low, high = int(knob.low), int(knob.high)
    best = None
    while low <= high:
        mid = (low + high) // 2
        candidate = at_quality(image, codec, mid)
        if candidate.bpp <= target_bpp:
            if best is None or candidate.bpp > best.bpp:
                best = candidate
            low, high = (mid + 1, high) if knob.grows_file else (low, mid - 1)
            continue
        low, high = (low, mid - 1) if knob.grows_file else (mid + 1, high)
        if best is None and low <= high:
            best = at_quality(image, codec, knob.smallest_file)
            if best.bpp > target_bpp:
                return best
            low, high = (low + 1, high) if knob.grows_file else (low, high - 1)
    return best or at_quality(image, codec, knob.smallest_file)


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
