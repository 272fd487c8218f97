"""Beyond the paper: a modern learned codec, Ballé et al.'s scale hyperprior (ICLR 2018), for faces of any size.

The paper's codec spends a fixed 128 bits per 8x8 block and leaves the rest to LZMA. A learned-entropy codec
instead trains its rate: the analysis transform g_a (four 5x5 stride-2 convolutions with GDN) maps the image
to latents y at 1/16 of its size; a hyper-analysis h_a summarises |y| in side information z (1/64), coded with
a learned factorized density (`EntropyBottleneck`); the hyper-synthesis h_s turns z back into one Gaussian
scale per latent, and y is rounded and range-coded under those Gaussians (`GaussianConditional`). Training
minimises rate + lambda * distortion, with uniform noise standing in for rounding; one model per lambda.

The transforms, entropy models and range coder are CompressAI's (`compressai.models.ScaleHyperprior`).
facelab adds what its faces need: any image size (the image is padded to 16 and |y| to 4, the scales cropped
back, so a 112x96 face is not coded as 128x128), fp32 entropy models under bf16 autocast, the rate in bits
per pixel of the unpadded image, and one byte string per image for the facelab file format.
"""

from __future__ import annotations

import math
import struct
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

with warnings.catch_warnings():  # CompressAI 1.2.8 scripts a helper with torch.jit, which torch 2.14 deprecates
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    from compressai.models import ScaleHyperprior

from facelab.errors import BitstreamError

FAMILY = "hyperprior"
BLOCK = 16
"""g_a downsamples by 16: one latent vector per 16x16 block of pixels."""

HYPER_BLOCK = 4
"""h_a downsamples the latents by 4 more."""

CHANNELS = (64, 96)
"""(N, M): the transforms' width and the latent channels. CompressAI's low-rate models use (128, 192); half
that trains about 2.3x faster on a CPU and ships at 2.5 MB in half precision, for a small loss in quality."""

_LENGTH = struct.Struct(">I")

SHARED_TABLES = tuple(f"gaussian_conditional.{name}" for name in ("_offset", "_quantized_cdf", "_cdf_length",
                                                                   "scale_table"))
"""The Gaussian coder's tables: made from CompressAI's fixed scale table alone, the same for every model (0.8 MB),
so checkpoints leave them out and `shared_tables` rebuilds them."""


class RateOutput(NamedTuple):
    """A training forward pass: the reconstruction, the estimated rate and CompressAI's auxiliary loss."""

    x_hat: Tensor
    bpp: Tensor
    aux: Tensor

    def float(self) -> RateOutput:
        """The reconstruction in fp32 (the trainer's losses are computed in fp32)."""
        return self._replace(x_hat=self.x_hat.float())


def pad_to(tensor: Tensor, multiple: int, mode: str = "replicate") -> Tensor:
    """Pad (B, C, H, W) on the bottom and right to multiples of `multiple`."""
    pad_h, pad_w = -tensor.shape[-2] % multiple, -tensor.shape[-1] % multiple
    if pad_h == 0 and pad_w == 0:
        return tensor
    return F.pad(tensor, (0, pad_w, 0, pad_h), mode=mode)


def latent_shape(height: int, width: int) -> tuple[int, int]:
    """(h, w) of the latents y of a height x width image."""
    return math.ceil(height / BLOCK), math.ceil(width / BLOCK)


def hyper_shape(height: int, width: int) -> tuple[int, int]:
    """(h, w) of the side information z of a height x width image."""
    y_h, y_w = latent_shape(height, width)
    return math.ceil(y_h / HYPER_BLOCK), math.ceil(y_w / HYPER_BLOCK)


def shared_tables() -> dict[str, Tensor]:
    """The SHARED_TABLES buffers, built as `update` builds them for a trained model."""
    from compressai.models.google import get_scale_table

    model = ScaleHyperprior(1, 1)
    model.gaussian_conditional.update_scale_table(get_scale_table(), force=True)
    return {key: value for key, value in model.state_dict().items() if key in SHARED_TABLES}


