"""What a classic codec's file costs before it says anything about the face: its container and its smallest file.

At 0.15 bpp a 112x96 face is 202 bytes, so a codec whose container alone takes a few hundred bytes cannot reach
the low rates at all. `container_bytes` splits a file into the codec's own bitstream and the wrapping around it
(the boxes of AVIF and HEIC, WebP's RIFF chunk headers, JPEG's JFIF segment); `overhead_table` adds each codec's
smallest file of a flat grey image (the fixed cost: container, headers and a picture with nothing in it) and of a
given face. Lesson 06 shows the table.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facelab import baselines
from facelab.errors import BitstreamError
from facelab.rate import bpp

PAYLOAD_BOXES = (b"mdat", b"jp2c", b"jxlc", b"jxlp")
"""ISO-BMFF-style boxes that hold the coded picture (AVIF and HEIC's mdat, JP2's and JPEG XL's codestream boxes)."""

FLAT_GREY = 128
"""The value of every pixel of the flat image whose smallest file is a codec's fixed cost."""


def _box_container(data: bytes) -> int:
    """Bytes of an ISO-BMFF-style file (AVIF, HEIC, JP2, JPEG XL's container) outside its payload boxes' contents."""
    payload, offset = 0, 0
    while offset < len(data):
        if offset + 8 > len(data):
            raise BitstreamError(f"a box header is cut off at byte {offset} of {len(data)}")
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        header = 8
        if size == 1:
            if offset + 16 > len(data):
                raise BitstreamError(f"a large box header is cut off at byte {offset} of {len(data)}")
            size, header = struct.unpack(">Q", data[offset + 8:offset + 16])[0], 16
        elif size == 0:
            size = len(data) - offset
        if size < header or offset + size > len(data):
            raise BitstreamError(f"box {kind!r} at byte {offset} claims {size} bytes, beyond the file's {len(data)}")
        if kind in PAYLOAD_BOXES:
            payload += size - header
        offset += size
    return len(data) - payload


def _riff_container(data: bytes) -> int:
    """Bytes of a RIFF file (WebP) outside its VP8 / VP8L chunks' contents."""
    payload, offset = 0, 12
    while offset + 8 <= len(data):
        kind, size = struct.unpack("<4sI", data[offset:offset + 8])
        if kind in (b"VP8 ", b"VP8L"):
            payload += size
        offset += 8 + size + size % 2
    return len(data) - payload


def _jpeg_container(data: bytes) -> int:
    """Bytes of a JPEG file in its application (APPn, e.g. JFIF) and comment segments, up to the first scan."""
    container, offset = 0, 2
    while offset + 4 <= len(data) and data[offset] == 0xFF:
        marker = data[offset + 1]
        length = struct.unpack(">H", data[offset + 2:offset + 4])[0]
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            container += 2 + length
        if marker == 0xDA:
            break
        offset += 2 + length
    return container


def container_bytes(data: bytes) -> int:
    """Bytes of a classic codec's file outside the codec's own bitstream: the boxes around AVIF's and HEIC's coded
    picture, WebP's RIFF headers, JPEG's APPn segments; 0 for a bare JPEG 2000 or JPEG XL codestream."""
    if data[:2] == b"\xff\xd8":
        return _jpeg_container(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _riff_container(data)
    if data[:4] == b"\xff\x4f\xff\x51" or data[:2] == b"\xff\x0a":
        return 0
    if data[4:8] in (b"ftyp", b"jP  ", b"JXL "):
        return _box_container(data)
    raise BitstreamError(f"not a file of a known classic codec (starts {data[:12].hex()})")


@dataclass(frozen=True)
class Overhead:
    """A codec's fixed cost at one image size: its smallest file of a flat grey image (bytes), the container
    bytes in it, and its smallest file of a face (bytes)."""

    codec: str
    flat_bytes: int
    container_bytes: int
    face_bytes: int


def overhead(face: np.ndarray, codec: str) -> Overhead:
    """`codec`'s smallest files of a flat grey image of the face's size and of the face, and that container."""
    flat = np.full_like(face, FLAT_GREY)
    smallest = baselines.KNOBS[codec].smallest_file
    flat_file = baselines.encode(flat, codec, smallest)
    return Overhead(codec, len(flat_file), container_bytes(flat_file), len(baselines.encode(face, codec, smallest)))


def overhead_table(face: np.ndarray, codecs: Sequence[str] | None = None) -> tuple[list[str], list[list]]:
    """Each installed codec's `overhead` on this face, as (header, rows) for `facelab.evaluation.report.markdown`;
    bpp over the face's own pixel count (at 112x96, bytes * 8 / 10,752)."""
    height, width = face.shape[:2]
    header = ["codec", "container (bytes)", "smallest file, flat grey (bytes)", "flat grey bpp",
              "smallest file of this face (bytes)", "this face bpp"]
    rows = []
    for codec in baselines.installed(codecs or baselines.CODECS):
        cost = overhead(face, codec)
        rows.append([codec, cost.container_bytes, cost.flat_bytes, float(bpp(cost.flat_bytes, height, width)),
                     cost.face_bytes, float(bpp(cost.face_bytes, height, width))])
    return header, rows
