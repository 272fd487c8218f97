"""The facelab file header and the packing of {-1, +1} codes into bits.

Two header layouts. Format 4, the compact one, is what the hyperprior coder (.flh) writes, where a face is a few
hundred bytes and format 3 framed it in 72 (a 46-byte header, a length, a second range coder flush, a second CRC),
a fifth of the file at 0.25 bpp; format 4 takes 34:
    magic   2s  b"\xfa\xce"
    version B   4              coder   B   the coder's id in CODERS
    height, width, code_channels   unsigned LEB128 varints (one byte each up to 127)
    name_len B  then the model's name (UTF-8) and the first 4 bytes of its weights hash
and the file ends with a CRC-32 of every byte before it (header and payload): the container checks it before
anything is decoded, so one checksum guards what format 3 guarded with two. The code's height and width are
ceil(H / block) and ceil(W / block) of the coder's block, not stored.

Format 1-3 (what the paper's .xz, the context coder's .flc and the learned coder's .flr still write; every
earlier file is still read), big-endian, 25 bytes plus the model identifier:
    magic   4s  b"FLAB"
    version B   a file from a newer facelab is refused with a clear message
    coder   B   the coder's id in CODERS: 0 = the paper's LZMA (.xz), 1 = facelab's context-adaptive arithmetic
                coder (.flc), 2 = a scale hyperprior's own range coder (.flh), 3 = the paper's architecture with
                a learned rate, range-coded under its own exact bit model (.flr)
    height  I   image height in pixels          width  I   image width in pixels
    code_channels H  channels of the code (128)     code_h H   ceil(H / block) code_w H  ceil(W / block)
    id_len  B   then id_len bytes of the model identifier '<name>:<weights hash>' (UTF-8)
    crc     I   CRC-32 of every header byte before it (format 2 on)
The CRC makes a damaged size or model field an error instead of a wrong image; format 1 files,
which lack it, are still read. Format 3 changed only hyperprior files (.flh): their entropy-model indexes are
computed in exact integer arithmetic (`facelab.exact`), so they decode to the same latents on every machine, and
the payload carries a checksum of those latents; format 2 .flh files decode as before, with float indexes. Every
size is checked against `facelab.limits` before a caller allocates anything for the code.
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
COMPACT_MAGIC = b"\xfa\xce"
FORMAT_VERSION = 4
"""The newest format this facelab reads; each coder writes the format its `Coder.version` names."""

COMPACT_VERSION = 4
"""The first format with the compact header and the file-wide CRC-32."""

MODEL_HASH_BYTES = 4
"""Bytes of the weights hash a compact header keeps: enough to tell a file's model from any other shipped one."""


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
    version: int


CODERS = {coder.name: coder for coder in (
    Coder("xz", 0, ".xz", "binary", 8, "the paper's LZMA over the packed bits", "facelab.coders.xz", 3),
    Coder("context", 1, ".flc", "binary", 8, "facelab's context-adaptive arithmetic coder over the bits",
          "facelab.coders.context", 3),
    Coder("hyperprior", 2, ".flh", "hyperprior", 16, "a scale hyperprior's range coder (lesson 07's models)",
          "facelab.coders.hyperprior", 4),
    Coder("learned", 3, ".flr", "learned-rate", 8,
          "the paper's architecture with a learned rate: its own bit model's range coder", "facelab.coders.learned",
          3),
)}
"""Every coder, by name: the one place that lists them (header ids, suffixes, which models each codes, the
module of `facelab.coders` that writes and reads its files, and the format its files are written in)."""


def coders_for(family: str) -> tuple[str, ...]:
    """Names of the coders that code models of `family`; the first is its default."""
    return tuple(name for name, coder in CODERS.items() if coder.family == family)


_FIXED = struct.Struct(">4sBBIIHHHB")
_CRC = struct.Struct(">I")
MAX_HEADER_BYTES = _FIXED.size + 255 + _CRC.size
"""The longest header of either layout (the compact one is at most 4 + 3 * 5 + 1 + 255 + 4 = 279 bytes): a reader
that wants only the header never needs more bytes than this."""


@dataclass(frozen=True)
class Header:
    """What a decoder must know before it reads the code; `version` 0 means the format its coder writes."""

    coder: str
    height: int
    width: int
    code_channels: int
    code_h: int
    code_w: int
    model_id: str
    version: int = 0

    def __post_init__(self) -> None:
        if not self.version:
            object.__setattr__(self, "version", CODERS[self.coder].version)

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

    @property
    def compact(self) -> bool:
        """Whether this header is format 4's compact one (and its file ends with a CRC-32 of all before it)."""
        return self.version >= COMPACT_VERSION

    def written_by(self, model_id: str) -> bool:
        """Whether a model of identifier '<name>:<weights hash>' wrote this file (a compact header keeps the
        hash's first MODEL_HASH_BYTES bytes)."""
        name, _, digest = self.model_id.partition(":")
        model_name, _, model_digest = model_id.partition(":")
        return name == model_name and (model_digest.startswith(digest) if self.compact else digest == model_digest)

    def pack(self) -> bytes:
        if self.compact:
            return self._pack_compact()
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

    def _pack_compact(self) -> bytes:
        name, _, digest = self.model_id.partition(":")
        encoded = name.encode()
        if len(encoded) > 255:
            raise BitstreamError("model name longer than 255 bytes")
        try:
            model_hash = bytes.fromhex(digest)[:MODEL_HASH_BYTES]
        except ValueError:
            raise BitstreamError(f"model identifier '{self.model_id}' has no hexadecimal weights hash") from None
        if len(model_hash) < MODEL_HASH_BYTES:
            raise BitstreamError(f"model identifier '{self.model_id}' has a weights hash shorter than "
                                 f"{MODEL_HASH_BYTES} bytes")
        return (COMPACT_MAGIC + bytes((self.version, CODERS[self.coder].id)) + varint(self.height)
                + varint(self.width) + varint(self.code_channels) + bytes((len(encoded),)) + encoded + model_hash)


