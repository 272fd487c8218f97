"""The paper's convolutional autoencoder: Encoder -> Binarizer -> Decoder.

Shapes for an input of (B, 3, H, W), H and W multiples of 8 (`FaceCodecNet` pads any size):

    Encoder  conv 3->32, 8x8, stride 4, pad 2 + BN + ReLU   (B, 32, H/4, W/4)
             conv 32->64, 2x2, stride 2 + BN + ReLU         (B, 64, H/8, W/8)
    Binarizer conv 64->128, 1x1 + tanh + Eq. 1              (B, 128, H/8, W/8) in {-1, +1}
    Decoder  convT 128->32, 8x8, stride 4, pad 2 + BN + ReLU (B, 32, H/2, W/2)
             convT 32->3, 2x2, stride 2 + sigmoid            (B, 3, H, W) in [0, 1]

128 bits per 8x8 block of pixels is 2 bits per pixel before entropy coding.
The decoder is the paper's as its text gives it: two transposed-convolution structures with
32 and 3 filters, 8x8 stride 4 then 2x2 stride 2. It mirrors the encoder in its filter counts
and its total upsampling (x8), not layer by layer; an exact layer mirror (2x2 then 8x8, with
32 channels at H/4) has 6x fewer parameters and reached 20.2 dB instead of 22.4 dB on Kodak
after the same 250 training steps. The paper ends in BN + ReLU, which cannot produce valid
pixels; the last layer ends in a sigmoid instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facelab.binarizer import Binarizer

BLOCK = 8
"""The encoder downsamples by 8: one code vector per 8x8 block of pixels."""


def conv_block(conv: nn.Module, channels: int) -> nn.Sequential:
    """A convolution (or transposed convolution), batch norm and ReLU: the paper's 'structure'."""
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class Encoder(nn.Module):
    """(B, 3, H, W) in [0, 1] -> (B, 64, H/8, W/8) features."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            conv_block(nn.Conv2d(3, 32, kernel_size=8, stride=4, padding=2), 32),
            conv_block(nn.Conv2d(32, 64, kernel_size=2, stride=2), 64),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image)


class Decoder(nn.Module):
    """(B, 128, H/8, W/8) code in {-1, +1} -> (B, 3, H, W) image in [0, 1]."""

    def __init__(self, code_channels: int = 128) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            conv_block(nn.ConvTranspose2d(code_channels, 32, kernel_size=8, stride=4, padding=2), 32),
            nn.ConvTranspose2d(32, 3, kernel_size=2, stride=2),
            nn.Sigmoid(),
        )

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.layers(code)


def pad_to_block(image: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """Pad (B, C, H, W) on the bottom and right, by edge replication, to multiples of `block`."""
    h, w = image.shape[-2:]
    pad_h, pad_w = -h % block, -w % block
    if pad_h == 0 and pad_w == 0:
        return image
    return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")


class FaceCodecNet(nn.Module):
    """The whole autoencoder; `encode` gives the binary code and `decode` the image back."""

    def __init__(self, code_channels: int = 128) -> None:
        super().__init__()
        self.code_channels = code_channels
        self.encoder = Encoder()
        self.binarizer = Binarizer(64, code_channels)
        self.decoder = Decoder(code_channels)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1], any H, W -> code (B, code_channels, ceil(H/8), ceil(W/8)) in {-1, +1}."""
        return self.binarizer(self.encoder(pad_to_block(image)))

    def decode(self, code: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Code -> image in [0, 1], cropped to `size` (H, W) when given."""
        image = self.decoder(code)
        if size is not None:
            image = image[..., : size[0], : size[1]]
        return image

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Reconstruct `image` through the binary bottleneck, at its own size."""
        return self.decode(self.encode(image), size=tuple(image.shape[-2:]))
