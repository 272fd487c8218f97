"""The facelab file header and the packing of {-1, +1} codes into bits.

Header (big-endian), 21 bytes plus the model identifier:
    magic   4s  b"FLAB"
    version B   FORMAT_VERSION; a file from a newer facelab is refused with a clear message
    coder   B   0 = the paper's LZMA (.xz), 1 = facelab's context-adaptive arithmetic coder (.flc)
    height  I   image height in pixels          width  I   image width in pixels
    bits    H   code channels (128)             code_h H   ceil(H / 8)     code_w H  ceil(W / 8)
    id_len  B   then id_len bytes of the model identifier '<name>:<weights hash>' (UTF-8)
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from facelab.errors import BitstreamError

MAGIC = b"FLAB"
FORMAT_VERSION = 1
CODERS = {"xz": 0, "context": 1}
_FIXED = struct.Struct(">4sBBIIHHHB")


@dataclass(frozen=True)
class Header:
    """What a decoder must know before it reads the code."""

    coder: str
    height: int
    width: int
    bits: int
    code_h: int
    code_w: int
    model_id: str

    @property
    def code_shape(self) -> tuple[int, int, int]:
        return (self.bits, self.code_h, self.code_w)

    @property
    def code_bytes(self) -> int:
        """Length of the packed code: one bit per code value, rounded up to whole bytes."""
        return math.ceil(self.bits * self.code_h * self.code_w / 8)

    def pack(self) -> bytes:
        model = self.model_id.encode()
        if len(model) > 255:
            raise BitstreamError("model identifier longer than 255 bytes")
        fixed = _FIXED.pack(
            MAGIC, FORMAT_VERSION, CODERS[self.coder], self.height, self.width,
            self.bits, self.code_h, self.code_w, len(model),
        )
        return fixed + model


def unpack_header(data: bytes) -> tuple[Header, bytes]:
    """Parse and check a header; return it and the bytes that follow it."""
    if len(data) < _FIXED.size:
        raise BitstreamError(f"truncated file: {len(data)} bytes is shorter than a facelab header")
    magic, version, coder, height, width, bits, code_h, code_w, id_len = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError("not a facelab bitstream (wrong magic bytes)")
    if version > FORMAT_VERSION:
        raise BitstreamError(f"file uses facelab format {version}; this facelab reads up to {FORMAT_VERSION}: upgrade")
    names = {v: k for k, v in CODERS.items()}
    if coder not in names:
        raise BitstreamError(f"unknown entropy coder id {coder}")
    end = _FIXED.size + id_len
    if len(data) < end:
        raise BitstreamError("truncated file: header ends inside the model identifier")
    try:
        model_id = data[_FIXED.size:end].decode()
    except UnicodeDecodeError:
        raise BitstreamError("corrupt header: model identifier is not UTF-8") from None
    header = Header(names[coder], height, width, bits, code_h, code_w, model_id)
    if height < 1 or width < 1 or code_h != math.ceil(height / 8) or code_w != math.ceil(width / 8):
        raise BitstreamError(f"corrupt header: code {code_h}x{code_w} does not fit a {height}x{width} image")
    return header, data[end:]


def pack_code(code: np.ndarray) -> bytes:
    """(C, h, w) array of {-1, +1} -> bytes, one bit per value (+1 -> 1), channel-major order."""
    return np.packbits(code.reshape(-1) > 0).tobytes()


def unpack_code(payload: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of `pack_code`: bytes -> (C, h, w) float32 array of {-1, +1}."""
    count = int(np.prod(shape))
    if len(payload) != math.ceil(count / 8):
        raise BitstreamError(
            f"code length mismatch: {len(payload)} bytes for a {'x'.join(map(str, shape))} code "
            f"that needs {math.ceil(count / 8)}"
        )
    bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8), count=count)
    return (bits.astype(np.float32) * 2 - 1).reshape(shape)
