"""What a rate-trained model's forward pass returns to the trainer: the reconstruction and its estimated rate."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class RateOutput(NamedTuple):
    """A training forward pass: the reconstruction, the estimated rate (bits per pixel) and an auxiliary loss
    (CompressAI's for a hyperprior, 0 for a bit model)."""

    x_hat: Tensor
    bpp: Tensor
    aux: Tensor

    def float(self) -> RateOutput:
        """The reconstruction in fp32 (the trainer's losses are computed in fp32)."""
        return self._replace(x_hat=self.x_hat.float())
