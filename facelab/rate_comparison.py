"""The paper's architecture under three ways of storing its code: LZMA, the fixed context coder, a learned rate.

For lesson 06: each model's deterministic code of each face is written as real files under every coder that can
store it (a learned-rate model's code also under LZMA and the context coder, which store any binary code; the
reconstruction is the same whichever coder wrote the bits), and each file's bits per pixel is paired with the
reconstruction's PSNR and MS-SSIM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from facelab import codec
from facelab.bitstream import coders_for
from facelab.metrics import ms_ssim, psnr

BINARY_CODERS = coders_for("binary")
"""The coders that store any binary code, whatever model made it: the paper's model's (`bitstream.CODERS`)."""


@dataclass(frozen=True)
class RatePoint:
    """One model under one coder, averaged over faces: real bits per pixel and the reconstruction's quality."""

    model: str
    coder: str
    bpp: float
    psnr: float
    ms_ssim: float


def coders_of(model: torch.nn.Module) -> tuple[str, ...]:
    """The paper's two coders, then the model's own when it has one (a learned rate)."""
    own = codec.default_coder(model)
    return BINARY_CODERS if own in BINARY_CODERS else (*BINARY_CODERS, own)


def rate_points(models: Mapping[str, torch.nn.Module], faces: Sequence[np.ndarray]) -> list[RatePoint]:
    """Every model under each of its coders on `faces`: mean real bpp, PSNR and MS-SSIM."""
    points = []
    for label, model in models.items():
        sizes = {coder: [] for coder in coders_of(model)}
        scores = []
        for face in faces:
            code = codec.encode_code(model, face)
            reconstruction = codec.decode_code(model, code, face.shape[:2])
            scores.append((psnr(face, reconstruction), ms_ssim(face, reconstruction)))
            for coder in sizes:
                data = codec.write_code(code, *face.shape[:2], model, coder)
                sizes[coder].append(codec.bits_per_pixel(data, *face.shape[:2]))
        quality = np.mean(scores, axis=0)
        points += [RatePoint(label, coder, float(np.mean(bpp)), float(quality[0]), float(quality[1]))
                   for coder, bpp in sizes.items()]
    return points
