"""The binarizer of the paper: a 1x1 convolution, tanh, and the stochastic sign of Eq. 1.

Eq. 1 as printed: Bin(x) = -1 if (1 - x) / 2 <= P, else +1, with P ~ U[0, 1). Then
P(Bin(x) = -1) = 1 - (1 - x) / 2 = (1 + x) / 2, so E[Bin(x)] = -x: the sign is flipped.
The binarizer the paper builds on (Toderici et al., 2016) outputs +1 with probability
(1 + x) / 2, i.e. -1 if (1 + x) / 2 <= P, so that E[Bin(x)] = x: an unbiased one-bit
quantiser of x in [-1, 1]. facelab uses that one; `paper_eq1_as_printed` keeps the printed
rule for lesson 01. The sign has zero gradient almost everywhere, so training passes the
gradient straight through (d Bin / dx := 1), which is right in expectation only because
E[Bin(x)] = x. At inference the sign is deterministic: Bin(x) = +1 if x > 0 else -1.
"""

from __future__ import annotations

import torch
from torch import nn


def stochastic_sign(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Unbiased Eq. 1: -1 where (1 + x) / 2 <= P, +1 otherwise, P uniform in [0, 1); E = x."""
    p = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.where((1 + x) / 2 <= p, -torch.ones_like(x), torch.ones_like(x))


def paper_eq1_as_printed(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Eq. 1 exactly as the paper prints it: -1 where (1 - x) / 2 <= P; its mean is -x, not x."""
    p = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.where((1 - x) / 2 <= p, -torch.ones_like(x), torch.ones_like(x))


def deterministic_sign(x: torch.Tensor) -> torch.Tensor:
    """The inference-time binarizer: +1 where x > 0, else -1 (never 0, so every value is one bit)."""
    return torch.where(x > 0, torch.ones_like(x), -torch.ones_like(x))


def binarize(x: torch.Tensor, stochastic: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Quantise x in [-1, 1] to {-1, +1} exactly, passing the gradient straight through to x."""
    hard = stochastic_sign(x, generator) if stochastic else deterministic_sign(x)
    return hard + (x - x.detach())


class Binarizer(nn.Module):
    """conv 1x1 (in -> bits channels) + tanh + Eq. 1: (B, 64, h, w) -> (B, 128, h, w) in {-1, +1}.

    Stochastic in training mode, deterministic in eval mode.
    """

    def __init__(self, in_channels: int = 64, bits: int = 128) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, bits, kernel_size=1)

    def pre_activation(self, features: torch.Tensor) -> torch.Tensor:
        """tanh(conv(features)): the continuous x in [-1, 1] that Eq. 1 quantises."""
        return torch.tanh(self.conv(features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The code; the sign is taken in fp32 even under bf16 autocast, so Eq. 1's probabilities stay exact."""
        return binarize(self.pre_activation(features).float(), stochastic=self.training)
