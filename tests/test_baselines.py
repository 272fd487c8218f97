"""facelab.baselines: JPEG, WebP, JPEG 2000, AVIF, HEIC and JPEG XL through Pillow, at a quality and at a target
bpp, at their chosen settings; facelab.file_overhead: what their containers cost."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from facelab import baselines
from facelab.baselines import CODECS, FIND_CLOSE_TOLERANCE, KNOBS, at_quality, decode, encode, find_close
from facelab.errors import BitstreamError, FacelabError, FacelabWarning
from facelab.file_overhead import container_bytes, overhead, overhead_table
from facelab.image_io import load_image
from facelab.metrics import psnr

TARGET_BPP = 0.76
"""The paper's average bpp (Table 1)."""

LOW_AND_HIGH = {"jpeg": (20, 90), "webp": (20, 90), "jpeg2000": (80.0, 10.0), "avif": (20, 90), "heic": (20, 60),
                "jxl": (20, 90)}
"""Per codec, a smaller-file and a larger-file quality setting (JPEG 2000's ratio runs the other way)."""

FACE_PIXELS = 112 * 96


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


@pytest.fixture(scope="module")
def face(lfw_image: np.ndarray) -> np.ndarray:
    """A 112x96 face: the centre of an LFW file, the size facelab's faces are coded at."""
    return np.ascontiguousarray(lfw_image[69:181, 77:173])


@pytest.fixture
def heif_missing(monkeypatch: pytest.MonkeyPatch):
    """pillow-heif made unimportable, with baselines' record of installed plugins forgotten before and after."""
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    baselines.missing_package.cache_clear()
    yield
    baselines.missing_package.cache_clear()


def pillow_file(image: np.ndarray, pillow_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=pillow_format, **options)
    return buffer.getvalue()


def test_pillow_has_every_codec():
    assert all(features.check(name) for name in ("jpg", "webp", "jpg_2000", "avif"))
    assert [baselines.missing_package(codec) for codec in CODECS] == [None] * len(CODECS)
    assert CODECS == ("jpeg", "webp", "jpeg2000", "avif", "heic", "jxl")


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
    with pytest.raises(FacelabError, match="from 0 to 99"):
        encode(photo, "jxl", 100)
    with pytest.raises(BitstreamError, match="expected webp"):
        decode(encode(photo, "jpeg", 50), "webp")
    with pytest.raises(BitstreamError, match="expected heic"):
        decode(encode(photo, "avif", 50), "heic")
    for codec in ("avif", "heic", "jxl"):
        with pytest.raises(BitstreamError, match="cannot decode"):
            decode(b"not an image", codec)
    with pytest.raises(BitstreamError, match="cannot decode"):
        decode(encode(photo, "jxl", 50)[:40], "jxl")
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


@pytest.mark.parametrize("codec", ["heic", "jxl"])
def test_new_codecs_find_a_face_file_at_half_a_bit_per_pixel(codec: str, face: np.ndarray):
    result = find_close(face, codec, 0.5)
    assert 0.4 <= result.bpp <= 0.5 and len(result.data) <= 0.5 * FACE_PIXELS / 8
    assert psnr(face, decode(result.data, codec)) > 25


@pytest.mark.parametrize("codec", ["jpeg", "jpeg2000", "heic"])
def test_find_close_gives_the_smallest_file_when_the_target_is_out_of_reach(codec: str, photo: np.ndarray):
    result = find_close(photo, codec, 0.001)
    assert result.quality == KNOBS[codec].smallest_file and result.bpp > 0.001


def test_bisection_spends_two_encodes_on_a_target_out_of_reach_and_at_most_eight_otherwise(
        face: np.ndarray, monkeypatch: pytest.MonkeyPatch):
    qualities = []
    real_encode = baselines.encode
    monkeypatch.setattr(baselines, "encode", lambda image, codec, quality: qualities.append(quality) or
                        real_encode(image, codec, quality))
    assert find_close(face, "jpeg", 0.001).quality == 1 and qualities == [48, 1]
    for target, first_fits in ((1.0, False), (2.0, True)):
        qualities.clear()
        result = find_close(face, "jpeg", target)
        tries = len(qualities)
        assert (qualities[1] == 1) != first_fits and tries <= 8
        assert result.bpp <= target < at_quality(face, "jpeg", result.quality + 1).bpp


