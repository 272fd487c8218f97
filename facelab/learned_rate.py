"""The paper's architecture with a learned rate (issue 29): `FaceCodecNet` plus a `BitModel`, and its coder.

Training minimises rate + lmbda * distortion, the rate being the bit model's cross-entropy of the binarizer's
(straight-through) bits, so the encoder learns a code that is cheap to store and the bit model learns its
probabilities. Files (coder "learned", `.flr`) range-code the bits in the bit model's order with the probabilities
of `IntegerBitModel`, the same on every machine; the payload begins with 16 bits of a CRC-32 of the code, so that a
decoder whose probabilities differed (which exact arithmetic rules out) reports an error instead of a wrong face.
"""

from __future__ import annotations

import zlib

import constriction
import numpy as np
import torch
from torch import Tensor

from facelab.bitmodel import BitModel, IntegerBitModel, coding_passes
from facelab.bitstream import pack_code
from facelab.entropy import bernoulli_family, bytes_to_words, words_to_bytes
from facelab.errors import BitstreamError
from facelab.model import FaceCodecNet
from facelab.rate_output import RateOutput
from facelab.recipes import LEARNED_RATE

FAMILY = LEARNED_RATE
_CHECK_BYTES = 2


def code_check(code: np.ndarray) -> bytes:
    """16 bits of the CRC-32 of the packed code: what a decoder must reproduce exactly."""
    return (zlib.crc32(pack_code(code)) & 0xFFFF).to_bytes(_CHECK_BYTES, "big")


class LearnedRateNet(FaceCodecNet):
    """The paper's encoder, binarizer and decoder, unchanged, plus a bit model that prices the code."""

    family = FAMILY

    def __init__(self, code_channels: int = 128) -> None:
        super().__init__(code_channels)
        self.bit_model = BitModel(code_channels)

    @classmethod
    def from_paper_model(cls, model: FaceCodecNet) -> LearnedRateNet:
        """A paper's-architecture model with a fresh bit model (which starts at one bit per bit)."""
        learned = cls(model.code_channels)
        missing, unexpected = learned.load_state_dict(model.state_dict(), strict=False)
        if unexpected or any(not name.startswith("bit_model.") for name in missing):
            raise ValueError(f"not a paper's-architecture state: missing {missing}, unexpected {unexpected}")
        return learned

    def forward(self, image: Tensor) -> RateOutput:
        """Reconstruction and the estimated rate in bits per pixel of the unpadded image."""
        code = self.encode(image)
        x_hat = self.decode(code, size=tuple(image.shape[-2:]))
        bits = self.bit_model.bits(code).sum()
        return RateOutput(x_hat, bits / (image.shape[0] * image.shape[-2] * image.shape[-1]), bits.new_zeros(()))

    def integer_bit_model(self) -> IntegerBitModel:
        """The exact bit model, built once per set of weights (the weights hash is its key)."""
        from facelab.weights import weights_hash

        key = weights_hash(self)
        cached = getattr(self, "_integer_bit_model", None)
        if cached is None or cached[0] != key:
            self._integer_bit_model = (key, IntegerBitModel(self.bit_model))
        return self._integer_bit_model[1]


def code_probabilities(exact: IntegerBitModel, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bits of a (C, h, w) +-1 code in coding order (0/1) and the probabilities P(1) they are coded with."""
    known = torch.from_numpy(np.ascontiguousarray(code, np.float64))
    symbols, probabilities, p_one = [], [], {}
    for group, positions in coding_passes(exact.groups, *code.shape[1:]):
        if group not in p_one:
            p_one = {group: exact.probabilities(exact.group_logits(known, group))}
        own = known[group * exact.size:(group + 1) * exact.size]
        symbols.append((own[:, positions] > 0).numpy().astype(np.int32).ravel())
        probabilities.append(p_one[group][:, positions].numpy().ravel())
    return np.concatenate(symbols), np.concatenate(probabilities)


def encode_code(exact: IntegerBitModel, code: np.ndarray) -> bytes:
    """(C, h, w) +-1 code -> its 16-bit check and the range-coded bits."""
    symbols, probabilities = code_probabilities(exact, code)
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(symbols, bernoulli_family(), probabilities)
    return code_check(code) + words_to_bytes(encoder.get_compressed())


def decode_code(exact: IntegerBitModel, payload: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of `encode_code`: (C, h, w) int8 code of +-1; BitstreamError when the payload does not decode to the
    code its check describes."""
    if len(payload) <= _CHECK_BYTES:
        raise BitstreamError(f"truncated code: {len(payload)} bytes hold no coded bits")
    _, height, width = shape
    known = torch.zeros(shape, dtype=torch.float64)
    try:
        decoder = constriction.stream.queue.RangeDecoder(bytes_to_words(payload[_CHECK_BYTES:]))
        for group, positions in coding_passes(exact.groups, height, width):
            own = slice(group * exact.size, (group + 1) * exact.size)
            p_one = exact.probabilities(exact.group_logits(known, group)[:, positions])
            bits = decoder.decode(bernoulli_family(), p_one.numpy().ravel())
            known[own, positions] = torch.from_numpy(bits.astype(np.float64) * 2 - 1).reshape(p_one.shape)
        exhausted = decoder.maybe_exhausted()
    except Exception as exc:  # constriction reports damaged input with assorted exception types
        raise BitstreamError(f"corrupt code: the range decoder failed ({type(exc).__name__})") from None
    if not exhausted:
        raise BitstreamError("corrupt code: data left over after the last bit")
    code = known.numpy().astype(np.int8)
    if code_check(code) != payload[:_CHECK_BYTES]:
        raise BitstreamError("the decoded code does not match its check: the file is damaged, or this machine's "
                             "arithmetic differs from the encoder's (please report it)")
    return code


def bit_costs(exact: IntegerBitModel, code: np.ndarray) -> np.ndarray:
    """What each bit of a (C, h, w) +-1 code costs under the exact bit model, -log2 P(its value), in the code's
    layout (the probabilities are those the coder uses: `group_logits` reads only bits coded before each one)."""
    known = torch.from_numpy(np.ascontiguousarray(code, np.float64))
    p_one = torch.cat([exact.probabilities(exact.group_logits(known, group)) for group in range(exact.groups)])
    return -np.log2(np.where(code > 0, p_one.numpy(), 1 - p_one.numpy()))


def estimated_bits(exact: IntegerBitModel, code: np.ndarray) -> float:
    """What an ideal coder spends on `code` with the exact probabilities: the sum of -log2 P(bit)."""
    return float(bit_costs(exact, code).sum())
