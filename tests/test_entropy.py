"""The context coder: bit-exact round trips, smaller than LZMA on structured codes, clear errors on damage."""

from __future__ import annotations

import lzma
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facelab import codec
from facelab.entropy import (PREDICTION_BINS, coding_order, coding_trace, decode_bits, encode_bits, neighbour_table,
                              phase_bounds)
from facelab.errors import BitstreamError
from facelab.weights import load_model


def xz_size(bits: np.ndarray) -> int:
    """What the paper's .xz spends on the same bits (container included)."""
    return len(lzma.compress(np.packbits(bits), format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME))


def binarizer_like_code(seed: int, shape: tuple[int, int, int] = (128, 32, 32), features: int = 64) -> np.ndarray:
    """Bits shaped like the model's: signs of a 1x1 projection of spatially smooth ReLU features."""
    rng = np.random.default_rng(seed)
    channels, height, width = shape
    smooth = rng.standard_normal((features, height + 4, width + 4))
    for axis in (1, 2):
        smooth = sum(np.roll(smooth, shift, axis=axis) for shift in range(-2, 3)) / 5
    relu = np.maximum(smooth[:, 2:2 + height, 2:2 + width], 0)
    weights = rng.standard_normal((channels, features))
    bias = 0.3 * rng.standard_normal(channels)
    return np.einsum("cf,fhw->chw", weights, relu) + bias[:, None, None] > 0


def round_trip(bits: np.ndarray) -> bytes:
    payload = encode_bits(bits)
    decoded = decode_bits(payload, bits.shape)
    assert decoded.dtype == bool and decoded.shape == bits.shape
    assert np.array_equal(decoded, bits)
    return payload


@pytest.mark.parametrize("shape", [(1, 1, 1), (128, 1, 1), (1, 1, 9), (3, 5, 7), (16, 13, 2), (128, 8, 8)])
@pytest.mark.parametrize("kind", ["zeros", "ones", "random", "correlated"])
def test_round_trip_is_bit_exact(shape, kind) -> None:
    rng = np.random.default_rng(sum(shape))
    bits = {
        "zeros": np.zeros(shape, bool),
        "ones": np.ones(shape, bool),
        "random": rng.random(shape) < 0.5,
        "correlated": binarizer_like_code(1, shape, features=8),
    }[kind]
    round_trip(bits)


def test_empty_code_round_trips() -> None:
    for shape in [(0, 4, 4), (128, 0, 3)]:
        assert round_trip(np.zeros(shape, bool)) == encode_bits(np.ones(shape, bool))


def test_encoding_is_deterministic_and_constant_codes_are_tiny() -> None:
    bits = binarizer_like_code(2)
    assert encode_bits(bits) == encode_bits(bits.copy())
    assert len(round_trip(np.zeros((128, 32, 32), bool))) < 80
    assert len(round_trip(np.ones((128, 32, 32), bool))) < 80


