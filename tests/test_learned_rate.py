"""The paper's architecture with a learned rate (coder "learned"): exact round trips, causal probabilities, real sizes
at the estimate, clear errors, and the same code decoded in another process with oneDNN off and one thread."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from facelab import codec
from facelab.bitmodel import IntegerBitModel, coding_passes
from facelab.container import read_header
from facelab.data.template_faces import validation_folder
from facelab.errors import BitstreamError, ModelError
from facelab.exact import ACTIVATION_BITS
from facelab.image_io import load_image
from facelab.learned_rate import LearnedRateNet, code_probabilities, estimated_bits
from facelab.recipes import LEARNED, LEARNED_LONG
from facelab.weights import SHIPPED_DIR, load_model, save_checkpoint

CROSS_BACKEND = Path(__file__).with_name("cross_backend_learned.py")


def random_bit_model(seed: int) -> LearnedRateNet:
    """face-a100 with a bit model whose weights are random (seeded), so that its probabilities are far from 1/2."""
    model = LearnedRateNet.from_paper_model(load_model("face-a100"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.bit_model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    model.name = f"random-{seed}"
    return model.eval()


@pytest.fixture(scope="module")
def model() -> LearnedRateNet:
    return random_bit_model(0)


@pytest.fixture(scope="module")
def faces(data_root: Path) -> list[np.ndarray]:
    folder = validation_folder(data_root)
    return [load_image(path) for path in sorted(folder.glob("*/*.png"))[::97][:4]]


def test_files_decode_to_the_same_code_and_image(model, faces) -> None:
    for face in faces:
        data = codec.compress(face, model, coder="learned")
        assert read_header(data)[0].coder == "learned" and data[:4] == b"FLAB"
        code = codec.encode_code(model, face)
        assert np.array_equal(codec.decompress(data, model), codec.decode_code(model, code, face.shape[:2]))


def test_learned_models_use_their_own_coder_by_default(model) -> None:
    assert codec.default_coder(model) == "learned" and codec.SUFFIXES["learned"] == ".flr"
    with pytest.raises(ModelError, match="learned"):
        codec.check_coder("xz", model)


def test_a_bit_s_probability_does_not_depend_on_bits_coded_after_it(model, faces) -> None:
    """Flip one bit: only the probabilities of bits coded after it may change."""
    exact = model.integer_bit_model()
    code = codec.encode_code(model, faces[0])
    order = np.zeros(code.shape, np.int64)
    rank = 0
    for group, positions in coding_passes(exact.groups, *code.shape[1:]):
        for channel in range(group * exact.size, (group + 1) * exact.size):
            count = int(positions.sum())
            order[channel][positions.numpy()] = np.arange(rank, rank + count)
            rank += count
    _, before = code_probabilities(exact, code)
    for channel, y, x in ((0, 0, 0), (37, 5, 6), (64, 7, 3), (127, 13, 11)):
        flipped = code.copy()
        flipped[channel, y, x] *= -1
        _, after = code_probabilities(exact, flipped)
        changed = np.flatnonzero(before != after)
        assert changed.size == 0 or changed.min() > order[channel, y, x]
    assert rank == code.size


def test_the_integer_logits_follow_the_float_ones(model, faces) -> None:
    exact = model.integer_bit_model()
    code = codec.encode_code(model, faces[1])
    with torch.no_grad():
        floats = model.bit_model.logits(torch.from_numpy(code).float()[None])[0].double()
    known = torch.from_numpy(code.astype(np.float64))
    integers = torch.cat([exact.group_logits(known, group) for group in range(exact.groups)]) / 2.0 ** ACTIVATION_BITS
    assert floats.abs().max() > 1.0
    assert (integers - floats).abs().max() < 1e-3


@pytest.mark.parametrize("name", (*LEARNED, LEARNED_LONG))
def test_real_files_are_within_3_percent_of_the_trained_estimate(name, faces) -> None:
    model = load_model(name)
    for face in faces:
        code = codec.encode_code(model, face)
        with torch.no_grad():
            estimate = float(model.bit_model.bits(torch.from_numpy(code).float()[None])) / 8
        header_bytes = len(codec.code_header("learned", *face.shape[:2], model).pack())
        payload = len(codec.compress(face, model)) - header_bytes
        assert abs(payload - estimate) <= 0.03 * estimate, (payload, estimate)
        assert abs(estimated_bits(model.integer_bit_model(), code) / 8 - estimate) <= 0.001 * estimate + 1


def test_damaged_and_truncated_files_are_refused(model, faces) -> None:
    data = codec.compress(faces[0], model)
    for broken in (data[:-1], data[:-20], data + b"\0", data[:-30] + bytes(b ^ 0x20 for b in data[-30:])):
        with pytest.raises(BitstreamError):
            codec.decompress(broken, model)


def test_a_code_that_fails_its_check_is_refused(model, faces) -> None:
    from facelab.learned_rate import decode_code, encode_code

    exact = model.integer_bit_model()
    code = codec.encode_code(model, faces[0])
    payload = bytearray(encode_code(exact, code))
    assert np.array_equal(decode_code(exact, bytes(payload), code.shape), code)
    with pytest.raises(BitstreamError, match="left over"):
        decode_code(exact, bytes(payload) + b"\x5a\xa5\x5a\xa5", code.shape)
    payload[0] ^= 0x01
    with pytest.raises(BitstreamError, match="check"):
        decode_code(exact, bytes(payload), code.shape)


def test_the_wrong_model_is_refused(model, faces) -> None:
    data = codec.compress(faces[0], model)
    with pytest.raises(ModelError, match="random-0"):
        codec.decompress(data, random_bit_model(1))
    with pytest.raises(ModelError, match="learned"):
        codec.decompress(data, load_model("face-a100"))


def test_a_face_decodes_in_well_under_half_a_second_on_one_thread(model, faces) -> None:
    data = codec.compress(faces[0], model)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        codec.decompress(data, model)
        start = time.perf_counter()
        codec.decompress(data, model)
        assert time.perf_counter() - start < 0.5
    finally:
        torch.set_num_threads(threads)


def test_another_process_without_onednn_decodes_the_same_code(model, faces, tmp_path: Path) -> None:
    checkpoint = save_checkpoint(model, tmp_path / "random-0.pt", "random-0")
    model = load_model(checkpoint)
    for index, face in enumerate(faces):
        (tmp_path / f"{index}.flr").write_bytes(codec.compress(face, model))
    result = subprocess.run([sys.executable, str(CROSS_BACKEND), str(checkpoint), str(tmp_path)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert '"mkldnn": false' in result.stdout and '"threads": 1' in result.stdout
    exact = model.integer_bit_model()
    for index, face in enumerate(faces):
        decoded = np.load(tmp_path / f"{index}.npz")
        code = codec.encode_code(model, face)
        assert np.array_equal(decoded["code"], code)
        assert np.array_equal(decoded["probabilities"], code_probabilities(exact, code)[1])


def test_the_probability_table_ships_with_the_weights(model) -> None:
    state = model.state_dict()
    assert state["bit_model.probability_table"].dtype == torch.int32
    table = IntegerBitModel(model.bit_model).table
    assert table.min() > 0 and table.max() < 1 and torch.all(table[1:] >= table[:-1])


def test_checkpoints_keep_only_the_live_context_weights_and_code_the_same(model, faces, tmp_path: Path) -> None:
    mask = model.bit_model.mask.bool()
    assert model.state_dict()["bit_model.context.weight"].shape == (int(mask.sum()),)
    path = save_checkpoint(model, tmp_path / "packed.pt", model.name)
    reloaded = load_model(path)
    assert torch.equal(reloaded.bit_model.context.weight * mask, model.bit_model.context.weight * mask)
    assert codec.compress(faces[0], reloaded, coder="learned") == codec.compress(faces[0], model, coder="learned")
    full = {**model.state_dict(), "bit_model.context.weight": model.bit_model.context.weight.detach().clone()}
    older = LearnedRateNet.from_paper_model(load_model("face-a100"))
    older.load_state_dict(full)
    assert torch.equal(older.bit_model.context.weight, model.bit_model.context.weight)
    assert max(p.stat().st_size for p in SHIPPED_DIR.glob("learned-*.pt")) < 2_000_000


def test_the_command_line_writes_and_reads_flr_files(tmp_path: Path, faces) -> None:
    from PIL import Image

    from facelab.cli import main

    Image.fromarray(faces[0]).save(tmp_path / "face.png")
    assert main(["compress", str(tmp_path / "face.png"), str(tmp_path), "--model", "learned-2"]) == 0
    written = tmp_path / "face.flr"
    assert read_header(written.read_bytes())[0].model_name == "learned-2"
    assert main(["decompress", str(written), str(tmp_path / "back.png")]) == 0
    model = load_model("learned-2")
    assert np.array_equal(load_image(tmp_path / "back.png"), codec.decompress(written.read_bytes(), model))


def test_training_prices_the_code_and_moves_the_bit_model(tmp_path: Path) -> None:
    from facelab.train import Trainer, build_data, build_loss, make_config, parameter_groups

    config = make_config("learned-2", b=0.0, epochs=1, steps_per_epoch=3, batch_size=4, max_images=16, val_images=4,
                         device="cpu", precision="fp32")
    trainer = Trainer(config, tmp_path / "run")
    assert isinstance(trainer.model, LearnedRateNet) and trainer.model.family == "learned-rate"
    groups = parameter_groups(trainer.model, config.lr)
    assert sum(p.numel() for p in groups[1]["params"]) == sum(p.numel() for p in trainer.model.bit_model.parameters())
    before = trainer.model.bit_model.out.weight.detach().clone()
    train_set, val_set, _ = build_data(config)
    record = trainer.fit(train_set, val_set, build_loss(config, trainer.device))[-1]
    assert 1.0 < record["bpp"] <= 2.0 + 1e-3, "a fresh bit model prices each bit at about one bit: 2 bpp"
    assert record["total"] == pytest.approx(record["bpp"] + config.lmbda * record["distortion"], rel=1e-3)
    assert not torch.equal(before, trainer.model.bit_model.out.weight)
