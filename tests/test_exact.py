"""Exact decoding: the hyperprior's entropy model is chosen in integer arithmetic, so a .flh file decodes to the same
latents on every machine; a decoder that still disagrees says so in one line instead of returning a wrong face."""

from __future__ import annotations

import math
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cross_backend import indexes
from facelab import exact
from facelab.bitstream import Header
from facelab.catalog import SHIPPED, SHIPPED_DIR
from facelab.codec import compress, decompress
from facelab.container import read_header, seal
from facelab.data.files import read_rgb
from facelab.data.lfw import LFWImages
from facelab.errors import BitstreamError
from facelab.hyperprior import build_shared_tables, latent_check, latent_shape, shared_tables
from facelab.weights import load_model, model_id

DECODES = 1000
"""Cross-backend file decodes: the old float path garbled about 1.2% of files, so 1,000 would show about 12."""


def hyperprior_names() -> list[str]:
    """Every shipped hyperprior model that is installed."""
    return [name for name in SHIPPED if (SHIPPED_DIR / f"{name}.pt").is_file()
            and torch.load(SHIPPED_DIR / f"{name}.pt", weights_only=True).get("family") == "hyperprior"]


def face_crops(root: Path, count: int) -> list[np.ndarray]:
    """`count` 112x96 crops around the face of LFW's 250x250 files, spread over the people."""
    paths = LFWImages(root).paths
    return [read_rgb(path)[69:181, 77:173] for path in paths[:: len(paths) // count][:count]]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return load_model("hp-2")


@pytest.fixture(scope="module")
def face(data_root: Path) -> np.ndarray:
    return face_crops(data_root, 1)[0]


def test_shipped_tables_are_compressai_s():
    built, shipped = build_shared_tables(), shared_tables()
    assert built.keys() == shipped.keys()
    for key in built:
        assert built[key].dtype == shipped[key].dtype and torch.equal(built[key], shipped[key]), key


def test_transposed_convolution_as_integers_matches_torch():
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose2d(3, 4, 5, stride=2, padding=2, output_padding=1).double()
    with torch.no_grad():
        conv.weight.copy_(torch.randint(-50, 50, conv.weight.shape) / 2 ** 10)
        conv.bias.copy_(torch.randint(-50, 50, conv.bias.shape) / 2 ** 10)
    x = torch.randint(-20, 20, (1, 3, 3, 4)).double()
    layer = exact.from_transposed(conv, relu=False)
    ours = layer(exact.insert_zeros(x * 2.0 ** exact.ACTIVATION_BITS, 2)) / 2.0 ** exact.ACTIVATION_BITS
    assert ours.shape == conv(x).shape == (1, 4, 6, 8)
    assert torch.allclose(ours, conv(x), atol=2.0 ** -exact.ACTIVATION_BITS)


def test_integer_h_s_follows_the_float_one(model, face):
    tensor = torch.from_numpy(face).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        y = model.g_a(F.pad(tensor, (0, 0, 0, 0)))
        z_hat = model.entropy_bottleneck.decompress(model.entropy_bottleneck.compress(model.h_a(y.abs())), (2, 2))
        scales = exact.IntegerNet(model.h_s)(z_hat) / 2.0 ** exact.ACTIVATION_BITS
        assert torch.allclose(scales.float(), model.h_s(z_hat), atol=1e-3, rtol=1e-4)
        assert exact.IntegerNet(model.h_s).largest_input_fraction(z_hat) < 0.1


def test_every_layer_stays_within_exact_float64(model):
    for _, layer in exact.IntegerNet(model.h_s).steps:
        l1 = layer.weight.abs().sum(dim=(1, 2, 3)).max().item()
        assert l1 * layer.input_limit + layer.bias.abs().max().item() <= exact.EXACT_LIMIT
        assert torch.equal(layer.weight, layer.weight.round()) and layer.weight.abs().max() <= 2 ** exact.WEIGHT_BITS
        assert layer.input_limit > 1000 * 2 ** exact.ACTIVATION_BITS  # room for activations up to 1,000


def test_integer_layer_does_not_depend_on_summation_order(model):
    """Another backend sums in another order: the integer layer gives the same bits, the float one does not."""
    torch.manual_seed(1)
    x = torch.round(torch.randn(1, 64, 4, 4) * 4) + torch.randn(1, 64, 1, 1)
    order = torch.randperm(64)
    conv = model.h_s[0]
    shuffled = torch.nn.ConvTranspose2d(64, conv.out_channels, 5, stride=2, padding=2, output_padding=1)
    with torch.no_grad():
        shuffled.weight.copy_(conv.weight[order])
        shuffled.bias.copy_(conv.bias)
    net, other = exact.IntegerNet(torch.nn.Sequential(conv)), exact.IntegerNet(torch.nn.Sequential(shuffled))
    assert torch.equal(net(x), other(x[:, order]))
    with torch.inference_mode():
        assert not torch.equal(conv(x), shuffled(x[:, order]))  # the float sums round differently


def test_round_trip_and_rate_against_float_indexes(model, face):
    data = compress(face, model)
    header, payload = read_header(data)
    assert header.version == 4 and header.compact
    image = decompress(data, model)
    assert image.shape == face.shape
    assert 10 * math.log10(255 ** 2 / np.mean((image.astype(float) - face) ** 2)) > 25
    chosen = indexes(model, data)
    assert (chosen["exact"] != chosen["float"]).mean() < 0.01  # a boundary case now and then, nothing more


def test_a_desynchronised_decoder_is_one_line_error(model, face, monkeypatch):
    data = compress(face, model)
    real = exact.scale_indexes

    def off_by_one(scales: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        chosen = real(scales, table)
        chosen.view(-1)[0] = (chosen.view(-1)[0] + 1) % (len(table) - 1)
        return chosen

    monkeypatch.setattr("facelab.hyperprior.scale_indexes", off_by_one)
    with pytest.raises(BitstreamError, match="decoded on a machine whose arithmetic differs") as caught:
        decompress(data, model)
    assert "\n" not in str(caught.value)


def test_altered_side_information_is_caught_by_the_latent_check(model, face):
    """Side information changed after the checks were written (the file's CRC-32 recomputed): the latents decode
    under other tables, and their own check refuses them."""
    data = compress(face, model)
    header, payload = read_header(data)
    body = bytearray(payload)
    body[0] ^= 0x10  # the stream's first bytes: the range coder's state, which the side information decodes from
    with pytest.raises(BitstreamError, match="arithmetic differs"):
        decompress(seal(header.pack() + bytes(body)), model)


def two_strings(model: torch.nn.Module, face: np.ndarray, exact: bool) -> tuple[bytes, torch.Tensor, torch.Tensor]:
    """A payload as formats 2 and 3 wrote it: a 4-byte length, the side information's string, the latents' string;
    with the entropy-model indexes and the latent symbols (for format 3's check)."""
    tensor = torch.from_numpy(face).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        y = model.g_a(tensor)
        z = model.h_a(F.pad(y.abs(), (0, 2, 0, 1)))
        z_string = model.entropy_bottleneck.compress(z)[0]
        z_hat = model.entropy_bottleneck.decompress([z_string], z.shape[-2:])
        chosen = model._indexes(z_hat, y.shape[-2:], exact=exact)
        y_string = model.gaussian_conditional.compress(y, chosen)[0]
    return len(z_string).to_bytes(4, "big") + z_string + y_string, chosen, model.gaussian_conditional.quantize(y, "symbols")


def old_file(model: torch.nn.Module, face: np.ndarray, version: int) -> bytes:
    """A .flh file as facelab format 2 (float indexes, no latent check) or 3 (exact indexes, latent check) wrote it:
    the 50-byte header with its own CRC-32, the payload, the payload's CRC-32."""
    payload, chosen, symbols = two_strings(model, face, exact=version >= 3)
    if version >= 3:
        payload += latent_check(chosen, symbols).to_bytes(2, "big")
    header = Header("hyperprior", *face.shape[:2], model.code_channels, *latent_shape(*face.shape[:2]),
                    model_id(model), version=version)
    return header.pack() + payload + zlib.crc32(payload).to_bytes(4, "big")


def test_format_2_files_still_decode(model, face):
    """A file as facelab format 2 wrote it (float indexes, no latent check) decodes as it did."""
    old = old_file(model, face, 2)
    assert np.abs(decompress(old, model).astype(int) - decompress(compress(face, model), model)).max() <= 2


def test_format_3_files_decode_to_format_4_s_image_in_30_more_bytes(model, face):
    """The same latents: format 3's file decodes to the very image of format 4's, which saves its long header,
    the side information's length, one range coder flush and one CRC-32."""
    old, new = old_file(model, face, 3), compress(face, model)
    assert read_header(old)[0].version == 3 and read_header(new)[0].version == 4
    assert np.array_equal(decompress(old, model), decompress(new, model))
    assert 30 <= len(old) - len(new) <= 40


@pytest.mark.slow
def test_files_decode_to_the_same_latents_on_another_backend(data_root, tmp_path):
    """Encode with torch's defaults here; decode in a second process with oneDNN off and one thread."""
    names = hyperprior_names()
    assert len(names) >= 13
    faces = face_crops(data_root, math.ceil(DECODES / len(names)))
    chosen = {}
    for name in names:
        model = load_model(name)
        (tmp_path / name).mkdir()
        for number, face in enumerate(faces):
            data = compress(face, model)
            (tmp_path / name / f"{number}.flh").write_bytes(data)
            chosen[name, number] = indexes(model, data), decompress(data, model)
    here = Path(__file__).parent
    done = subprocess.run([sys.executable, str(here / "cross_backend.py"), str(tmp_path)], capture_output=True,
                          text=True, cwd=here, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"mkldnn": false, "threads": 1' in done.stdout
    differing_indexes = garbage = errors = float_files_differing = 0
    worst = 0
    for (name, number), (ours, image) in chosen.items():
        theirs = np.load(tmp_path / name / f"{number}.decoded.npz")
        differing_indexes += int((theirs["exact"] != ours["exact"]).sum())
        float_files_differing += int(bool((theirs["float"] != ours["float"]).any()))
        if str(theirs["error"]):
            errors += 1
            continue
        off = np.abs(theirs["image"].astype(int) - image)
        garbage += int((off > 8).mean() > 0.01)
        worst = max(worst, int(off.max()))
    print(f"{len(chosen)} files, {len(names)} models: exact indexes differing {differing_indexes}, decode errors "
          f"{errors}, garbage {garbage}, largest pixel difference {worst}; files whose float indexes differ "
          f"between the two processes (format 2's risk): {float_files_differing}")
    assert len(chosen) >= DECODES
    assert differing_indexes == errors == garbage == 0
    assert worst <= 3
