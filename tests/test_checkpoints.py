"""Checkpoints record the SHA-256 of their tensors, and a damaged one is refused with its name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facelab.cli import main
from facelab.errors import ModelError
from facelab.weights import load_model, read_checkpoint, save_checkpoint, state_sha256, weights_hash


def damage_a_tensor(path: Path, tensor: torch.Tensor) -> None:
    """Overwrite the first value of `tensor`'s bytes inside the saved file with 2e36, as a flipped exponent bit would."""
    data = bytearray(path.read_bytes())
    raw = tensor.detach().cpu().contiguous().numpy().tobytes()
    at = data.find(raw)
    assert at > 0 and data.find(raw, at + 1) == -1
    data[at:at + 4] = np.float32(2e36).tobytes()
    path.write_bytes(bytes(data))


def fresh_hash(model: torch.nn.Module) -> str:
    """The weights hash computed from scratch, ignoring the copy kept on the model."""
    vars(model).pop("_weights_hash", None)
    return weights_hash(model)


def test_the_kept_weights_hash_follows_every_change_of_the_weights() -> None:
    model = load_model("untrained")
    first = weights_hash(model)
    assert weights_hash(model) == first == fresh_hash(model)
    model.train()
    model(torch.rand(2, 3, 32, 32))  # BatchNorm's running statistics move
    after_forward = weights_hash(model)
    assert after_forward != first and after_forward == fresh_hash(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.rand(2, 3, 32, 32)).mean().backward()
    optimizer.step()
    after_step = weights_hash(model)
    assert after_step not in (first, after_forward) and after_step == fresh_hash(model)
    model.load_state_dict(load_model("untrained").state_dict())
    assert weights_hash(model) == first


def test_saved_checkpoints_carry_their_hash_and_load(tmp_path: Path) -> None:
    model = load_model("untrained")
    path = save_checkpoint(model, tmp_path / "mine.pt", "mine")
    assert read_checkpoint(path)["sha256"] == state_sha256(model.state_dict())
    assert load_model(path).name == "mine"


def test_damaged_checkpoint_is_refused_naming_the_file(tmp_path: Path, smooth_image, capsys) -> None:
    model = load_model("untrained")
    path = save_checkpoint(model, tmp_path / "mine.pt", "mine")
    damage_a_tensor(path, model.decoder.layers[1].bias)
    with pytest.raises(ModelError, match=f"{path} is damaged.*SHA-256"):
        load_model(path)
    from PIL import Image

    Image.fromarray(smooth_image).save(tmp_path / "face.png")
    assert main(["compress", str(tmp_path / "face.png"), str(tmp_path / "face.xz"), "--model", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "mine.pt is damaged" in err


def test_checkpoints_without_a_recorded_hash_still_load(tmp_path: Path) -> None:
    model = load_model("untrained")
    payload = {"format": "facelab-checkpoint", "version": 1, "name": "older", "bits": 128,
               "state_dict": model.state_dict()}
    torch.save(payload, tmp_path / "older.pt")
    assert load_model(tmp_path / "older.pt").name == "older"
