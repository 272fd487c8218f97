"""Print training throughput (images/s) of each phase on this machine, the old way and the new way.

    python scripts/bench_train.py [--steps 30] [--device auto] [--data-root DIR]

Each line times whole trainer steps (data, forward, loss, backward, update) through `facelab.train.loss_on_batch`
on the real data, after warm-up steps (oneDNN compiles its bf16 kernels on first use, which takes seconds):
- before: fp32, faces decoded from their files by a DataLoader at CelebA's 218x178, FaceNet on every face;
- after: bf16 autocast where the device has it, CelebA faces held in memory on the 112x96 template
  (`facelab.data.template_faces`), FaceNet on `face_samples` faces of each batch (the shipped recipes' 8 of 32).
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from torch.utils.data import DataLoader

from facelab.faces import FaceEmbedder
from facelab.losses import CompressionLoss, FaceLoss
from facelab.model import FaceCodecNet
from facelab.runtime import fast_dtype, get_device

WARMUP = 8
"""Untimed steps first: oneDNN compiles its kernels, the data is decoded or cached."""


def throughput(loader: DataLoader, loss_fn: torch.nn.Module, dtype: torch.dtype | None, steps: int,
               device: torch.device) -> float:
    """Images per second over `steps` whole optimiser steps, after WARMUP untimed ones."""
    from facelab.train import loss_on_batch

    model = FaceCodecNet().to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = itertools.cycle(loader)
    images = 0
    for step in range(WARMUP + steps):
        if step == WARMUP:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, images = time.perf_counter(), 0
        batch = next(batches)
        parts = loss_on_batch(model, loss_fn, batch, device, dtype)
        optimizer.zero_grad(set_to_none=True)
        parts["total"].backward()
        optimizer.step()
        images += len(batch["image"] if isinstance(batch, dict) else batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    from facelab.data.celeba import CelebAFaces
    from facelab.data.natural import NaturalImages
    from facelab.data.template_faces import TemplateFaces

    device = get_device(args.device)
    fast = fast_dtype(device)
    embedder = FaceEmbedder(device)
    print(f"device: {device}, threads: {torch.get_num_threads()}, fast dtype: {fast}")
    natural = NaturalImages(args.data_root, split="train", crop=128)
    old_faces = CelebAFaces(args.data_root, split="train", size=(218, 178), source="aligned", max_images=512)
    new_faces = TemplateFaces(args.data_root, split="train")
    runs = [
        ("phase 1, 128x128 crops, L1 + MS-SSIM, batch 16", "before", natural, 16, CompressionLoss(), None),
        ("phase 1, 128x128 crops, L1 + MS-SSIM, batch 16", "after", natural, 16, CompressionLoss(), fast),
        ("phase 2, b = 0 (pixels only)", "before", old_faces, 8, FaceLoss(1, 0), None),
        ("phase 2, b = 0 (pixels only)", "after", new_faces, 32, FaceLoss(1, 0), fast),
        ("phase 2, b = 1 (FaceNet loss)", "before", old_faces, 8, FaceLoss(1, 1, embedder=embedder), None),
        ("phase 2, b = 1 (FaceNet loss)", "after", new_faces, 32, FaceLoss(1, 1, embedder=embedder, face_samples=8), fast),
    ]
    for label, when, data, batch_size, loss_fn, dtype in runs:
        loader = DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True)
        rate = throughput(loader, loss_fn.to(device), dtype, args.steps, device)
        print(f"{label:50s} {when:6s} {rate:7.1f} images/s")


if __name__ == "__main__":
    main()
