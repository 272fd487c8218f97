"""The facelab file header and the packing of {-1, +1} codes into bits.

Header (big-endian), 25 bytes plus the model identifier:
    magic   4s  b"FLAB"
    version B   FORMAT_VERSION; a file from a newer facelab is refused with a clear message
    coder   B   the coder's id in CODERS: 0 = the paper's LZMA (.xz), 1 = facelab's context-adaptive arithmetic
                coder (.flc), 2 = a scale hyperprior's own range coder (.flh), 3 = the paper's architecture with
                a learned rate, range-coded under its own exact bit model (.flr)
    height  I   image height in pixels          width  I   image width in pixels
    code_channels H  channels of the code (128)     code_h H   ceil(H / block) code_w H  ceil(W / block)
    id_len  B   then id_len bytes of the model identifier '<name>:<weights hash>' (UTF-8)
    crc     I   CRC-32 of every header byte before it (format 2 on)
The CRC makes a damaged size or model field an error instead of a wrong image; format 1 files,
which lack it, are still read. Format 3 changes only hyperprior files (.flh): their entropy-model indexes are
computed in exact integer arithmetic (`facelab.exact`), so they decode to the same latents on every machine, and
the payload carries a checksum of those latents; format 2 .flh files decode as before, with float indexes. Every size is checked against `facelab.limits` before a caller
allocates anything for the code.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from facelab import limits
from facelab.errors import BitstreamError

MAGIC = b"FLAB"
FORMAT_VERSION = 3

EXACT_HYPERPRIOR_VERSION = 3
"""The first format whose hyperprior files decode to the same latents on every machine."""


@dataclass(frozen=True)
class Coder:
    """An entropy coder of facelab files: its header id, file suffix, the model family it codes and its block."""

    name: str
    id: int
    suffix: str
    family: str
    block: int
    help: str
    module: str


CODERS = {coder.name: coder for coder in (
    Coder("xz", 0, ".xz", "binary", 8, "the paper's LZMA over the packed bits", "facelab.coders.xz"),
    Coder("context", 1, ".flc", "binary", 8, "facelab's context-adaptive arithmetic coder over the bits",
          "facelab.coders.context"),
    Coder("hyperprior", 2, ".flh", "hyperprior", 16, "a scale hyperprior's range coder (lesson 07's models)",
          "facelab.coders.hyperprior"),
    Coder("learned", 3, ".flr", "learned-rate", 8,
          "the paper's architecture with a learned rate: its own bit model's range coder", "facelab.coders.learned"),
)}
"""Every coder, by name: the one place that lists them (header ids, suffixes, which models each codes, and the
module of `facelab.coders` that writes and reads its files)."""


def coders_for(family: str) -> tuple[str, ...]:
    """Names of the coders that code models of `family`; the first is its default."""
    return tuple(name for name, coder in CODERS.items() if coder.family == family)


_FIXED = struct.Struct(">4sBBIIHHHB")
_CRC = struct.Struct(">I")
MAX_HEADER_BYTES = _FIXED.size + 255 + _CRC.size
"""The longest header: a reader that wants only the header never needs more bytes than this."""


@dataclass(frozen=True)
class Header:
    """What a decoder must know before it reads the code."""

    coder: str
    height: int
    width: int
    code_channels: int
    code_h: int
    code_w: int
    model_id: str
    version: int = FORMAT_VERSION

    @property
    def code_shape(self) -> tuple[int, int, int]:
        return (self.code_channels, self.code_h, self.code_w)

    @property
    def code_bytes(self) -> int:
        """Length of the packed code: one bit per code value, rounded up to whole bytes."""
        return math.ceil(self.code_channels * self.code_h * self.code_w / 8)

    @property
    def model_name(self) -> str:
        """The name part of the model identifier ('face' in 'face:0123456789ab')."""
        return self.model_id.split(":")[0]

    def pack(self) -> bytes:
        model = self.model_id.encode()
        if len(model) > 255:
            raise BitstreamError("model identifier longer than 255 bytes")
        if self.version < 2:
            raise BitstreamError("facelab writes format 2 and later only")
        fixed = _FIXED.pack(
            MAGIC, self.version, CODERS[self.coder].id, self.height, self.width,
            self.code_channels, self.code_h, self.code_w, len(model),
        )
        return fixed + model + _CRC.pack(zlib.crc32(fixed + model))


def unpack_header(data: bytes) -> tuple[Header, bytes]:
    """Parse and check a header; return it and the bytes that follow it."""
    if len(data) < _FIXED.size:
        raise BitstreamError(f"truncated file: {len(data)} bytes is shorter than a facelab header")
    magic, version, coder, height, width, code_channels, code_h, code_w, id_len = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError("not a facelab bitstream (wrong magic bytes)")
    if version > FORMAT_VERSION:
        raise BitstreamError(f"file uses facelab format {version}; this facelab reads up to {FORMAT_VERSION}: upgrade")
    if version < 1:
        raise BitstreamError(f"corrupt header: format version {version} does not exist")
    end = _FIXED.size + id_len
    if version >= 2:
        if len(data) < end + _CRC.size:
            raise BitstreamError("truncated file: it ends inside the header")
        if _CRC.unpack_from(data, end)[0] != zlib.crc32(data[:end]):
            raise BitstreamError("corrupt header: checksum mismatch")
    elif len(data) < end:
        raise BitstreamError("truncated file: header ends inside the model identifier")
    names = {c.id: name for name, c in CODERS.items()}
    if coder not in names:
        raise BitstreamError(f"unknown entropy coder id {coder}")
    try:
        model_id = data[_FIXED.size:end].decode()
    except UnicodeDecodeError:
        raise BitstreamError("corrupt header: model identifier is not UTF-8") from None
    header = Header(names[coder], height, width, code_channels, code_h, code_w, model_id, version)
    check_sizes(header)
    return header, data[end + (_CRC.size if version >= 2 else 0):]


def check_sizes(header: Header) -> None:
    """Refuse sizes that contradict each other or exceed what facelab compresses, before anything is allocated."""
    if header.height < 1 or header.width < 1 or header.code_channels < 1:
        raise BitstreamError(f"corrupt header: a {header.width}x{header.height} image with "
                             f"{header.code_channels} channels")
    block = CODERS[header.coder].block
    if header.code_h != math.ceil(header.height / block) or header.code_w != math.ceil(header.width / block):
        raise BitstreamError(
            f"corrupt header: code {header.code_h}x{header.code_w} does not fit a {header.height}x{header.width} image"
        )
    problem = limits.size_problem(header.height, header.width, header.code_channels)
    if problem:
        raise BitstreamError(f"refusing to decode: {problem} (as the header claims)")


def pack_code(code: np.ndarray) -> bytes:
    """(C, h, w) array of {-1, +1} -> bytes, one bit per value (+1 -> 1), channel-major order."""
    return np.packbits(code.reshape(-1) > 0).tobytes()


def unpack_code(payload: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of `pack_code`: bytes -> (C, h, w) int8 array of {-1, +1} (a quarter of float32's memory)."""
    count = int(np.prod(shape))
    if len(payload) != math.ceil(count / 8):
        raise BitstreamError(
            f"code length mismatch: {len(payload)} bytes for a {'x'.join(map(str, shape))} code "
            f"that needs {math.ceil(count / 8)}"
        )
    bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8), count=count).view(np.int8)
    bits *= 2
    bits -= 1
    return bits.reshape(shape)