def varint(value: int) -> bytes:
    """An unsigned integer as LEB128: 7 bits a byte, low first, the top bit set on all but the last."""
    if value < 0:
        raise BitstreamError(f"a varint cannot hold {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


VARINT_BYTES = 5
"""The longest varint facelab reads: 35 bits, more than any size `facelab.limits` lets through."""


def read_varint(data: bytes, offset: int, field: str) -> tuple[int, int]:
    """The LEB128 integer at `offset` and the offset after it; a clear error when it is cut off or too long."""
    value = 0
    for count in range(VARINT_BYTES):
        if offset + count >= len(data):
            raise BitstreamError(f"truncated file: it ends inside the {field}")
        byte = data[offset + count]
        value |= (byte & 0x7F) << (7 * count)
        if not byte & 0x80:
            return value, offset + count + 1
    raise BitstreamError(f"corrupt file: the {field} runs past {VARINT_BYTES} bytes")


def unpack_header(data: bytes) -> tuple[Header, bytes]:
    """Parse and check a header of either layout; return it and the bytes that follow it (for a compact header,
    the payload and the file's CRC-32, which `facelab.container` checks)."""
    if data.startswith(COMPACT_MAGIC):
        return _unpack_compact(data)
    if len(data) < _FIXED.size:
        raise BitstreamError(f"truncated file: {len(data)} bytes is shorter than a facelab header")
    magic, version, coder, height, width, code_channels, code_h, code_w, id_len = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError("not a facelab bitstream (wrong magic bytes)")
    if version > FORMAT_VERSION:
        raise BitstreamError(f"file uses facelab format {version}; this facelab reads up to {FORMAT_VERSION}: upgrade")
    if version < 1 or version >= COMPACT_VERSION:
        raise BitstreamError(f"corrupt header: format {version} does not use this header")
    end = _FIXED.size + id_len
    if version >= 2:
        if len(data) < end + _CRC.size:
            raise BitstreamError("truncated file: it ends inside the header")
        if _CRC.unpack_from(data, end)[0] != zlib.crc32(data[:end]):
            raise BitstreamError("corrupt header: checksum mismatch")
    elif len(data) < end:
        raise BitstreamError("truncated file: header ends inside the model identifier")
    try:
        model_id = data[_FIXED.size:end].decode()
    except UnicodeDecodeError:
        raise BitstreamError("corrupt header: model identifier is not UTF-8") from None
    header = Header(coder_name(coder), height, width, code_channels, code_h, code_w, model_id, version)
    check_sizes(header)
    return header, data[end + (_CRC.size if version >= 2 else 0):]


def coder_name(coder_id: int) -> str:
    """The coder of a header's id byte, or BitstreamError."""
    names = {c.id: name for name, c in CODERS.items()}
    if coder_id not in names:
        raise BitstreamError(f"unknown entropy coder id {coder_id}")
    return names[coder_id]


def _unpack_compact(data: bytes) -> tuple[Header, bytes]:
    """Parse and size-check a format 4 header (its CRC-32 is the file's, checked by the container)."""
    if len(data) < len(COMPACT_MAGIC) + 2:
        raise BitstreamError(f"truncated file: {len(data)} bytes is shorter than a facelab header")
    version, coder = data[2], data[3]
    if version > FORMAT_VERSION:
        raise BitstreamError(f"file uses facelab format {version}; this facelab reads up to {FORMAT_VERSION}: upgrade")
    if version < COMPACT_VERSION:
        raise BitstreamError(f"corrupt header: format {version} does not use the compact header")
    name = coder_name(coder)
    height, offset = read_varint(data, 4, "header's height")
    width, offset = read_varint(data, offset, "header's width")
    code_channels, offset = read_varint(data, offset, "header's channel count")
    if offset >= len(data):
        raise BitstreamError("truncated file: it ends inside the header")
    end = offset + 1 + data[offset] + MODEL_HASH_BYTES
    if len(data) < end:
        raise BitstreamError("truncated file: it ends inside the header's model identifier")
    try:
        model_name = data[offset + 1:end - MODEL_HASH_BYTES].decode()
    except UnicodeDecodeError:
        raise BitstreamError("corrupt header: model name is not UTF-8") from None
    block = CODERS[name].block
    header = Header(name, height, width, code_channels, math.ceil(height / block), math.ceil(width / block),
                    f"{model_name}:{data[end - MODEL_HASH_BYTES:end].hex()}", version)
    check_sizes(header)
    return header, data[end:]


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
