"""Losses: pixel, MS-SSIM (with its small-image window), feature, phase-1 and Eq. 2 totals."""

from __future__ import annotations

import pytest
import torch
from pytorch_msssim import ms_ssim

from facelab.errors import ImageError
from facelab.losses import CompressionLoss, FaceLoss, feature_loss, msssim_loss, pixel_loss


def noisy_pair(size: int = 64, noise: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth random image and a noisy copy, both in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(2, 3, size // 8, size // 8, generator=generator), size=size,
                                        mode="bilinear", align_corners=False)
    x_hat = (x + noise * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    return x_hat, x


def test_pixel_loss_values() -> None:
    x = torch.zeros(2, 3, 4, 4)
    x_hat = torch.full((2, 3, 4, 4), 0.5)
    x_hat[0] = -0.5
    assert pixel_loss(x_hat, x, "l1").item() == pytest.approx(0.5)
    assert pixel_loss(x_hat, x, "l2").item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="l1"):
        pixel_loss(x_hat, x, "huber")
    with pytest.raises(ImageError, match="one shape"):
        pixel_loss(x_hat, x[:, :, :3])


def test_msssim_loss_matches_pytorch_msssim_and_orders_noise() -> None:
    x_hat, x = noisy_pair(size=192)
    expected = 1 - ms_ssim(x_hat, x, data_range=1.0, win_size=11)
    assert msssim_loss(x_hat, x).item() == pytest.approx(expected.item(), abs=1e-6)
    assert msssim_loss(x, x).item() == pytest.approx(0.0, abs=1e-5)
    small_noise, small = noisy_pair(size=48, noise=0.02)
    big_noise, _ = noisy_pair(size=48, noise=0.2)
    assert 0 < msssim_loss(small_noise, small).item() < msssim_loss(big_noise, small).item() < 1
    with pytest.raises(ImageError, match="MS-SSIM"):
        msssim_loss(x[..., :32, :32], x[..., :32, :32])


def test_feature_loss_is_mean_squared_distance() -> None:
    emb = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    emb_hat = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert feature_loss(emb_hat, emb).item() == pytest.approx(1.0)  # (2 + 0) / 2
    with pytest.raises(ValueError):
        feature_loss(emb_hat, emb[:, :1])


def test_compression_loss_parts_add_up() -> None:
    x_hat, x = noisy_pair(size=64)
    parts = CompressionLoss()(x_hat, x)
    assert set(parts) == {"total", "l1", "msssim"}
    assert parts["l1"].item() == pytest.approx(pixel_loss(x_hat, x, "l1").item())
    assert parts["msssim"].item() == pytest.approx(msssim_loss(x_hat, x).item())
    assert parts["total"].item() == pytest.approx(parts["l1"].item() + parts["msssim"].item())


class BoxMeanEmbedder:
    """A stand-in embedder: the mean colour inside each box, so the feature loss is easy to compute by hand."""

    def __init__(self) -> None:
        self.calls = 0

    def embed_images(self, images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        rows = [image[:, int(b[1]):int(b[3]), int(b[0]):int(b[2])].mean(dim=(1, 2)) for image, b in zip(images, boxes)]
        return torch.stack(rows)


def test_face_loss_is_a_pixel_plus_b_feature() -> None:
    x = torch.zeros(2, 3, 8, 8)
    x_hat = x.clone()
    x_hat[:, :, 2:4, 2:4] = 1.0  # the whole box: its mean colour moves by 1 on each channel
    boxes = torch.tensor([[2.0, 2.0, 4.0, 4.0], [2.0, 2.0, 4.0, 4.0]])
    parts = FaceLoss(a=2.0, b=3.0, pixel="l2", embedder=BoxMeanEmbedder())(x_hat, x, boxes)
    assert parts["pixel"].item() == pytest.approx(4 / 64)
    assert parts["feature"].item() == pytest.approx(3.0)  # squared distance of (1, 1, 1)
    assert parts["total"].item() == pytest.approx(2.0 * 4 / 64 + 3.0 * 3.0)


def test_face_loss_with_b_zero_never_embeds() -> None:
    embedder = BoxMeanEmbedder()
    x_hat, x = noisy_pair(size=16)
    parts = FaceLoss(a=1.0, b=0.0, pixel="l1", embedder=embedder)(x_hat, x, None)
    assert embedder.calls == 0
    assert parts["feature"].item() == 0.0
    assert parts["total"].item() == pytest.approx(pixel_loss(x_hat, x, "l1").item())


def test_face_loss_rejects_missing_boxes() -> None:
    x_hat, x = noisy_pair(size=16)
    boxes = torch.tensor([[1.0, 1.0, 8.0, 8.0], [float("nan")] * 4])
    with pytest.raises(ImageError, match="without a face"):
        FaceLoss(embedder=BoxMeanEmbedder())(x_hat, x, boxes)
    with pytest.raises(ValueError, match="pixel loss"):
        FaceLoss(pixel="l3")