class HyperpriorNet(ScaleHyperprior):
    """CompressAI's scale hyperprior at facelab's sizes; `forward` returns a `RateOutput` for the trainer."""

    family = FAMILY

    def __init__(self, channels: tuple[int, int] = CHANNELS) -> None:
        super().__init__(*channels)
        self.channels = tuple(int(c) for c in channels)

    @property
    def code_channels(self) -> int:
        """Latent channels: the header's channel count for this family."""
        return self.M

    def _scales(self, z_hat: Tensor, y_size: tuple[int, int]) -> Tensor:
        """Gaussian scales of y from the decoded side information, cropped to y's size, in fp32."""
        return self.h_s(z_hat)[..., : y_size[0], : y_size[1]].float()

    def forward(self, image: Tensor) -> RateOutput:
        """Training pass (noise for rounding) or evaluation pass (rounding): reconstruction and bits per pixel."""
        height, width = image.shape[-2:]
        y = self.g_a(pad_to(image, BLOCK))
        z = self.h_a(pad_to(y.abs(), HYPER_BLOCK, mode="constant"))
        with torch.autocast(image.device.type, enabled=False):
            z_hat, z_likelihoods = self.entropy_bottleneck(z.float())
            y_hat, y_likelihoods = self.gaussian_conditional(y.float(), self._scales(z_hat, y.shape[-2:]))
        x_hat = self.g_s(y_hat)[..., :height, :width]
        bits = -(torch.log2(y_likelihoods).sum() + torch.log2(z_likelihoods).sum())
        return RateOutput(x_hat, bits / (image.shape[0] * height * width), self.aux_loss())

    @torch.inference_mode()
    def compress_image(self, image: Tensor) -> bytes:
        """(1, 3, H, W) in [0, 1] -> the range-coded side information and latents as one byte string."""
        y = self.g_a(pad_to(image, BLOCK))
        z = self.h_a(pad_to(y.abs(), HYPER_BLOCK, mode="constant"))
        z_string = self.entropy_bottleneck.compress(z)[0]
        z_hat = self.entropy_bottleneck.decompress([z_string], z.shape[-2:])
        indexes = self.gaussian_conditional.build_indexes(self._scales(z_hat, y.shape[-2:]))
        y_string = self.gaussian_conditional.compress(y, indexes)[0]
        return _LENGTH.pack(len(z_string)) + z_string + y_string

    @torch.inference_mode()
    def decompress_image(self, payload: bytes, size: tuple[int, int]) -> Tensor:
        """Inverse of `compress_image` for an image of `size` (H, W): (1, 3, H, W) in [0, 1]."""
        if len(payload) < _LENGTH.size:
            raise BitstreamError("truncated file: the hyperprior payload ends before its first length field")
        (z_length,) = _LENGTH.unpack_from(payload)
        if _LENGTH.size + z_length > len(payload):
            raise BitstreamError("corrupt file: the side information is longer than the payload")
        z_string = payload[_LENGTH.size:_LENGTH.size + z_length]
        y_string = payload[_LENGTH.size + z_length:]
        z_hat = self.entropy_bottleneck.decompress([z_string], hyper_shape(*size))
        indexes = self.gaussian_conditional.build_indexes(self._scales(z_hat, latent_shape(*size)))
        y_hat = self.gaussian_conditional.decompress([y_string], indexes, z_hat.dtype)
        return self.g_s(y_hat)[..., : size[0], : size[1]].clamp_(0, 1)

    def round_to_half(self) -> None:
        """Round every weight to float16 (how it ships) and rebuild the entropy coder's tables from the result.

        The side information's range is then read off its learnt density (CompressAI's `update_quantiles`)
        instead of the auxiliary loss's estimate, which needs far more steps than a CPU run gives it.
        """
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(parameter.half().float())
            self.update(force=True, update_quantiles=True)
            for parameter in self.parameters():
                parameter.copy_(parameter.half().float())
        self.update(force=True)
