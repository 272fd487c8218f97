"""Bounded .xz decompression: never more output than the caller allows, so a small file cannot expand into gigabytes.

`lzma.decompress` returns whatever a stream holds; a few hundred kilobytes of zeros can hold gigabytes.
Here the caller says how many bytes it expects (from a header it has checked), the decompressor stops
there, and a stream that holds more, less, or ends early is a `BitstreamError`.
"""

from __future__ import annotations

import lzma

from facelab.errors import BitstreamError

XZ_MAGIC = b"\xfd7zXZ\x00"
MEMORY_LIMIT = 128 << 20
"""Most memory liblzma may use, i.e. the largest dictionary accepted; facelab and `xz -9e` use 64 MiB at most."""


def _decompressor() -> lzma.LZMADecompressor:
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=MEMORY_LIMIT)


def _inflate(decompressor: lzma.LZMADecompressor, data: bytes, max_length: int) -> bytes:
    """One bounded decompression step, with liblzma's errors said as facelab's."""
    try:
        return decompressor.decompress(data, max_length)
    except lzma.LZMAError as exc:
        if "memory usage limit" in str(exc).lower():
            raise BitstreamError(
                f"refusing to decode: the .xz stream needs more than {MEMORY_LIMIT >> 20} MiB of decoder memory"
            ) from None
        raise BitstreamError(f"corrupt .xz stream ({exc})") from None


def inflate_start(data: bytes, size: int) -> tuple[bytes, bool]:
    """At most the first `size` bytes of the stream in `data` (which may be only the file's start), and whether
    the stream ended within them."""
    decompressor = _decompressor()
    out = _inflate(decompressor, data, size)
    return out, decompressor.eof


def inflate_exact(data: bytes, size: int) -> bytes:
    """The whole stream in `data`, which must hold exactly `size` bytes and end, its integrity check passed,
    where `data` ends."""
    decompressor = _decompressor()
    out = _inflate(decompressor, data, size)
    if len(out) < size:
        if decompressor.eof:
            raise BitstreamError(
                f"code length mismatch: the stream holds {len(out)} bytes where the header implies {size}"
            )
        raise BitstreamError("truncated .xz stream: the file ends before the end-of-stream marker")
    if not decompressor.eof and _inflate(decompressor, b"", 1):
        raise BitstreamError(f"corrupt file: the stream holds more than the {size} bytes its header implies")
    if not decompressor.eof:
        raise BitstreamError("truncated .xz stream: the file ends before the end-of-stream marker")
    if decompressor.unused_data:
        raise BitstreamError("corrupt file: data after the end of the .xz stream")
    return out
