"""The paper's coder: the header and the packed bits inside one `.xz` (LZMA2) stream."""

from __future__ import annotations

import numpy as np

from facelab import codec
from facelab.bitstream import Header, pack_code, unpack_code
from facelab.model import FaceCodecNet


def write_code(code: np.ndarray, header: Header, model: FaceCodecNet) -> bytes:
    """The file of a (C, h, w) +-1 code: `xz -9e` of the header and the bits."""
    return codec.xz_compress(header.pack() + pack_code(code))


def write_file(model: FaceCodecNet, image: np.ndarray, header: Header) -> bytes:
    """The file of an image: its deterministic binary code, packed and compressed with LZMA."""
    return write_code(codec.encode_code(model, image), header, model)


def read_file(model: FaceCodecNet, header: Header, payload: bytes) -> np.ndarray:
    """The image of the packed bits inflated from the stream."""
    return codec.decode_code(model, unpack_code(payload, header.code_shape), (header.height, header.width))
