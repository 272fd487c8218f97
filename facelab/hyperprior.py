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
per pixel of the unpadded image, and one byte string per image for the facelab file format. Files decode to the
same latents on every machine: the coder's tables are shipped, never recomputed, and the scales that choose among
them come from h_s computed in exact integer arithmetic (`facelab.exact`); a checksum of the decoded latents
turns any remaining disagreement between encoder and decoder into an error instead of a wrong face.
"""

from __future__ import annotations

import math
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

import torch
import torch.nn.functional as F
from torch import Tensor

with warnings.catch_warnings():  # CompressAI 1.2.8 scripts a helper with torch.jit, which torch 2.14 deprecates
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    from compressai.models import ScaleHyperprior

from compressai.ans import BufferedRansEncoder, RansDecoder

from facelab.bitstream import COMPACT_VERSION, EXACT_HYPERPRIOR_VERSION, FORMAT_VERSION
from facelab.errors import BitstreamError
from facelab.exact import IntegerNet, scale_indexes
from facelab.rate_output import RateOutput

FAMILY = "hyperprior"
BLOCK = 16
"""g_a downsamples by 16: one latent vector per 16x16 block of pixels."""

HYPER_BLOCK = 4
"""h_a downsamples the latents by 4 more."""

CHANNELS = (64, 96)
"""(N, M): the transforms' width and the latent channels. CompressAI's low-rate models use (128, 192); half
that trains about 2.3x faster on a CPU and ships at 2.5 MB in half precision, for a small loss in quality."""

_LENGTH = struct.Struct(">I")
"""The side information's length before format 4 (format 4 codes it and the latents in one stream)."""

_CHECK = struct.Struct(">H")

LIKELIHOOD_FLOOR = 1e-9
"""CompressAI's smallest likelihood in training: no latent costs more than 30 bits."""

SHARED_TABLES = tuple(f"gaussian_conditional.{name}" for name in ("_offset", "_quantized_cdf", "_cdf_length",
                                                                   "scale_table"))
"""The Gaussian coder's tables: made from CompressAI's fixed scale table alone, the same for every model (0.8 MB),
so checkpoints leave them out and every model loads them from GAUSSIAN_TABLES."""

GAUSSIAN_TABLES = Path(__file__).parent / "weights" / "gaussian_tables.npz"
"""The SHARED_TABLES as shipped (32 KB): built once by `build_shared_tables`, because rebuilding them on each
machine (erfc in floats, then rounding to 16-bit CDFs) could differ by one count between machines."""


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


def build_shared_tables() -> dict[str, Tensor]:
    """The SHARED_TABLES buffers, built as CompressAI's `update` builds them for a trained model (this machine's
    floats): how GAUSSIAN_TABLES was made."""
    from compressai.models.google import get_scale_table

    model = ScaleHyperprior(1, 1)
    model.gaussian_conditional.update_scale_table(get_scale_table(), force=True)
    return {key: value for key, value in model.state_dict().items() if key in SHARED_TABLES}


def shared_tables() -> dict[str, Tensor]:
    """The SHARED_TABLES buffers as shipped in GAUSSIAN_TABLES, the same bits on every machine."""
    with np.load(GAUSSIAN_TABLES) as tables:
        return {key: torch.from_numpy(tables[key.split(".")[-1]]) for key in SHARED_TABLES}


RANS_FLUSH_BYTES = 8
"""CompressAI's range coder (64-bit rANS) ends every stream with its 8-byte state. Its decoder reads on without
bounds checks, one 32-bit word a symbol but for escaped (bypass) values, so the stream is handed to it followed by
four zero bytes a symbol: a cut or damaged stream runs into zeros, not past the buffer (a stream forged to chain
escapes could still read further; the file's CRC-32 keeps out damage, not forgery)."""


def coder_tables(model: torch.nn.Module) -> tuple[list, list, list]:
    """An entropy model's quantised CDFs, their lengths and offsets, as the range coder takes them."""
    return (model._quantized_cdf.tolist(), model._cdf_length.reshape(-1).int().tolist(),
            model._offset.reshape(-1).int().tolist())


