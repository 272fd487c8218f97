"""Lesson 07's codec: the scale hyperprior trains through the same trainer, writes real .flh files that decode to
what its forward pass predicts, and keeps the codec's bad-input guarantees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facelab import codec
from facelab.bitstream import CODERS, unpack_header
from facelab.cli import main
from facelab.errors import BitstreamError, ModelError
from facelab.hyperprior import HyperpriorNet, latent_shape
from facelab.image_io import to_tensor, to_uint8
from facelab.losses import RateDistortionLoss
from facelab.recipes import HP_LAMBDAS, HYPERPRIOR, HYPERPRIOR_PIXEL, make_config
from facelab.train import Trainer
from facelab.weights import load_model, model_id, read_checkpoint, save_checkpoint, weights_hash
from synthetic import SmoothImages


def picture(height: int, width: int) -> np.ndarray:
    """A smooth height x width RGB image with some texture, deterministic."""
    y, x = np.mgrid[0:height, 0:width]
    texture = 20 * np.sin(x / 3.0) * np.cos(y / 5.0)
    return np.stack([x * 2 + texture, y * 2 + 40, (x + y) + texture], axis=2).clip(0, 255).astype(np.uint8)


def small_model(seed: int = 0) -> HyperpriorNet:
    """A narrow hyperprior with its coding tables built, as a shipped one has them."""
    torch.manual_seed(seed)
    model = HyperpriorNet((16, 24))
    model.name = "hp-test"
    model.round_to_half()
    return model.eval()


def Faces(count: int, seed: int) -> SmoothImages:
    """Smooth random 48x40 images."""
    return SmoothImages(count, seed, (48, 40))


class MSE(torch.nn.Module):
    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = (x_hat - x).pow(2).mean()
        return {"total": 100 * loss, "pixel": loss}


@pytest.mark.parametrize("size", [(37, 53), (112, 96), (16, 16)])
def test_file_decodes_to_the_forward_pass_at_any_size(size) -> None:
    model = small_model()
    image = picture(*size)
    data = codec.compress(image, model)
    header, _ = unpack_header(data)
    assert header.coder == "hyperprior" and (header.code_h, header.code_w) == latent_shape(*size)
    decoded = codec.decompress(data, model)
    with torch.no_grad():
        predicted = to_uint8(model(to_tensor(image)).x_hat)
    assert decoded.shape == image.shape
    assert np.abs(decoded.astype(int) - predicted.astype(int)).max() <= 1


def test_estimated_rate_is_close_to_the_file() -> None:
    model = small_model()
    image = picture(128, 128)
    with torch.no_grad():
        estimate = float(model(to_tensor(image)).bpp)
    data = codec.compress(image, model)
    header_bits = 8 * (len(unpack_header(data)[0].pack()) + 8)
    real = codec.bits_per_pixel(data, *image.shape[:2]) - header_bits / image[..., 0].size
    assert real == pytest.approx(estimate, rel=0.1, abs=0.02)


def test_damaged_truncated_or_foreign_files_are_refused() -> None:
    model = small_model()
    data = codec.compress(picture(64, 64), model)
    damaged = bytearray(data)
    damaged[-6] ^= 0x40
    with pytest.raises(BitstreamError, match="checksum"):
        codec.decompress(bytes(damaged), model)
    for cut in (1, 5, len(data) - 60):
        with pytest.raises(BitstreamError):
            codec.decompress(data[:-cut], model)
    with pytest.raises(ModelError, match="not the loaded"):
        codec.decompress(data, small_model(seed=1))
    with pytest.raises(ModelError, match="hyperprior model"):
        codec.compress(picture(64, 64), model, coder="xz")
    with pytest.raises(ModelError, match="binary model"):
        codec.decompress(data, load_model("untrained"))


def test_half_precision_checkpoint_loads_the_same_model(tmp_path: Path) -> None:
    model = small_model()
    path = save_checkpoint(model, tmp_path / "hp.pt", "hp-test", config={})
    loaded = load_model(path)
    assert isinstance(loaded, HyperpriorNet) and loaded.channels == (16, 24)
    assert weights_hash(loaded) == weights_hash(model) and model_id(loaded) == model_id(model)
    stored = read_checkpoint(path)["state_dict"]
    parameters = dict(model.named_parameters())
    assert all(stored[name].dtype == torch.float16 for name in parameters)
    assert stored["entropy_bottleneck._quantized_cdf"].dtype == torch.int32, "the coder's tables stay exact"


def test_trainer_lowers_rate_plus_distortion_and_reports_both(tmp_path: Path) -> None:
    config = make_config("hp-natural", channels=(16, 24), epochs=4, batch_size=8, lr=3e-3, steps_per_epoch=8,
                         device="cpu", seed=3, precision="fp32")
    trainer = Trainer(config, tmp_path)
    loss = RateDistortionLoss(MSE(), lmbda=config.lmbda)
    history = trainer.fit(Faces(64, 0), Faces(16, 1), loss)
    first, last = history[0], history[-1]
    assert {"val_bpp", "val_aux", "val_distortion", "val_psnr"} <= set(last)
    assert last["val_bpp"] + config.lmbda * last["val_distortion"] < 0.8 * (
        first["val_bpp"] + config.lmbda * first["val_distortion"])


def test_the_rate_weight_trades_bits_for_quality(tmp_path: Path) -> None:
    results = {}
    for lmbda in (0.5, 50.0):
        config = make_config("hp-natural", channels=(16, 24), epochs=3, batch_size=8, lr=3e-3, steps_per_epoch=10,
                             device="cpu", seed=3, precision="fp32", lmbda=lmbda)
        history = Trainer(config, tmp_path / str(lmbda)).fit(Faces(64, 0), Faces(16, 1), RateDistortionLoss(MSE(), lmbda))
        results[lmbda] = history[-1]
    assert results[0.5]["val_bpp"] < results[50.0]["val_bpp"]
    assert results[0.5]["val_psnr"] < results[50.0]["val_psnr"]


def test_recipes_give_every_rate_with_and_without_the_face_loss() -> None:
    assert len(HYPERPRIOR) == len(HYPERPRIOR_PIXEL) == len(HP_LAMBDAS) >= 5
    for with_face, without in zip(HYPERPRIOR, HYPERPRIOR_PIXEL):
        a, b = make_config(with_face), make_config(without)
        assert a.family == b.family == "hyperprior" and a.lmbda == b.lmbda and a.b == 1.0 and b.b == 0.0
        assert (a.epochs, a.steps_per_epoch, a.init, a.a) == (b.epochs, b.steps_per_epoch, b.init, b.a)
    assert sorted(HP_LAMBDAS.values()) == list(HP_LAMBDAS.values())
    with pytest.raises(ValueError, match="lmbda must be positive"):
        RateDistortionLoss(MSE(), 0.0)


def test_the_coder_registry_is_the_one_list() -> None:
    assert [c.id for c in CODERS.values()] == list(range(len(CODERS)))
    assert codec.SUFFIXES == {name: coder.suffix for name, coder in CODERS.items()}
    assert codec.default_coder(small_model()) == "hyperprior" and codec.default_coder(load_model("untrained")) == "xz"


def test_cli_round_trip_and_coder_errors(tmp_path: Path, capsys) -> None:
    from facelab.image_io import save_image

    face_png = tmp_path / "face.png"
    save_image(picture(60, 50), face_png)
    checkpoint = save_checkpoint(small_model(), tmp_path / "hp.pt", "hp-test", config={})
    out = tmp_path / "face.flh"
    assert main(["compress", str(face_png), str(out), "--model", str(checkpoint)]) == 0
    assert out.is_file() and main(["info", str(out)]) == 0
    assert "hyperprior" in capsys.readouterr().out
    assert main(["decompress", str(out), str(tmp_path / "back.png"), "--model", str(checkpoint)]) == 0
    assert (tmp_path / "back.png").is_file()
    assert main(["compress", str(face_png), str(tmp_path / "x.xz"), "--model", str(checkpoint), "--coder", "xz"]) == 1
    assert "codes with hyperprior, not xz" in capsys.readouterr().err
    assert not (tmp_path / "x.xz").exists()


def test_forged_payloads_with_a_valid_checksum_decode_or_are_refused() -> None:
    """A forger can recompute the CRC: the range decoder must then give an image or a clear error, never crash."""
    import random

    from facelab.container import seal
    from facelab.errors import FacelabError

    model = small_model()
    data = codec.compress(picture(112, 96), model)
    payload = unpack_header(data)[1]
    head, body = data[: len(data) - len(payload)], payload[:-4]
    rng = random.Random(7)
    outcomes = {"decoded": 0, "refused": 0}
    for _ in range(120):
        forged = bytearray(rng.randbytes(rng.randrange(0, 300)) if rng.random() < 0.3 else body)
        for _ in range(rng.randrange(0, 12)):
            if forged:
                forged[rng.randrange(len(forged))] = rng.randrange(256)
        forged = forged[: rng.randrange(len(forged) + 1)] if rng.random() < 0.3 else forged
        try:
            image = codec.decompress(seal(head + bytes(forged)), model)
            assert image.shape == (112, 96, 3)
            outcomes["decoded"] += 1
        except FacelabError:
            outcomes["refused"] += 1
    assert outcomes["decoded"] > 0 and outcomes["refused"] > 0


def test_shipped_rates_order_their_files_and_decode_by_name() -> None:
    image = picture(112, 96)
    sizes = {}
    for name in HYPERPRIOR:
        data = codec.compress(image, load_model(name))
        assert unpack_header(data)[0].model_name == name
        decoded = codec.decompress(data)  # the shipped model the header names
        assert decoded.shape == image.shape
        sizes[name] = len(data)
    assert list(sizes.values()) == sorted(sizes.values()), f"higher rates must write more: {sizes}"
    assert load_model(HYPERPRIOR_PIXEL[0]).checkpoint["config"]["b"] == 0.0


def test_latent_gain_refines_the_rounding_and_nothing_else() -> None:
    """scale_latents(g) is the same transform pair with latents g times larger and scales to match: the rate moves,
    the unquantised reconstruction does not."""
    model = load_model("hp-2")
    image = SmoothImages(1, 0, (32, 48)).images
    with torch.no_grad():
        before_y, before_x = model.g_a(image), model.g_s(model.g_a(image))
        before_scales = model.h_s(model.h_a(before_y.abs()))
        model.scale_latents(2.0)
        after_y = model.g_a(image)
        assert torch.allclose(after_y, 2 * before_y, atol=1e-5)
        assert torch.allclose(model.g_s(after_y), before_x, atol=1e-4)
        assert torch.allclose(model.h_s(model.h_a(after_y.abs())), 2 * before_scales, atol=1e-4)
    finer = codec.compress(to_uint8(image), model)
    assert len(finer) > len(codec.compress(to_uint8(image), load_model("hp-2")))
    with pytest.raises(ValueError, match="positive"):
        model.scale_latents(0.0)


def test_ladder_rungs_start_from_their_neighbour_with_a_gain() -> None:
    from facelab.recipes import LADDER, LADDER_GAIN, LADDER_LAMBDAS, LADDER_PIXEL

    assert len(LADDER) == len(LADDER_PIXEL) == len(LADDER_LAMBDAS) >= 6
    assert sorted(LADDER_LAMBDAS.values()) == list(LADDER_LAMBDAS.values())
    for rung, name in enumerate(LADDER, start=1):
        config, pixel = make_config(name), make_config(LADDER_PIXEL[rung - 1])
        assert (pixel.b, config.lmbda, config.latent_gain) == (0.0, LADDER_LAMBDAS[rung], LADDER_GAIN[rung])
        assert (config.epochs, config.steps_per_epoch) == (pixel.epochs, pixel.steps_per_epoch)
        assert config.init in ("hp-long", *LADDER) and pixel.init in ("hp-long", *LADDER_PIXEL)


def test_the_face_weight_falls_above_rung_5_as_one_over_sqrt_lmbda() -> None:
    from facelab.recipes import LADDER, LADDER_LAMBDAS

    weights = [make_config(name).b for name in LADDER]
    assert weights[:5] == [1.0] * 5
    assert weights[5:] == pytest.approx([(10.0 / LADDER_LAMBDAS[rung]) ** 0.5 for rung in range(6, len(LADDER) + 1)])
    assert all(later < earlier for earlier, later in zip(weights[4:], weights[5:]))


def test_training_starts_with_a_likelihood_floor(tmp_path: Path) -> None:
    """A latent far in its Gaussian's tail costs at most 30 bits in training, never infinitely many."""
    from facelab.train import build_model

    model = build_model(make_config("ladder-7", device="cpu"))
    assert model.gaussian_conditional.likelihood_lower_bound.bound.item() == pytest.approx(1e-9)
    y = torch.zeros(1, model.M, 2, 2)
    y[0, 0, 0, 0] = 1e4
    _, likelihoods = model.gaussian_conditional(y, torch.full_like(y, 0.11), training=False)
    assert torch.isfinite(torch.log2(likelihoods)).all()
