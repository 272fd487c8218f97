"""The paper's architecture with a learned rate (issue 29): the bits range-coded under the model's own exact bit
model (`facelab.learned_rate`), after the header in the clear, then the payload's CRC-32."""

from __future__ import annotations

import numpy as np

from facelab import codec
from facelab.bitstream import Header
from facelab.container import seal, unseal
from facelab.learned_rate import LearnedRateNet, decode_code, encode_code


def write_code(code: np.ndarray, header: Header, model: LearnedRateNet) -> bytes:
    """The file of a (C, h, w) +-1 code under `model`'s bit model."""
    payload = encode_code(model.integer_bit_model(), code)
    return header.pack() + seal(payload)


def write_file(model: LearnedRateNet, image: np.ndarray, header: Header) -> bytes:
    """The file of an image: its deterministic binary code, coded with the learned probabilities."""
    return write_code(codec.encode_code(model, image), header, model)


def read_file(model: LearnedRateNet, header: Header, payload: bytes) -> np.ndarray:
    """The image of a payload whose CRC-32 holds and whose decoded code matches its check."""
    code = decode_code(model.integer_bit_model(), unseal(payload, "the coded latents"), header.code_shape)
    return codec.decode_code(model, code, (header.height, header.width))
