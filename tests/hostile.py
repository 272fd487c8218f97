"""Helpers for the hostile-input tests: hand-made facelab files, and guards that keep a bomb from allocating."""

from __future__ import annotations

import contextlib
import lzma
import resource
import struct
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from facelab.bitstream import Header
from facelab.entropy import encode_bits

GiB = 1 << 30


def flc_file(header: Header, code: np.ndarray) -> bytes:
    """A .flc file: `header` then the context-coded `code` (whatever size the header claims)."""
    return header.pack() + encode_bits(np.asarray(code) > 0)


def xz_file(inner: bytes, preset: int = 0) -> bytes:
    """`inner` (header and packed code, or anything) in an .xz stream; preset 0 compresses megabytes of zeros fast."""
    return lzma.compress(inner, format=lzma.FORMAT_XZ, preset=preset)


def format_1_header(header: Header) -> bytes:
    """The header as facelab format 1 wrote it: the same fields, no checksum."""
    model = header.model_id.encode()
    coder = {"xz": 0, "context": 1}[header.coder]
    return struct.pack(">4sBBIIHHHB", b"FLAB", 1, coder, header.height, header.width, header.code_channels,
                       header.code_h, header.code_w, len(model)) + model


def _virtual_memory() -> int | None:
    """This process's virtual memory size in bytes (Linux), or None where /proc does not say."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return None


@contextlib.contextmanager
def memory_guard(extra: int = GiB) -> Iterator[None]:
    """Let the code inside allocate at most `extra` more bytes of address space (Linux), so that a bomb that
    slipped through fails fast with MemoryError instead of taking the machine's memory."""
    size = _virtual_memory()
    if size is None or not sys.platform.startswith("linux"):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + extra if hard == resource.RLIM_INFINITY else min(size + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def python_peak() -> Iterator[list[int]]:
    """Peak bytes allocated through Python and NumPy inside the block (tracemalloc), as the list's one item."""
    result = [0]
    tracemalloc.start()
    try:
        yield result
    finally:
        result[0] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
