"""facelab.metrics: PSNR, MS-SSIM, bpp, compression ratio, cosine similarity and the Average/Max/Min summary."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facelab.errors import FacelabError, ImageError
from facelab.metrics import compression_ratio, cosine_similarity, ms_ssim, ms_ssim_many, ms_ssim_window, psnr, summary
from facelab.rate import bpp


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient with mild texture, in 20..235 so small offsets never clip."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 200 / width, y * 200 / height, (x + y) * 100 / (width + height)], axis=2) + 20
    return np.clip(base + rng.normal(0, 8, base.shape), 20, 235).round().astype(np.uint8)


def test_psnr_of_a_constant_offset_is_exact():
    image = textured(40, 60)
    assert psnr(image, image + 5) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-12)  # 34.15 dB


def test_psnr_of_unit_noise_and_gaussian_noise():
    image = textured(120, 130)
    rng = np.random.default_rng(1)
    signs = rng.choice([-1, 1], size=image.shape)
    assert psnr(image, (image + signs).astype(np.uint8)) == pytest.approx(48.1308, abs=1e-4)
    noisy = np.clip(image + rng.normal(0, 10, image.shape).round(), 0, 255).astype(np.uint8)
    assert psnr(image, noisy) == pytest.approx(20 * math.log10(255 / 10), abs=0.1)  # 28.13 dB


def test_psnr_of_identical_images_is_infinite_and_shapes_must_match():
    image = textured(20, 20)
    assert psnr(image, image.copy()) == math.inf
    with pytest.raises(ImageError, match="differ in shape"):
        psnr(image, textured(20, 21))
    with pytest.raises(ImageError, match="uint8"):
        psnr(image.astype(np.float32), image)


def test_ms_ssim_is_one_for_identical_images_and_falls_with_noise():
    image = textured(250, 250)
    assert ms_ssim(image, image.copy()) == pytest.approx(1.0, abs=1e-6)
    rng = np.random.default_rng(2)
    scores = [
        ms_ssim(image, np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8))
        for sigma in (2, 10, 40)
    ]
    assert 1.0 > scores[0] > scores[1] > scores[2] > 0.3


@pytest.mark.parametrize(("side", "window"), [(250, 11), (161, 11), (160, 9), (129, 9), (128, 7), (64, 3), (33, 3)])
def test_ms_ssim_window_fits_pytorch_msssims_four_halvings(side: int, window: int) -> None:
    assert ms_ssim_window(side, side + 50) == window
    assert side > 16 * (window - 1)


def test_ms_ssim_window_shrinks_for_small_images_and_refuses_tiny_ones():
    assert ms_ssim_window(250, 250) == 11
    assert ms_ssim_window(161, 400) == 11
    assert ms_ssim_window(160, 400) == 9
    assert ms_ssim_window(100, 100) == 7
    assert ms_ssim_window(33, 33) == 3
    with pytest.raises(ImageError, match="33x33"):
        ms_ssim_window(32, 500)
    small = textured(48, 64)
    assert ms_ssim(small, small.copy()) == pytest.approx(1.0, abs=1e-6)
    assert ms_ssim(small, textured(48, 64, seed=5)) < 0.99


def test_bpp_and_compression_ratio():
    assert bpp(5945, 250, 250) == pytest.approx(0.76096)
    assert bpp(3 * 250 * 250, 250, 250) == pytest.approx(24.0, rel=1e-12)  # only float rounding may differ
    assert compression_ratio(2_500, 187_500) == pytest.approx(75.0, rel=1e-12)
    with pytest.raises(ImageError):
        bpp(10, 0, 5)
    with pytest.raises(FacelabError):
        compression_ratio(0, 100)


def test_cosine_similarity_is_rowwise():
    e1 = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [3.0, 4.0]])
    e2 = np.array([[2.0, 0.0], [0.0, 5.0], [-1.0, -1.0], [1.0, 0.0], [4.0, 3.0]])
    np.testing.assert_allclose(cosine_similarity(e1, e2), [1.0, 0.0, -1.0, 0.0, 24 / 25], atol=1e-12)
    np.testing.assert_allclose(cosine_similarity(torch.tensor(e1), torch.tensor(e2)), cosine_similarity(e1, e2))
    with pytest.raises(FacelabError, match="differ in shape"):
        cosine_similarity(e1, e2[:3])


def test_summary_gives_the_papers_rows():
    assert summary([0.761, 0.864, 0.507]) == {"mean": pytest.approx(0.7106667), "max": 0.864, "min": 0.507}
    assert summary([30.0, math.inf])["mean"] == math.inf
    with pytest.raises(FacelabError):
        summary([])


def test_ms_ssim_many_matches_one_call_per_pair_across_sizes():
    rng = np.random.default_rng(3)
    shapes = [(112, 96, 3), (64, 80, 3), (112, 96, 3), (112, 96, 3)]
    originals = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in shapes]
    noisy = [np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8) for a in originals]
    many = ms_ssim_many(originals, noisy, batch=2)
    assert many == pytest.approx([ms_ssim(a, b) for a, b in zip(originals, noisy)], abs=1e-6)
    assert ms_ssim_many(originals[:1], originals[:1])[0] == pytest.approx(1.0)
    with pytest.raises(ImageError, match="2 reconstructions"):
        ms_ssim_many(originals, noisy[:2])
