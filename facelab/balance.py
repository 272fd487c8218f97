"""The loss balance, measured: quality, identity and rate of the retrained models on held-out CelebA faces.

Eq. 2 weighs a pixel loss (a) against a FaceNet feature loss (b). With a = b = 1 the feature term is about
100 times the pixel term, so the sweep models (`facelab.recipes.SWEEP`) retrain the same start with a = 1,
10, 100, 1000 (b = 1) and b = 0. Each is scored on CelebA people no training run saw, at 112x96, through
real files: PSNR, MS-SSIM, FaceNet cosine (original vs reconstruction, MTCNN box of the original) and bpp
with both coders. Lesson 04's sliders walk these points; `SWEEP_RESULTS` holds them as measured on all
held-out faces when the models were trained (`python -m facelab.balance` remakes it). `gradient_scales`
measures the balance where training feels it: the size of each loss part's gradient, and of Adam's decay.
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from facelab.codec import compress, decode_code, encode_code
from facelab.image_io import to_tensor, to_uint8
from facelab.metrics import ms_ssim, psnr
from facelab.model import FaceCodecNet
from facelab.rate import bpp
from facelab.recipes import RECIPES, SWEEP
from facelab.train import loss_on_batch
from facelab.weights import SHIPPED_DIR, load_model

SWEEP_RESULTS = SHIPPED_DIR / "sweep.json"
"""The sweep as measured on every held-out face when the shipped models were trained."""


@dataclass(frozen=True)
class BalancePoint:
    """One model's means over the held-out faces: its loss weights, quality, identity and rate."""

    model: str
    a: float
    b: float
    psnr: float
    msssim: float
    cosine: float
    bpp_xz: float
    bpp_context: float
    faces: int


@torch.no_grad()
def measure(name: str, faces: list[dict[str, torch.Tensor]], embedder: object) -> tuple[BalancePoint, list[np.ndarray]]:
    """Score shipped model `name` on `faces` (TemplateFaces items); also return its reconstructions."""
    model = load_model(name)
    originals = [to_uint8(face["image"]) for face in faces]
    rows, reconstructions = [], []
    for original in tqdm(originals, desc=name, leave=False):
        height, width = original.shape[:2]
        reconstruction = decode_code(model, encode_code(model, original), (height, width))
        reconstructions.append(reconstruction)
        rows.append((psnr(original, reconstruction), ms_ssim(original, reconstruction),
                     bpp(len(compress(original, model, "xz")), height, width),
                     bpp(len(compress(original, model, "context")), height, width)))
    boxes = torch.stack([face["box"] for face in faces])
    cosine = (embedder.embed_images(to_tensor(np.stack(originals)), boxes)
              * embedder.embed_images(to_tensor(np.stack(reconstructions)), boxes)).sum(1)
    recipe = RECIPES.get(name, {})
    means = np.mean(rows, axis=0)
    point = BalancePoint(name, float(recipe.get("a", 1.0)), float(recipe.get("b", 1.0)), *(float(v) for v in means[:2]),
                         float(cosine.mean()), *(float(v) for v in means[2:]), len(faces))
    return point, reconstructions


def held_out_faces(limit: int | None = None, root: str | None = None) -> list[dict[str, torch.Tensor]]:
    """The first `limit` (default all) centred validation faces of CelebA on the 112x96 template."""
    from facelab.data.template_faces import TemplateFaces

    val = TemplateFaces(root, split="val")
    return [val[i] for i in range(min(limit or len(val), len(val)))]


def measure_sweep(faces: list[dict[str, torch.Tensor]], names: tuple[str, ...] = SWEEP,
                  device: str = "cpu") -> tuple[list[BalancePoint], dict[str, list[np.ndarray]]]:
    """Score each model on the same faces (`held_out_faces`): the points and each model's reconstructions."""
    from facelab.faces import FaceEmbedder

    embedder = FaceEmbedder(device)
    points, reconstructions = [], {}
    for name in names:
        point, images = measure(name, faces, embedder)
        points.append(point)
        reconstructions[name] = images
    return points, reconstructions


def shipped_sweep() -> list[BalancePoint]:
    """The sweep as measured when the models were trained (all held-out faces)."""
    return [BalancePoint(**row) for row in json.loads(SWEEP_RESULTS.read_text())["points"]]


def gradient_scales(model: FaceCodecNet, loss_fn: torch.nn.Module, batch: Any, device: torch.device,
                    weight_decay: float) -> dict[str, float]:
    """Mean |gradient| over the model's weights of each loss part on one batch, and of Adam's decay term.

    Adam adds `weight_decay * w` to each weight's gradient; when that term is the larger one, the
    decay, not the loss, decides where the weights go (see the module docstring). The model is not
    changed: a copy runs in training mode.
    """
    model = copy.deepcopy(model).train()
    parts = [key for key in loss_on_batch(model, loss_fn, batch, device) if key != "total"]
    weights = [p for p in model.parameters() if p.requires_grad]
    scales = {}
    for part in parts:
        model.zero_grad(set_to_none=True)
        loss = loss_on_batch(model, loss_fn, batch, device)[part]
        if loss.requires_grad:
            loss.backward()
        grads = [p.grad.abs().flatten() for p in weights if p.grad is not None]
        scales[part] = float(torch.cat(grads).mean()) if grads else 0.0
    model.zero_grad(set_to_none=True)
    scales["weight decay"] = weight_decay * float(torch.cat([p.detach().abs().flatten() for p in weights]).mean())
    return scales


def main() -> None:
    """`python -m facelab.balance`: measure the sweep (and any other models) and write SWEEP_RESULTS."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SWEEP))
    parser.add_argument("--limit", type=int, default=None, help="held-out faces to use (default: all)")
    parser.add_argument("--output", type=Path, default=SWEEP_RESULTS)
    args = parser.parse_args()
    points, _ = measure_sweep(held_out_faces(args.limit), tuple(args.models))
    args.output.write_text(json.dumps({"faces": "CelebA validation people (every 10th identity), 112x96 template",
                                       "points": [asdict(p) for p in points]}, indent=1) + "\n")
    for point in points:
        print(point)


if __name__ == "__main__":
    main()
