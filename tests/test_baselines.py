"""facelab.baselines: JPEG, WebP, JPEG 2000 and AVIF through Pillow, at a quality and at a target bpp."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import features

from facelab.baselines import CODECS, FIND_CLOSE_TOLERANCE, KNOBS, at_quality, decode, encode, find_close
from facelab.errors import BitstreamError, FacelabError
from facelab.image_io import load_image
from facelab.metrics import psnr

TARGET_BPP = 0.76
"""The paper's average bpp (Table 1)."""

LOW_AND_HIGH = {"jpeg": (20, 90), "webp": (20, 90), "jpeg2000": (80.0, 10.0), "avif": (20, 90)}
"""Per codec, a smaller-file and a larger-file quality setting (JPEG 2000's ratio runs the other way)."""


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 64x80 image with smooth regions, edges and noise, so every codec has work to do."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:80]
    image = np.stack([x * 3, y * 4, 60 + ((x // 10 + y // 10) % 2) * 60], axis=2) + rng.normal(0, 3, (64, 80, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def lfw_image(lfw_image_path: Path) -> np.ndarray:
    return load_image(lfw_image_path)


def test_pillow_has_every_codec():
    assert all(features.check(name) for name in ("jpg", "webp", "jpg_2000", "avif"))


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_keeps_shape_and_size_falls_with_quality(codec: str, photo: np.ndarray):
    low, high = LOW_AND_HIGH[codec]
    small, large = at_quality(photo, codec, low), at_quality(photo, codec, high)
    assert small.bpp < large.bpp
    assert large.bpp == pytest.approx(8 * len(large.data) / (64 * 80))
    for encoded in (small, large):
        decoded = decode(encoded.data, codec)
        assert decoded.shape == photo.shape and decoded.dtype == np.uint8
    assert psnr(photo, decode(large.data, codec)) > psnr(photo, decode(small.data, codec)) > 20


def test_bad_codec_quality_and_data_get_clear_errors(photo: np.ndarray):
    with pytest.raises(FacelabError, match="unknown codec"):
        encode(photo, "bpg", 50)
    with pytest.raises(FacelabError, match="from 1 to 95"):
        encode(photo, "jpeg", 100)
    with pytest.raises(FacelabError, match="whole number"):
        encode(photo, "webp", 50.5)
    with pytest.raises(BitstreamError, match="expected webp"):
        decode(encode(photo, "jpeg", 50), "webp")
    with pytest.raises(BitstreamError, match="cannot decode"):
        decode(b"not an image", "avif")
    with pytest.raises(FacelabError, match="positive"):
        find_close(photo, "jpeg", 0)


@pytest.mark.parametrize("codec", CODECS)
def test_find_close_lands_just_under_the_target_on_lfw(codec: str, lfw_image: np.ndarray):
    result = find_close(lfw_image, codec, TARGET_BPP)
    assert result.codec == codec
    assert TARGET_BPP * 0.9 <= result.bpp <= TARGET_BPP
    assert result.data == encode(lfw_image, codec, result.quality)
    knob = KNOBS[codec]
    if knob.integer:
        assert at_quality(lfw_image, codec, result.quality + 1).bpp > TARGET_BPP  # one step more would exceed
    else:
        assert result.bpp >= TARGET_BPP * (1 - FIND_CLOSE_TOLERANCE)
    assert psnr(lfw_image, decode(result.data, codec)) > 33


@pytest.mark.parametrize("codec", ["jpeg", "jpeg2000"])
def test_find_close_gives_the_smallest_file_when_the_target_is_out_of_reach(codec: str, photo: np.ndarray):
    knob = KNOBS[codec]
    smallest = knob.low if knob.grows_file else knob.high
    result = find_close(photo, codec, 0.001)
    assert result.quality == smallest and result.bpp > 0.001
