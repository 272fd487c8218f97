"""Hostile compressed files: sizes checked before anything is allocated, bounded LZMA, checked headers, tiled decoding."""

from __future__ import annotations

import argparse
import dataclasses
import zlib
from pathlib import Path

import numpy as np
import pytest

from facelab import codec, container, limits
from facelab.bitstream import Header, pack_code
from facelab.cli import cmd_info, main
from facelab.entropy import encode_bits
from facelab.errors import BitstreamError, ModelError
from facelab.weights import load_model, model_id
from hostile import GiB, flc_file, format_1_header, memory_guard, python_peak, xz_file

MiB = 1 << 20


@pytest.fixture(scope="module")
def model():
    return load_model("untrained")


@pytest.fixture(scope="module")
def code(model) -> np.ndarray:
    y, x = np.mgrid[0:37, 0:53]
    image = np.stack([x * 4, y * 6, (x + y) * 2], axis=2).clip(0, 255).astype(np.uint8)
    return codec.encode_code(model, image)


def header_for(model, height: int, width: int, coder: str = "context", model_name: str | None = None) -> Header:
    identity = model_id(model) if model_name is None else model_name
    return Header(coder, height, width, model.code_channels, -(-height // 8), -(-width // 8), identity)


@pytest.mark.parametrize("height, width, bits", [(524_280, 524_280, 128), (100_000, 100_000, 128),
                                                 (8000, 8001, 128), (8000, 8000, 65_535)])
def test_flc_claiming_a_huge_image_is_refused_before_allocating(model, height, width, bits) -> None:
    header = dataclasses.replace(header_for(model, height, width), code_channels=bits)
    data = flc_file(header, np.zeros((1, 1, 1)))
    with memory_guard(GiB), python_peak() as peak, pytest.raises(BitstreamError, match="limit") as info:
        codec.decompress(data, model)
    assert peak[0] < MiB and "\n" not in str(info.value)


def test_xz_claiming_a_huge_image_is_refused_before_inflating(model) -> None:
    header = header_for(model, 48_984, 48_984, coder="xz")
    data = xz_file(header.pack() + bytes(20 * MiB))
    with memory_guard(GiB), python_peak() as peak, pytest.raises(BitstreamError, match="megapixel limit"):
        codec.decompress(data, model)
    assert peak[0] < MiB


def test_xz_payload_is_inflated_no_further_than_the_header_implies(model, code) -> None:
    """A few KB of .xz whose zeros expand far past the 37x53 code its header announces."""
    data = xz_file(header_for(model, 37, 53, coder="xz").pack() + pack_code(code) + bytes(20 * MiB))
    assert len(data) < 8 * 1024
    with memory_guard(GiB), python_peak() as peak, pytest.raises(BitstreamError, match="more than the"):
        codec.decompress(data, model)
    assert peak[0] < MiB


def with_dictionary_size(data: bytes, size_code: int) -> bytes:
    """An .xz stream whose LZMA2 filter asks for another dictionary (size 2**(size_code/2 + 12) bytes for an
    even code), its block-header CRC fixed: a decoder would have to allocate it before reading the data."""
    start = 12  # the stream header
    end = start + (data[start] + 1) * 4
    block = bytearray(data[start:end])
    block[block.index(b"\x21\x01") + 2] = size_code  # LZMA2's filter id, one property byte, the dictionary
    block[-4:] = zlib.crc32(bytes(block[:-4])).to_bytes(4, "little")
    return data[:start] + bytes(block) + data[end:]


def test_xz_dictionary_larger_than_facelab_uses_is_refused(model, code) -> None:
    inner = header_for(model, 37, 53, coder="xz").pack() + pack_code(code)
    data = with_dictionary_size(codec.xz_compress(inner), 36)  # 1 GiB
    with memory_guard(GiB), pytest.raises(BitstreamError, match="MiB of decoder memory"):
        codec.decompress(data, model)


def test_flc_payload_longer_than_any_code_of_its_size_is_refused(model, code) -> None:
    data = flc_file(header_for(model, 37, 53), code) + bytes(MiB)
    with pytest.raises(BitstreamError, match="more than a 53x37 image's code can take"):
        codec.decompress(data, model)


@pytest.mark.parametrize("shape", [(128, 1, 1), (128, 5, 7), (128, 16, 16), (7, 3, 50)])
def test_payload_bound_holds_for_incompressible_and_alternating_codes(shape) -> None:
    rng = np.random.default_rng(sum(shape))
    code_bytes = -(-int(np.prod(shape)) // 8)
    alternating = (np.indices(shape).sum(axis=0) % 2).astype(bool)
    for bits in (rng.random(shape) < 0.5, alternating, ~alternating):
        assert len(encode_bits(bits)) <= container.max_context_payload(code_bytes)


def test_info_reads_only_the_header(tmp_path: Path, model, capsys) -> None:
    """A legal 8000x8000 file: `info` prints its header without inflating its 16 MB code."""
    header = header_for(model, 8000, 8000, coder="xz")
    path = tmp_path / "large.xz"
    path.write_bytes(xz_file(header.pack() + bytes(header.code_bytes)))
    with python_peak() as peak:
        assert cmd_info(argparse.Namespace(input=str(path))) == 0
    assert "8000x8000 pixels" in capsys.readouterr().out
    assert peak[0] < 2 * MiB


def test_oversized_file_is_refused_without_reading_it(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(limits, "MAX_PIXELS", 4096)
    path = tmp_path / "padded.flc"
    path.write_bytes(b"FLAB" + bytes(200_000))
    assert main(["decompress", str(path), str(tmp_path / "out.png")]) == 1
    err = capsys.readouterr().err
    assert "more than any facelab file" in err and err.count("\n") == 1


def test_folder_job_goes_on_past_bombs_and_sums_up(tmp_path: Path, model, code, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_good.xz").write_bytes(xz_file(header_for(model, 37, 53, coder="xz").pack() + pack_code(code)))
    (folder / "b_bomb.flc").write_bytes(flc_file(header_for(model, 524_280, 524_280), np.zeros((128, 1, 1))))
    (folder / "c_bomb.xz").write_bytes(xz_file(header_for(model, 37, 53, coder="xz").pack() + bytes(20 * MiB)))
    with memory_guard(GiB):
        assert main(["decompress", str(folder), str(tmp_path / "out")]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("facelab:")]
    assert (tmp_path / "out" / "a_good.png").is_file()
    assert len(err) == 3 and err[-1] == "facelab: 2 of 3 files failed"
    assert err[0].startswith(f"facelab: error: {folder / 'b_bomb.flc'}: ") and err[0].count("b_bomb.flc") == 1
    assert err[1].startswith(f"facelab: error: {folder / 'c_bomb.xz'}: ")


def flip(data: bytes, bit: int) -> bytes:
    damaged = bytearray(data)
    damaged[bit // 8] ^= 1 << (bit % 8)
    return bytes(damaged)


def test_every_header_bit_flip_is_caught(model, code) -> None:
    """Flipping the width's low bit used to decode, exit 0, to a 54x37 image; now any flipped header bit fails."""
    header = header_for(model, 37, 53)
    flc = flc_file(header, code)
    inner = header.pack() + pack_code(code)
    for bit in range(8 * len(header.pack())):
        with pytest.raises(BitstreamError):
            codec.decompress(flip(flc, bit), model)
        with pytest.raises(BitstreamError):
            codec.decompress(codec.xz_compress(flip(inner, bit)), model)


def test_format_1_files_still_decode(model, code) -> None:
    header = header_for(model, 37, 53)
    expected = codec.decompress(flc_file(header, code), model)
    old_flc = format_1_header(header) + encode_bits(code > 0)
    old_xz = codec.xz_compress(format_1_header(dataclasses.replace(header, coder="xz")) + pack_code(code))
    assert np.array_equal(codec.decompress(old_flc, model), expected)
    assert np.array_equal(codec.decompress(old_xz, model), expected)


def test_large_images_decode_in_tiles_that_match_the_whole(model, monkeypatch) -> None:
    code = np.random.default_rng(0).choice([-1.0, 1.0], size=(128, 9, 11)).astype(np.float32)
    whole = codec.decode_code(model, code, (70, 85))
    monkeypatch.setattr(codec, "DECODE_TILE", 3)
    sizes = []
    real_decode = model.decode
    monkeypatch.setattr(model, "decode", lambda tile: sizes.append(tuple(tile.shape[-2:])) or real_decode(tile))
    tiled = codec.decode_code(model, code, (70, 85))
    monkeypatch.undo()
    assert len(sizes) == 12 and max(max(size) for size in sizes) <= 3 + 2
    difference = np.abs(tiled.astype(int) - whole.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3


def test_a_header_names_a_model_never_a_path(model, code, monkeypatch, tmp_path: Path, capsys) -> None:
    import facelab.weights as weights

    opened = []
    monkeypatch.setattr(weights, "read_checkpoint", lambda path: opened.append(path))
    data = flc_file(header_for(model, 37, 53, model_name="/etc/passwd:0123456789ab"), code)
    with pytest.raises(ModelError, match="not shipped with facelab; decode it with --model"):
        codec.decompress(data)
    path = tmp_path / "named.flc"
    path.write_bytes(data)
    assert main(["decompress", str(path), str(tmp_path / "out.png")]) == 1
    err = capsys.readouterr().err
    assert "not shipped" in err and "PyTorch" not in err and err.count("\n") == 1
    assert not opened


def test_hint_never_names_the_model_that_refused(model, code) -> None:
    stranger = flc_file(header_for(model, 37, 53, model_name="untrained:000000000000"), code)
    with pytest.raises(ModelError) as info:
        codec.decompress(stranger)
    assert "--model untrained" not in str(info.value) and "path of the checkpoint" in str(info.value)
    shipped = flc_file(header_for(model, 37, 53, model_name="face:000000000000"), code)
    with pytest.raises(ModelError, match="decode it with --model face"):
        codec.decompress(shipped, model)


def test_compress_applies_the_same_limits_as_decompress(model, monkeypatch) -> None:
    from facelab.errors import ImageError

    monkeypatch.setattr(limits, "MAX_PIXELS", 4096)
    with pytest.raises(ImageError, match="code of a 4000x1 image"):
        codec.compress(np.zeros((1, 4000, 3), np.uint8), model)
    assert codec.decompress(codec.compress(np.zeros((64, 64, 3), np.uint8), model), model).shape == (64, 64, 3)
