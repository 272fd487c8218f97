"""The bitstream: bit-exact code round trips, real sizes, and a clear error for every bad file."""

import lzma
import struct
import zlib

import numpy as np
import pytest
import torch

from facelab import codec
from facelab.bitstream import Header, pack_code, unpack_code, unpack_header
from facelab.errors import BitstreamError, ImageError, ModelError
from facelab.weights import load_model, model_id


@pytest.fixture(scope="module")
def model():
    return load_model("untrained")


@pytest.fixture(scope="module")
def other_model():
    torch.manual_seed(1)
    other = load_model("untrained")
    with torch.no_grad():
        other.binarizer.conv.bias.add_(0.1)
    return other


def test_pack_unpack_is_bit_exact() -> None:
    rng = np.random.default_rng(0)
    code = rng.choice([-1.0, 1.0], size=(128, 5, 7)).astype(np.float32)
    payload = pack_code(code)
    assert len(payload) == 128 * 5 * 7 // 8
    assert np.array_equal(unpack_code(payload, code.shape), code)


def test_compress_round_trip_reproduces_the_code(model, smooth_image) -> None:
    data = codec.compress(smooth_image, model)
    assert data.startswith(codec.XZ_MAGIC)
    header, payload = codec.read_header(data)
    assert (header.height, header.width, header.code_shape) == (37, 53, (128, 5, 7))
    assert header.model_id == model_id(model)
    assert np.array_equal(unpack_code(payload, header.code_shape), codec.encode_code(model, smooth_image))
    out = codec.decompress(data, model)
    assert out.shape == smooth_image.shape and out.dtype == np.uint8
    assert np.array_equal(out, codec.decode_code(model, codec.encode_code(model, smooth_image), (37, 53)))


def test_xz_file_is_a_standard_xz_stream(model, smooth_image) -> None:
    inner = lzma.decompress(codec.compress(smooth_image, model))
    assert inner.startswith(b"FLAB")


def test_bpp_is_the_real_file_size(model, lfw_image_path) -> None:
    from facelab.image_io import load_image

    image = load_image(lfw_image_path)
    data = codec.compress(image, model)
    assert codec.bits_per_pixel(data, 250, 250) == pytest.approx(8 * len(data) / 62500)
    assert 0 < codec.bits_per_pixel(data, 250, 250) < 2.1  # the raw code is 2 bpp


@pytest.mark.parametrize("size", [(1, 1), (8, 8), (9, 300)])
def test_tiny_and_thin_images_round_trip(model, size) -> None:
    image = np.full((*size, 3), 128, np.uint8)
    assert codec.decompress(codec.compress(image, model), model).shape == (*size, 3)


def test_rejects_non_rgb_arrays(model) -> None:
    with pytest.raises(ImageError, match="RGB"):
        codec.compress(np.zeros((8, 8), np.uint8), model)
    with pytest.raises(ImageError, match="uint8"):
        codec.compress(np.zeros((8, 8, 3), np.float32), model)


def test_empty_file(model) -> None:
    with pytest.raises(BitstreamError, match="empty"):
        codec.decompress(b"", model)


def test_truncated_xz(model, smooth_image) -> None:
    data = codec.compress(smooth_image, model)
    for cut in (len(data) - 1, len(data) // 2, 10):
        with pytest.raises(BitstreamError, match="truncated|corrupt"):
            codec.decompress(data[:cut], model)


def test_corrupt_xz(model, smooth_image) -> None:
    data = bytearray(codec.compress(smooth_image, model))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(BitstreamError, match="corrupt"):
        codec.decompress(bytes(data), model)


def test_not_a_facelab_file(model) -> None:
    with pytest.raises(BitstreamError, match="not a facelab file"):
        codec.decompress(b"\x89PNG\r\n\x1a\n" + bytes(100), model)
    with pytest.raises(BitstreamError, match="wrong magic"):
        codec.decompress(lzma.compress(b"NOPE" + bytes(40)), model)


def test_newer_format_version(model, smooth_image) -> None:
    inner = bytearray(lzma.decompress(codec.compress(smooth_image, model)))
    inner[4] = 99
    with pytest.raises(BitstreamError, match="format 99.*upgrade"):
        codec.decompress(lzma.compress(bytes(inner)), model)


def test_code_that_does_not_match_the_header(model, smooth_image) -> None:
    inner = lzma.decompress(codec.compress(smooth_image, model))
    with pytest.raises(BitstreamError, match="length mismatch"):
        codec.decompress(lzma.compress(inner[:-3]), model)
    header, _ = unpack_header(inner)
    forged = Header("xz", 37, 53, 128, 9, 7, header.model_id).pack()
    with pytest.raises(BitstreamError, match="does not fit"):
        codec.decompress(lzma.compress(forged + inner[len(forged):]), model)


def test_wrong_model_is_named(model, other_model, smooth_image) -> None:
    data = codec.compress(smooth_image, model)
    with pytest.raises(ModelError, match="encoded with model 'untrained:"):
        codec.decompress(data, other_model)


def test_header_layout_is_stable() -> None:
    packed = Header("xz", 250, 250, 128, 32, 32, "face:0123456789ab").pack()
    assert packed[:4] == b"FLAB" and packed[4] == 3
    assert struct.unpack(">II", packed[6:14]) == (250, 250)
    assert len(packed) == 25 + len("face:0123456789ab")
    assert struct.unpack(">I", packed[-4:])[0] == zlib.crc32(packed[:-4])


@pytest.mark.parametrize("size", [0, 1, 5000, 16_384, 70_000])
def test_xz_compress_matches_xz_9e_in_size_and_opens_with_lzma(size: int) -> None:
    data = np.random.default_rng(size).integers(0, 4, size, dtype=np.uint8).tobytes()
    ours = codec.xz_compress(data)
    assert lzma.decompress(ours, format=lzma.FORMAT_XZ) == data
    assert len(ours) == len(lzma.compress(data, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME))