def test_chosen_settings_reach_the_encoder(photo: np.ndarray):
    assert baselines.settings("webp") == {"method": 6}
    assert baselines.settings("avif") == {"speed": 2}
    assert baselines.settings("heic") == {"enc_params": {"preset": "slower"}}
    assert baselines.settings("jxl") == {"effort": 9}
    faster = {"webp": {"method": 0}, "avif": {"speed": 10}, "heic": {"enc_params": {"preset": "ultrafast"}},
              "jxl": {"effort": 1}}
    for codec, fast in faster.items():
        pillow_format = baselines.REGISTRY[codec].pillow_format
        ours = encode(photo, codec, 50)
        assert ours == pillow_file(photo, pillow_format, quality=50, **baselines.settings(codec))
        assert ours != pillow_file(photo, pillow_format, quality=50, **fast), f"{codec}: its setting changes nothing"


def test_a_missing_plugin_is_named_and_left_out(heif_missing, photo: np.ndarray):
    assert baselines.missing_package("heic") == "pillow-heif"
    with pytest.raises(FacelabError, match=r"heic needs the pillow-heif package: pip install pillow-heif"):
        encode(photo, "heic", 50)
    with pytest.raises(FacelabError, match="pillow-heif"):
        find_close(photo, "heic", 0.5)
    with pytest.warns(FacelabWarning, match=r"heic left out.*pip install pillow-heif"):
        assert baselines.installed(CODECS) == ("jpeg", "webp", "jpeg2000", "avif", "jxl")
    with pytest.warns(FacelabWarning, match="pillow-heif"):
        header, rows = overhead_table(photo, ("webp", "heic"))
    assert [row[0] for row in rows] == ["webp"]


def test_container_bytes_split_the_wrapping_from_the_bitstream(photo: np.ndarray):
    jp2 = pillow_file(photo, "JPEG2000", quality_mode="rates", quality_layers=[40.0], irreversible=True)
    assert container_bytes(encode(photo, "jpeg2000", 40.0)) == 0
    assert container_bytes(jp2) == 85 and jp2[85:89] == b"\xff\x4f\xff\x51"  # JP2's boxes, then the codestream
    jxl_boxed = pillow_file(photo, "JXL", quality=50, effort=9, use_container=True)
    jxl_bare = encode(photo, "jxl", 50)
    assert container_bytes(jxl_bare) == 0 and container_bytes(jxl_boxed) == len(jxl_boxed) - len(jxl_bare)
    assert container_bytes(encode(photo, "webp", 50)) == 20  # RIFF header + VP8 chunk header
    assert container_bytes(encode(photo, "jpeg", 50)) == 18  # the JFIF APP0 segment
    for codec in ("avif", "heic"):
        small, large = encode(photo, codec, 10), encode(photo, codec, 90)
        assert container_bytes(small) == container_bytes(large) > 200  # the same boxes, whatever the picture
    with pytest.raises(BitstreamError, match="not a file of a known"):
        container_bytes(b"GIF89a and more")
    with pytest.raises(BitstreamError, match="claims"):
        container_bytes(encode(photo, "avif", 50)[:100])


def test_overhead_at_112x96_is_measured_in_bytes_and_bpp(face: np.ndarray):
    header, rows = overhead_table(face)
    assert [row[0] for row in rows] == list(CODECS) and len(header) == len(rows[0])
    by_codec = {row[0]: dict(zip(header, row)) for row in rows}
    for codec, row in by_codec.items():
        flat, container, own = (row["smallest file, flat grey (bytes)"], row["container (bytes)"],
                                row["smallest file of this face (bytes)"])
        assert container <= flat <= own, codec
        assert row["this face bpp"] == pytest.approx(own * 8 / FACE_PIXELS)
        assert row["flat grey bpp"] == pytest.approx(flat * 8 / FACE_PIXELS)
        assert overhead(face, codec).flat_bytes == flat
    flat_bpp = {codec: overhead(face, codec).flat_bytes * 8 / FACE_PIXELS for codec in CODECS}
    assert flat_bpp["heic"] > flat_bpp["avif"] > 0.15 > flat_bpp["webp"]  # a 0.15 bpp face is out of their reach
    assert flat_bpp["jpeg"] > 0.5  # baseline JPEG's tables alone


def test_the_evaluation_defaults_take_every_installed_codec_and_skip_a_missing_one(heif_missing):
    from facelab.evaluation.experiment import CURVE_QUALITIES, EvaluationConfig

    assert set(CURVE_QUALITIES) == set(CODECS)
    with pytest.warns(FacelabWarning, match="pip install pillow-heif"):
        config = EvaluationConfig()
    assert config.equal_rate == ("jpeg", "webp", "jpeg2000", "avif", "jxl")
    assert list(config.curve_qualities) == ["jpeg", "webp", "jpeg2000", "avif", "jxl"]
