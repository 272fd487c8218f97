"""Rate: bits per pixel of a compressed file, the one formula every table, plot, lesson and command uses.

Kept free of torch so that `facelab info` starts quickly.
"""

from __future__ import annotations

import numpy as np

from facelab.errors import ImageError


def bpp(num_bytes: int | np.ndarray, height: int | np.ndarray, width: int | np.ndarray) -> float | np.ndarray:
    """Bits per pixel of a file of `num_bytes` bytes holding a height x width image (element-wise on arrays)."""
    pixels = np.asarray(height) * np.asarray(width)
    if np.any(pixels < 1):
        raise ImageError(f"bpp of an image with no pixels ({width}x{height})")
    value = 8.0 * np.asarray(num_bytes) / pixels
    return float(value) if np.ndim(value) == 0 else value