def test_payload_does_not_depend_on_the_blas_kernel(tmp_path) -> None:
    """The model's arithmetic is exact, so other CPU kernels (as on another machine) give the same bytes."""
    bits = binarizer_like_code(5, (128, 16, 16))
    np.save(tmp_path / "bits.npy", bits)
    script = (
        "import sys, numpy as np; from facelab.entropy import encode_bits; "
        f"sys.stdout.write(encode_bits(np.load(r'{tmp_path / 'bits.npy'}')).hex())"
    )
    for core in ("Prescott", "Haswell"):
        env = {**os.environ, "OPENBLAS_CORETYPE": core, "OPENBLAS_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        assert out.stdout == encode_bits(bits).hex(), core


def test_random_bits_cost_about_one_bit_each() -> None:
    bits = np.random.default_rng(3).random((128, 16, 16)) < 0.5
    assert 1.0 < 8 * len(round_trip(bits)) / bits.size < 1.03


def test_coding_order_is_a_coarse_to_fine_permutation() -> None:
    order = coding_order(32, 32)
    assert np.array_equal(np.sort(order), np.arange(32 * 32))
    rank = np.empty(1024, int)
    rank[order] = np.arange(1024)
    rank = rank.reshape(32, 32)
    assert rank[0, 0] == 0 and rank[::2, ::2].max() < 256
    assert rank[1::2, 1::2].min() == 256 and rank[1::2, 1::2].max() == 511
    for height, width in [(32, 32), (5, 7), (1, 9), (13, 2)]:
        order = coding_order(height, width)
        neighbours = neighbour_table(order, height, width)
        count = height * width
        assert ((neighbours < np.arange(count)[:, None]) | (neighbours == count)).all()
    assert phase_bounds(1024) == [8, 16, 32, 64, 128, 256, 384, 512, 768, 1024]
    assert phase_bounds(5) == [1, 2, 3, 5] and phase_bounds(1) == [1] and phase_bounds(0) == []


def test_coding_trace_lists_every_bit_with_the_cost_encode_bits_pays() -> None:
    bits = binarizer_like_code(6, (128, 16, 16))
    trace = coding_trace(bits)
    assert len(trace.bit) == bits.size
    assert np.array_equal(trace.bit, bits.reshape(128, -1)[trace.channel, trace.position])
    assert len(set(zip(trace.channel.tolist(), trace.position.tolist()))) == bits.size
    first = coding_order(16, 16)[:8]
    assert np.array_equal(trace.position[:16], np.tile(first, 2)) and trace.channel[:16].tolist() == [0] * 8 + [1] * 8
    np.testing.assert_allclose(trace.p_one[:8], 0.5, rtol=0, atol=1e-9)
    np.testing.assert_allclose(trace.cost[:8], 1.0, rtol=0, atol=1e-9)
    assert ((0 <= trace.prediction_bin) & (trace.prediction_bin < PREDICTION_BINS)).all()
    assert ((-4 <= trace.neighbour_sum) & (trace.neighbour_sum <= 4)).all()
    assert abs(trace.cost.sum() / 8 - len(encode_bits(bits))) < 8
    assert trace.cost[trace.channel >= 64].mean() < trace.cost[trace.channel < 8].mean()
    empty = coding_trace(np.zeros((0, 4, 4), bool))
    assert len(empty.bit) == 0 and empty.cost.sum() == 0


def test_beats_lzma_on_binarizer_like_codes() -> None:
    for seed in range(3):
        bits = binarizer_like_code(seed)
        assert len(round_trip(bits)) < 0.9 * xz_size(bits)


def test_beats_lzma_on_real_lfw_codes(data_root: Path) -> None:
    model = load_model("face")
    paths = sorted((data_root / "lfw" / "lfw-deepfunneled").glob("A*/*.jpg"))[:3]
    for path in paths:
        bits = codec.encode_code(model, codec.as_image(path)) > 0
        assert len(round_trip(bits)) < xz_size(bits), path.name


@pytest.fixture(scope="module")
def payload_and_shape() -> tuple[bytes, tuple[int, int, int]]:
    bits = binarizer_like_code(4, (128, 8, 8))
    return encode_bits(bits), bits.shape


@pytest.mark.parametrize("cut", [0, 1, 2, 3, -1, -5])
def test_truncated_payload_is_a_bitstream_error(payload_and_shape, cut) -> None:
    payload, shape = payload_and_shape
    with pytest.raises(BitstreamError, match="truncated|corrupt") as info:
        decode_bits(payload[:cut], shape)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("where", [0, 1, 2, 10, -1])
def test_corrupt_payload_is_a_bitstream_error(payload_and_shape, where) -> None:
    payload, shape = payload_and_shape
    damaged = bytearray(payload)
    damaged[where] ^= 0x5A
    with pytest.raises(BitstreamError, match="corrupt"):
        decode_bits(bytes(damaged), shape)


def test_extra_bytes_and_bare_checksums_are_refused(payload_and_shape) -> None:
    payload, shape = payload_and_shape
    for bad in [payload + b"\x00", b"\x00\x00", b"\xff\xff", b"\x00" * 6]:
        with pytest.raises(BitstreamError):
            decode_bits(bad, shape)


def test_codec_context_round_trip_matches_xz(smooth_image) -> None:
    model = load_model("untrained")
    via_context = codec.compress(smooth_image, model, coder="context")
    via_xz = codec.compress(smooth_image, model, coder="xz")
    assert via_context.startswith(b"FLAB") and via_xz.startswith(codec.XZ_MAGIC)
    header, payload = codec.read_header(via_context)
    assert header.coder == "context"
    code = codec.encode_code(model, smooth_image)
    assert np.array_equal(decode_bits(payload, header.code_shape), code > 0)
    assert np.array_equal(codec.decompress(via_context, model), codec.decompress(via_xz, model))
