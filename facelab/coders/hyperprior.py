"""Lesson 07's coder: a scale hyperprior's range-coded side information and latents, then their CRC-32."""

from __future__ import annotations

import numpy as np
import torch

from facelab import codec
from facelab.bitstream import EXACT_HYPERPRIOR_VERSION, Header
from facelab.image_io import to_tensor, to_uint8


def write_file(model: torch.nn.Module, image: np.ndarray, header: Header) -> bytes:
    """The header in the clear, the model's payload (format 3: exact indexes, latent check) and its CRC-32."""
    model.eval()
    payload = model.compress_image(to_tensor(image).to(next(model.parameters()).device))
    return header.pack() + payload + codec.payload_crc(payload)


def read_file(model: torch.nn.Module, header: Header, payload: bytes) -> np.ndarray:
    """The image of a payload whose CRC-32 holds: a damaged range-coded string decodes to noise without any error,
    so it is refused before the range decoder sees it."""
    payload = codec.checked_payload(payload)
    model.eval()
    exact = header.version >= EXACT_HYPERPRIOR_VERSION
    return to_uint8(model.decompress_image(payload, (header.height, header.width), exact=exact))