def latent_check(indexes: Tensor, symbols: Tensor) -> int:
    """16 bits of CRC-32 over the entropy-model indexes and the latent symbols they coded: what the encoder chose
    and wrote, which a decoder must reproduce exactly."""
    data = indexes.to("cpu", torch.int32).numpy().astype("<i4").tobytes()
    return zlib.crc32(symbols.to("cpu", torch.int32).numpy().astype("<i4").tobytes(), zlib.crc32(data)) & 0xFFFF


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

    def _indexes(self, z_hat: Tensor, y_size: tuple[int, int], exact: bool = True) -> Tensor:
        """The Gaussian table each latent is coded with, on z_hat's device: from h_s in exact integer arithmetic
        (format 3 on), or in floats as format 2 files were written (their indexes can differ between machines)."""
        if not exact:
            return self.gaussian_conditional.build_indexes(self._scales(z_hat, y_size))
        scales = IntegerNet(self.h_s)(z_hat)[..., : y_size[0], : y_size[1]]
        return scale_indexes(scales, self.gaussian_conditional.scale_table).to(z_hat.device)

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

    def unrounded(self, image: Tensor) -> Tensor:
        """The reconstruction of g_a's latents as they are, never rounded: the transforms' ceiling, which no rate
        reaches (`facelab.ceiling`)."""
        height, width = image.shape[-2:]
        return self.g_s(self.g_a(pad_to(image, BLOCK)))[..., :height, :width]

    def _side_model(self, shape: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """The table indexes and medians of side information z of spatial `shape` (CompressAI's
        `EntropyBottleneck.compress` builds the same)."""
        bottleneck = self.entropy_bottleneck
        indexes = bottleneck._build_indexes((1, bottleneck._quantized_cdf.size(0), *shape))
        medians = bottleneck._extend_ndims(bottleneck._get_medians().detach(), 2).expand(1, -1, -1, -1)
        return indexes.to(medians.device), medians

    @torch.inference_mode()
    def compress_image(self, image: Tensor) -> bytes:
        """(1, 3, H, W) in [0, 1] -> side information and latents range-coded in one stream, then the latents'
        16-bit check (format 4: one stream ends with one 8-byte flush, and needs no length between its parts)."""
        y = self.g_a(pad_to(image, BLOCK))
        z = self.h_a(pad_to(y.abs(), HYPER_BLOCK, mode="constant"))
        z_indexes, medians = self._side_model(z.shape[-2:])
        z_symbols = self.entropy_bottleneck.quantize(z, "symbols", medians)
        indexes = self._indexes(self.entropy_bottleneck.dequantize(z_symbols, medians), y.shape[-2:])
        y_symbols = self.gaussian_conditional.quantize(y, "symbols")
        encoder = BufferedRansEncoder()
        for symbols, table_indexes, model in ((z_symbols, z_indexes, self.entropy_bottleneck),
                                              (y_symbols, indexes, self.gaussian_conditional)):
            encoder.encode_with_indexes(symbols.reshape(-1).int().tolist(), table_indexes.reshape(-1).int().tolist(),
                                        *coder_tables(model))
        return encoder.flush() + _CHECK.pack(latent_check(indexes, y_symbols))

    @torch.inference_mode()
    def decompress_image(self, payload: bytes, size: tuple[int, int], version: int = FORMAT_VERSION) -> Tensor:
        """Inverse of `compress_image` for an image of `size` (H, W): (1, 3, H, W) in [0, 1]. An older `version`
        reads that format's payload: a 4-byte length and two strings (before 4), float indexes and no latent check
        (format 2)."""
        if version < COMPACT_VERSION:
            y_hat, indexes, check_size = self._decode_strings(payload, size, version >= EXACT_HYPERPRIOR_VERSION)
        else:
            (y_hat, indexes), check_size = self._decode_stream(payload, size), _CHECK.size
        if check_size and latent_check(indexes, y_hat) != _CHECK.unpack_from(payload, len(payload) - check_size)[0]:
            raise BitstreamError("decoded on a machine whose arithmetic differs from the encoder's: the latents do "
                                 "not match their checksum, so the image would be wrong (please report it)")
        return self.g_s(y_hat)[..., : size[0], : size[1]].clamp_(0, 1)

    def side_information(self, payload: bytes, size: tuple[int, int]) -> tuple[RansDecoder, Tensor]:
        """Format 4: the decoded side information z_hat, first in the payload's one range-coded stream, and the
        decoder, left where the latents begin."""
        if len(payload) < RANS_FLUSH_BYTES + _CHECK.size:
            raise BitstreamError("truncated file: the hyperprior payload is shorter than a range-coded stream")
        z_indexes, medians = self._side_model(hyper_shape(*size))
        symbols = z_indexes.numel() + self.M * math.prod(latent_shape(*size))
        decoder = RansDecoder()
        decoder.set_stream(payload[:-_CHECK.size] + bytes(4 * symbols + RANS_FLUSH_BYTES))
        z_symbols = self._decode_part(decoder, z_indexes, self.entropy_bottleneck)
        return decoder, self.entropy_bottleneck.dequantize(z_symbols, medians)

    def _decode_stream(self, payload: bytes, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Format 4: the latents and their table indexes from the one range-coded stream before the check."""
        decoder, z_hat = self.side_information(payload, size)
        indexes = self._indexes(z_hat, latent_shape(*size))
        return self.gaussian_conditional.dequantize(self._decode_part(decoder, indexes, self.gaussian_conditional)), indexes

    @staticmethod
    def _decode_part(decoder: RansDecoder, indexes: Tensor, model: torch.nn.Module) -> Tensor:
        """The next symbols of the stream, one per entry of `indexes`, under `model`'s tables."""
        values = decoder.decode_stream(indexes.reshape(-1).int().tolist(), *coder_tables(model))
        return torch.tensor(values, dtype=torch.int32, device=indexes.device).reshape(indexes.shape)

    def _decode_strings(self, payload: bytes, size: tuple[int, int], exact: bool) -> tuple[Tensor, Tensor, int]:
        """Formats 2 and 3: a 4-byte length, the side information's string and the latents' (then, from format 3,
        the check): the latents, their table indexes and the check's length."""
        check_size = _CHECK.size if exact else 0
        if len(payload) < _LENGTH.size + check_size:
            raise BitstreamError("truncated file: the hyperprior payload ends before its first length field")
        (z_length,) = _LENGTH.unpack_from(payload)
        if _LENGTH.size + z_length + check_size > len(payload):
            raise BitstreamError("corrupt file: the side information is longer than the payload")
        z_string = payload[_LENGTH.size:_LENGTH.size + z_length]
        y_string = payload[_LENGTH.size + z_length:len(payload) - check_size]
        z_hat = self.entropy_bottleneck.decompress([z_string], hyper_shape(*size))
        indexes = self._indexes(z_hat, latent_shape(*size), exact)
        return self.gaussian_conditional.decompress([y_string], indexes, z_hat.dtype), indexes, check_size

    @torch.no_grad()
    def restore_likelihood_floor(self) -> None:
        """Put back CompressAI's floor under each likelihood (1e-9, 30 bits) before training. The shipped
        checkpoints hold 0 there, lost to a half-precision round trip (1e-9 is 0 in float16): one latent far in a
        Gaussian's tail then costs infinitely many bits, and every step of a run is skipped as non-finite (the first
        `ladder-7` run skipped all 400). Coding never reads the floor; training needs it."""
        for bound in (self.gaussian_conditional.likelihood_lower_bound, self.entropy_bottleneck.likelihood_lower_bound):
            bound.bound.fill_(LIKELIHOOD_FLOOR)

    @torch.no_grad()
    def scale_latents(self, gain: float) -> None:
        """Quantise the latents `gain` times finer (the step becomes 1/gain) by folding the gain into the weights:
        g_a's last layer and h_s's scales are multiplied by it, h_a's and g_s's first layers divide it out. The model
        is the same function but for the rounding, so its rate moves at once (on CelebA faces hp-long's 0.53 bpp
        becomes 0.33 at gain 0.5 and 0.78 at gain 2): where a rate ladder's rung starts before fine-tuning."""
        if gain <= 0:
            raise ValueError(f"a latent gain must be positive, not {gain}")
        for layer in (self.g_a[-1], self.h_s[-2]):
            layer.weight.mul_(gain)
            layer.bias.mul_(gain)
        self.h_a[0].weight.div_(gain)
        self.g_s[0].weight.div_(gain)

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
