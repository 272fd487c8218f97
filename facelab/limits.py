"""The largest image facelab handles: one rule for the compressor (images in) and the decoder (headers in).

A header's sizes are checked against it before anything is allocated, so no file, however small,
makes facelab do more work or hold more memory than compressing the largest allowed image does.
"""

from __future__ import annotations

MAX_PIXELS = 64_000_000
"""Most pixels in an image (64 megapixels)."""

CODE_VALUES_PER_PIXEL = 2.1
"""Most code values per pixel: the paper's 128 bits per 8x8 block (2 per pixel), plus 5% for the padding
of the last block row and column. It also bounds the code of a very thin image, whose blocks are mostly
padding, and of a model with more channels."""


def max_code_values() -> int:
    """The largest code (channels x blocks) facelab encodes or decodes, read at call time so tests can lower it."""
    return int(MAX_PIXELS * CODE_VALUES_PER_PIXEL)


def size_problem(height: int, width: int, channels: int) -> str | None:
    """Why an image of height x width coded with `channels` code channels is over the limits, or None when it is not."""
    return pixel_problem(height, width) or code_problem(height, width, channels)


def pixel_problem(height: int, width: int) -> str | None:
    """Why an image of height x width has too many pixels, or None."""
    if height * width <= MAX_PIXELS:
        return None
    return (f"{width}x{height} is {height * width / 1e6:.1f} megapixels, over facelab's "
            f"{MAX_PIXELS / 1e6:g}-megapixel limit")


def code_problem(height: int, width: int, channels: int) -> str | None:
    """Why the code of a height x width image with `channels` code channels is too large, or None."""
    values = channels * -(-height // 8) * -(-width // 8)
    if values <= max_code_values():
        return None
    return (f"the code of a {width}x{height} image with {channels} channels has {values:,} values, over facelab's "
            f"limit of {max_code_values():,} ({CODE_VALUES_PER_PIXEL} per pixel of a "
            f"{MAX_PIXELS / 1e6:g}-megapixel image)")
