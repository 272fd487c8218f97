"""Synthetic training images for the trainer's tests: smooth random pictures a tiny model learns in a few steps."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class SmoothImages(Dataset):
    """`count` random images of `size` (H, W), bilinearly upsampled from a 4x coarser grid, fixed by `seed`."""

    def __init__(self, count: int, seed: int, size: tuple[int, int] = (32, 32)) -> None:
        generator = torch.Generator().manual_seed(seed)
        coarse = torch.rand(count, 3, max(1, size[0] // 8), max(1, size[1] // 8), generator=generator)
        self.images = torch.nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]
