"""The trainer: it lowers the loss, checkpoints every epoch, and resumes to the same weights."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch

from facelab.balance import gradient_scales
from facelab.cli import build_parser, main
from facelab.model import FaceCodecNet
from facelab.recipes import RECIPES
from facelab.train import ResumeError, Trainer, cosine_factor, make_config, train
from facelab.train_command import config_from_args
from facelab.weights import SHIPPED, load_model, read_checkpoint, resolve, save_checkpoint
from synthetic import SmoothImages


def Patches(count: int, seed: int) -> SmoothImages:
    """Smooth random 32x32 images: learnable by the tiny model in a few steps."""
    return SmoothImages(count, seed, (32, 32))


class L1(torch.nn.Module):
    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = (x_hat - x).abs().mean()
        return {"total": loss, "l1": loss}


class Interrupt(Exception):
    pass


def config(epochs: int):
    return make_config("natural", epochs=epochs, batch_size=8, lr=3e-3, device="cpu", seed=3)


def test_training_lowers_the_loss_and_writes_history(tmp_path: Path) -> None:
    trainer = Trainer(config(6), tmp_path)
    history = trainer.fit(Patches(64, 0), Patches(16, 1), L1())
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5, 6]
    assert history[-1]["val_total"] < 0.85 * history[0]["val_total"]
    assert history[-1]["val_psnr"] > history[0]["val_psnr"]
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "history.json").is_file()


def test_resume_after_interruption_gives_the_same_weights(tmp_path: Path) -> None:
    straight = Trainer(config(2), tmp_path / "straight")
    straight.fit(Patches(32, 0), Patches(8, 1), L1())

    def stop(record: dict) -> None:
        raise Interrupt

    first = Trainer(config(2), tmp_path / "resumed")
    with pytest.raises(Interrupt):
        first.fit(Patches(32, 0), Patches(8, 1), L1(), on_epoch=stop)
    resumed = Trainer(config(2), tmp_path / "resumed")
    assert resumed.try_resume() and resumed.epoch == 1
    resumed.fit(Patches(32, 0), Patches(8, 1), L1())
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_resume_refuses_another_configuration(tmp_path: Path) -> None:
    Trainer(config(1), tmp_path).fit(Patches(16, 0), Patches(8, 1), L1())
    other = Trainer(make_config("natural", epochs=1, batch_size=4, device="cpu"), tmp_path)
    with pytest.raises(ResumeError, match=f"{tmp_path / 'last.pt'} was made with another configuration; delete"):
        other.try_resume()


class Payload:
    """A pickle that runs code when loaded without weights_only: it creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resume_never_runs_code_from_a_run_folder(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    torch.save({"config": Payload(marker)}, tmp_path / "last.pt")
    with pytest.raises(ResumeError, match="last.pt cannot be resumed .last.pt.sha256 is missing"):
        Trainer(config(1), tmp_path).try_resume()
    (tmp_path / "last.pt.sha256").write_text(hashlib.sha256((tmp_path / "last.pt").read_bytes()).hexdigest())
    with pytest.raises(ResumeError, match="last.pt cannot be resumed .UnpicklingError"):
        Trainer(config(1), tmp_path).try_resume()
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_resume_names_a_damaged_state_file(tmp_path: Path, damage: str) -> None:
    Trainer(config(1), tmp_path).fit(Patches(16, 0), Patches(8, 1), L1())
    data = bytearray((tmp_path / "last.pt").read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3: len(data) // 3 + 64] = bytes(64)
    (tmp_path / "last.pt").write_bytes(bytes(data))
    with pytest.raises(ResumeError, match=f"{tmp_path / 'last.pt'} cannot be resumed .its checksum does not match"):
        Trainer(config(1), tmp_path).try_resume()


def test_cosine_schedule_decays_to_zero_over_the_run(tmp_path: Path) -> None:
    assert cosine_factor(0, 10) == pytest.approx(1.0, abs=1e-12) and cosine_factor(5, 10) == pytest.approx(0.5)
    assert cosine_factor(10, 10) == pytest.approx(0.0, abs=1e-12)
    trainer = Trainer(make_config("natural", epochs=2, steps_per_epoch=3, batch_size=8, schedule="cosine",
                                  device="cpu"), tmp_path)
    history = trainer.fit(Patches(32, 0), Patches(8, 1), L1())
    assert history[0]["lr"] == pytest.approx(1e-3 * cosine_factor(3, 6)) and history[1]["lr"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="needs steps_per_epoch"):
        Trainer(make_config("natural", schedule="cosine", device="cpu"), tmp_path / "x")


def test_bf16_autocast_trains_and_keeps_the_code_binary(tmp_path: Path) -> None:
    trainer = Trainer(make_config("natural", epochs=3, batch_size=8, lr=3e-3, precision="bf16", device="cpu",
                                  seed=3), tmp_path)
    history = trainer.fit(Patches(64, 0), Patches(16, 1), L1())
    assert history[-1]["val_total"] < 0.9 * history[0]["val_total"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        code = trainer.model.train().encode(Patches(2, 2).images)
    assert code.dtype == torch.float32 and set(code.unique().tolist()) == {-1.0, 1.0}


def test_shipped_checkpoints_record_their_recipe() -> None:
    for name in SHIPPED:
        recorded = read_checkpoint(resolve(name))["config"]
        differing = {key: (recorded[key], value) for key, value in RECIPES[name].items()
                     if key in recorded and recorded[key] != value}
        assert not differing, f"{name}: recorded vs recipe {differing}"
    assert read_checkpoint(resolve("natural"))["config"]["lr"] == RECIPES["natural"]["lr"] == 1e-3


def test_paper_hyper_parameters() -> None:
    face = make_config("face")
    assert (face.lr, face.weight_decay, face.beta1, face.a, face.b, face.init) == (3e-3, 1e-3, 0.99, 1.0, 1.0, "face-base")
    assert face.schedule == "constant" and face.optimizer == "adam"
    assert [make_config(name).a for name in ("face-a1", "face-a10", "face-a100", "face-a1000")] == [1, 10, 100, 1000]
    assert make_config("face-pixel").b == 0.0
    for name in ("face-adamw", "face-pixel-adamw"):
        twin = make_config(name)
        assert twin.optimizer == "adamw" and (twin.lr, twin.weight_decay, twin.beta1) == (3e-3, 1e-3, 0.99)
    assert make_config("face").optimizer == "adam"


def gradient_norm(model: torch.nn.Module) -> float:
    """The norm of every parameter's gradient taken together."""
    norms = [p.grad.norm() for p in model.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms)))


def test_clip_norm_limits_the_gradient_of_each_step(tmp_path: Path) -> None:
    clipped = Trainer(make_config("face-pixel", device="cpu", clip_norm=0.5), tmp_path / "clipped")
    free = Trainer(make_config("face-pixel", device="cpu"), tmp_path / "free")
    for trainer in (clipped, free):
        assert trainer.update(1000 * trainer.model(torch.rand(2, 3, 32, 32)).mean())
    assert gradient_norm(clipped.model) == pytest.approx(0.5, rel=1e-4) and gradient_norm(free.model) > 0.5


def test_adam_and_adamw_differ_only_in_how_they_decay(tmp_path: Path) -> None:
    coupled = Trainer(make_config("face-pixel", device="cpu"), tmp_path / "adam").optimizer
    decoupled = Trainer(make_config("face-pixel-adamw", device="cpu"), tmp_path / "adamw").optimizer
    assert type(coupled) is torch.optim.Adam and type(decoupled) is torch.optim.AdamW
    assert coupled.defaults["weight_decay"] == decoupled.defaults["weight_decay"] == 1e-3
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        Trainer(make_config("natural", optimizer="sgd", device="cpu"), tmp_path / "sgd")
    assert make_config("natural").lr == 1e-3


def test_checkpoint_records_how_it_was_made(tmp_path: Path) -> None:
    trainer = Trainer(config(1), tmp_path)
    trainer.fit(Patches(16, 0), Patches(8, 1), L1())
    path = save_checkpoint(trainer.model, tmp_path / "m.pt", "natural", config={"epochs": 1}, history=trainer.history)
    loaded = load_model(path)
    assert loaded.name == "natural" and loaded.checkpoint["history"][0]["epoch"] == 1
    assert not loaded.training


def test_train_writes_a_checkpoint_that_loads_safely(tmp_path: Path, data_root: Path) -> None:
    config = make_config("natural", epochs=1, steps_per_epoch=1, batch_size=2, crop=64, max_images=2,
                         device="cpu", data_root=str(data_root))
    path = train(config, tmp_path / "run")
    loaded = load_model(path)
    info = loaded.checkpoint
    assert info["data"]["train"]["images"] == 2 and info["data"]["val"]["images"] == 2
    assert isinstance(info["torch_version"], str) and info["config"]["epochs"] == 1 and len(info["history"]) == 1


def test_gradient_scales_compare_each_loss_part_with_the_decay_term() -> None:
    model = FaceCodecNet()
    batch = Patches(4, 0).images
    scales = gradient_scales(model, L1(), batch, torch.device("cpu"), weight_decay=1e-3)
    assert set(scales) == {"l1", "weight decay"} and scales["l1"] > 0
    mean_weight = float(torch.cat([p.detach().abs().flatten() for p in model.parameters()]).mean())
    assert scales["weight decay"] == pytest.approx(1e-3 * mean_weight)
    assert all(p.grad is None for p in model.parameters()) and model.training
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gradient_scales(model, L1(), batch, torch.device("cpu"), weight_decay=1e-3)
    assert not model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


class NaNOnFirstBatch(L1):
    """L1, except that the very first batch's loss is NaN (an overflow)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        parts = super().forward(x_hat, x)
        if self.calls == 1:
            parts = {key: value * float("nan") for key, value in parts.items()}
        return parts


def test_a_non_finite_loss_skips_its_step_instead_of_poisoning_the_weights(tmp_path: Path) -> None:
    trainer = Trainer(config(2), tmp_path)
    history = trainer.fit(Patches(32, 0), Patches(8, 1), NaNOnFirstBatch())
    assert history[0]["skipped_steps"] == 1 and "skipped_steps" not in history[1]
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert all(torch.isfinite(torch.tensor(r["total"])) and math.isfinite(r["val_total"]) for r in history)


def test_train_command_sets_the_loss_weights_and_names_the_run(tmp_path: Path, data_root: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser("train").parse_args(["train", "hp-0", "--b", "4", "--lmbda", "0.1", "--name", "hp-0-b4"])
    config = config_from_args(args)
    assert (config.b, config.lmbda, config.a, config.name) == (4.0, 0.1, 100.0, "hp-0-b4")  # a: the recipe's
    assert config_from_args(build_parser("train").parse_args(["train", "hp-0"])).name == "hp-0"
    monkeypatch.chdir(tmp_path)
    assert main(["train", "natural", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--crop", "64",
                 "--max-images", "2", "--device", "cpu", "--data-root", str(data_root), "--name", "mine"]) == 0
    assert load_model(tmp_path / "runs" / "mine" / "mine.pt").checkpoint["config"]["name"] == "mine"
