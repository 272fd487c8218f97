"""facelab's fixed context coder (lesson 06): the header in the clear, then the bits arithmetic-coded."""

from __future__ import annotations

import numpy as np

from facelab import codec
from facelab.bitstream import Header
from facelab.entropy import decode_bits, encode_bits
from facelab.model import FaceCodecNet


def write_code(code: np.ndarray, header: Header, model: FaceCodecNet) -> bytes:
    """The file of a (C, h, w) +-1 code under the adaptive context model of `facelab.entropy`."""
    return header.pack() + encode_bits(code > 0)


def write_file(model: FaceCodecNet, image: np.ndarray, header: Header) -> bytes:
    """The file of an image: its deterministic binary code, context-coded."""
    return write_code(codec.encode_code(model, image), header, model)


def read_file(model: FaceCodecNet, header: Header, payload: bytes) -> np.ndarray:
    """The image of the decoded bits."""
    code = decode_bits(payload, header.code_shape).view(np.int8) * np.int8(2) - np.int8(1)
    return codec.decode_code(model, code, (header.height, header.width))
