"""Print training throughput (images/s) of each phase on this machine's device.

    python scripts/bench_train.py [--steps 10] [--batch-size 8] [--device auto]

Phase 1 runs on random-crop natural images with L1 + (1 - MS-SSIM); phase 2 on 218x178 faces with
Eq. 2, once with the FaceNet feature loss (b = 1) and once without (b = 0). Synthetic tensors of the
real shapes are used so the figure measures compute, not disk.
"""

from __future__ import annotations

import argparse
import time

import torch

from facelab.losses import CompressionLoss, FaceLoss
from facelab.model import FaceCodecNet
from facelab.runtime import get_device


def throughput(model, loss_fn, make_batch, steps: int, device) -> float:
    """Images per second over `steps` optimiser steps, after one warm-up step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    for step in range(steps + 1):
        if step == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        images, extra = make_batch()
        parts = loss_fn(model(images), images, *extra)
        optimizer.zero_grad(set_to_none=True)
        parts["total"].backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * images.shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = get_device(args.device)
    n = args.batch_size
    box = torch.tensor([[44.0, 60.0, 134.0, 170.0]], device=device).repeat(n, 1)
    print(f"device: {device}, threads: {torch.get_num_threads()}, batch: {n}")

    natural = lambda: (torch.rand(n, 3, args.crop, args.crop, device=device), ())
    faces = lambda: (torch.rand(n, 3, 218, 178, device=device), (box,))
    from facelab.faces import FaceEmbedder

    runs = [
        (f"phase 1, natural {args.crop}x{args.crop} crops, L1 + MS-SSIM", CompressionLoss(), natural),
        ("phase 2, 218x178 faces, a*L2 + b*FaceNet (b = 1)", FaceLoss(1.0, 1.0, "l2", FaceEmbedder(device)), faces),
        ("phase 2 ablation, 218x178 faces, b = 0", FaceLoss(1.0, 0.0, "l2", None), faces),
    ]
    for label, loss_fn, make_batch in runs:
        model = FaceCodecNet().to(device)
        rate = throughput(model, loss_fn.to(device), make_batch, args.steps, device)
        print(f"{label}: {rate:.1f} images/s")


if __name__ == "__main__":
    main()
