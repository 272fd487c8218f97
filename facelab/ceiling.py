"""Where a learned codec's quality stops (lesson 07): the PSNR its transforms reach when nothing is rounded.

A scale hyperprior's file holds rounded latents, and more bits make the rounding finer. Decoding g_a's latents
unrounded (`HyperpriorNet.unrounded`) shows what g_s makes of unlimited bits: no rate decodes better than that.
A rung whose real PSNR sits at this ceiling cannot be lifted by a larger λ or a better entropy model, only by
transforms that represent the face better (wider, or trained longer). Classic codecs on the same faces at their
usual qualities put the ceiling beside what a file of that size can be.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from facelab import baselines, codec
from facelab.data.celeba import face_training_problem
from facelab.data.lfw_aligned import lfw_faces
from facelab.data.template_faces import validation_sample
from facelab.image_io import to_tensor, to_uint8
from facelab.metrics import psnr
from facelab.rate import bpp
from facelab.widgets import Drawing


@dataclass(frozen=True)
class CeilingPoint:
    """One model over a set of faces: its real files' mean bpp and PSNR, and the mean PSNR of its unrounded latents."""

    model: str
    bpp: float
    psnr: float
    ceiling: float

    @property
    def headroom(self) -> float:
        """dB between the files and the ceiling: what finer rounding could still win."""
        return self.ceiling - self.psnr


def ceiling_faces(count: int, root: str | os.PathLike | None = None) -> tuple[list[np.ndarray], str]:
    """`count` faces to measure ceilings on and their set's name: the CelebA validation people (sharper than LFW's,
    never trained on), or where CelebA is missing, aligned LFW faces spread over the people (lesson 04's fallback)."""
    if face_training_problem(root) is None:
        return validation_sample(count, root), "CelebA validation faces"
    return [to_uint8(item["image"]) for item in lfw_faces(root, count)], "LFW faces (no CelebA here)"


@torch.no_grad()
def transform_ceiling(models: Mapping[str, torch.nn.Module], faces: Sequence[np.ndarray]) -> list[CeilingPoint]:
    """Each hyperprior's real `.flh` files of `faces` (bpp, PSNR of the decoded file) and its ceiling on them."""
    points = []
    for name, model in tqdm(models.items(), desc="ceiling", leave=False):
        device = next(model.parameters()).device
        rates, coded, unrounded = [], [], []
        for face in faces:
            data = codec.compress(face, model)
            rates.append(bpp(len(data), *face.shape[:2]))
            coded.append(psnr(face, codec.decompress(data, model)))
            unrounded.append(psnr(face, to_uint8(model.unrounded(to_tensor(face).to(device)))))
        points.append(CeilingPoint(name, float(np.mean(rates)), float(np.mean(coded)), float(np.mean(unrounded))))
    return points


def classic_curve(faces: Sequence[np.ndarray], codec_name: str,
                  qualities: Sequence[float]) -> list[tuple[float, float]]:
    """(mean bpp, mean PSNR) of a classic codec (`facelab.baselines`, at its best setting) at each quality."""
    curve = []
    for quality in qualities:
        coded = [baselines.at_quality(face, codec_name, quality) for face in faces]
        quality_db = [psnr(face, baselines.decode(item.data, codec_name)) for face, item in zip(faces, coded)]
        curve.append((float(np.mean([item.bpp for item in coded])), float(np.mean(quality_db))))
    return sorted(curve)


def plot_ceiling(ladders: Mapping[str, Sequence[CeilingPoint]], classic: Mapping[str, Sequence[tuple[float, float]]],
                 title: str) -> Drawing:
    """PSNR against bpp: each ladder's files (solid) and its ceiling (dashed, at the same bpp), and the classic
    curves (grey); values are the headroom in dB of each ladder's highest-rate rung."""
    figure, ax = plt.subplots(figsize=(7, 4.5))
    values = {}
    for (label, unordered), colour in zip(ladders.items(), ("tab:red", "tab:blue", "tab:green")):
        points = sorted(unordered, key=lambda point: point.bpp)
        rates = [p.bpp for p in points]
        ax.plot(rates, [p.psnr for p in points], "o-", color=colour, label=f"{label}: files")
        ax.plot(rates, [p.ceiling for p in points], "s--", color=colour, alpha=0.6, label=f"{label}: unrounded latents")
        values[label] = round(points[-1].headroom, 2)
    for (name, curve), marker in zip(classic.items(), "v^<>dp"):
        ax.plot(*zip(*curve), marker=marker, color="0.45", linewidth=1, label=name)
    ax.set(xscale="log", xlabel="bits per pixel (real files, log scale)", ylabel="PSNR dB", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return Drawing(figure, values)
