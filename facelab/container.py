"""Opening facelab files: which container, its checked header, and the payload, bounded by what the header implies.

An `.xz` file is a standard .xz stream holding header and packed code; a `.flc` file is the header in the
clear, then the arithmetic-coded code; a `.flh` file (format 4) is the compact header, the payload and a CRC-32 of
both. Nothing is decompressed or allocated for the code before the header has passed its checksum (for format 4,
the file's) and `facelab.limits`, and the payload is then read no further than the header implies, so a file of
a few bytes cannot make facelab allocate gigabytes.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from facelab import limits
from facelab.bitstream import COMPACT_MAGIC, MAGIC, MAX_HEADER_BYTES, Header, unpack_header
from facelab.errors import BitstreamError
from facelab.xz import XZ_MAGIC, inflate_exact, inflate_start

HEAD_BYTES = 64 << 10
"""What `file_header` reads of a file: far more than the compressed form of the longest header needs."""


def max_context_payload(code_bytes: int) -> int:
    """Longest arithmetic-coded payload of a code of `code_bytes` packed bytes: the coder spends at most about
    one bit per bit, plus the learning cost of its 144 counters (a few hundred bytes) and the checksum."""
    return code_bytes + code_bytes // 32 + 1024


def max_learned_payload(code_bytes: int) -> int:
    """Longest payload of the learned coder: its probabilities are at least 2^-16, so a bit costs at most 16 bits,
    plus the check and the CRC."""
    return 16 * code_bytes + 1024


def max_payload(header: Header) -> int:
    """Longest payload after a clear header: the context or learned coder's bound, or for a hyperprior's range coder
    a generous 4 bytes per latent value plus 64 KiB of side information and checksum."""
    if header.coder == "hyperprior":
        return 4 * header.code_channels * header.code_h * header.code_w + (64 << 10)
    if header.coder == "learned":
        return max_learned_payload(header.code_bytes)
    return max_context_payload(header.code_bytes)


def max_file_bytes() -> int:
    """Size of the largest file facelab can write (the largest code at the learned coder's worst, plus headers)."""
    return MAX_HEADER_BYTES + max_learned_payload(-(-limits.max_code_values() // 8)) + (64 << 10)


def peek_header(data: bytes) -> Header:
    """The header of either container from the file's first bytes; nothing after the header is decompressed."""
    return _open_header(data)[0]


def _open_header(data: bytes) -> tuple[Header, int]:
    """The header of either container and its length in bytes (inside the .xz stream for coder xz)."""
    if not data:
        raise BitstreamError("empty file: not a facelab bitstream")
    if data.startswith(XZ_MAGIC):
        inner, ended = inflate_start(data, MAX_HEADER_BYTES)
        try:
            header, rest = unpack_header(inner)
        except BitstreamError as exc:
            if not ended and len(inner) < MAX_HEADER_BYTES and str(exc).startswith("truncated"):
                raise BitstreamError("truncated .xz stream: the file ends before the end-of-stream marker") from None
            raise
        if header.coder != "xz":
            raise BitstreamError("corrupt file: an .xz stream whose header names another coder")
        return header, len(inner) - len(rest)
    if data.startswith(MAGIC) or data.startswith(COMPACT_MAGIC):
        header, rest = unpack_header(data)
        if header.coder == "xz":
            raise BitstreamError("corrupt file: an LZMA code outside its .xz container")
        return header, len(data) - len(rest)
    raise BitstreamError("not a facelab file: it is neither an .xz stream nor a .flc, .flh or .flr file")


def seal(body: bytes) -> bytes:
    """`body` and its CRC-32: a format 4 file (header and payload), or before format 4 a range-coded payload."""
    return body + zlib.crc32(body).to_bytes(4, "big")


def unseal(data: bytes, part: str = "its bytes") -> bytes:
    """`data` without its CRC-32, or BitstreamError naming `part` when the CRC does not hold: the file was cut short
    or damaged, and a range-coded payload would decode to noise without any other error."""
    if len(data) < 4 or zlib.crc32(data[:-4]).to_bytes(4, "big") != data[-4:]:
        raise BitstreamError(f"corrupt or truncated file: {part} do not match their checksum")
    return data[:-4]


def read_header(data: bytes) -> tuple[Header, bytes]:
    """Open either container and return its header and the packed (xz) or coded (context) payload.

    The header is checked first; the payload is then decompressed only up to the length it implies.
    """
    header, header_size = _open_header(data)
    if header.coder == "xz":
        return header, inflate_exact(data, header_size + header.code_bytes)[header_size:]
    payload = unseal(data)[header_size:] if header.compact else data[header_size:]
    longest = max_payload(header)
    if len(payload) > longest:
        raise BitstreamError(
            f"corrupt file: {len(payload):,} bytes of code are more than a {header.width}x{header.height} image's "
            f"code can take ({longest:,})"
        )
    return header, payload


def read_file(path: str | os.PathLike) -> bytes:
    """The bytes of a compressed file; one larger than any file facelab writes is refused without reading it."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_file_bytes():
        raise BitstreamError(f"{path} is {size:,} bytes, more than any facelab file ({max_file_bytes():,} at most)")
    return path.read_bytes()


def file_header(path: str | os.PathLike) -> Header:
    """The header of a compressed file, reading at most its first HEAD_BYTES."""
    with open(path, "rb") as handle:
        return peek_header(handle.read(HEAD_BYTES))
