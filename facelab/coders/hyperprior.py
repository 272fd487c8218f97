"""Lesson 07's coder: a scale hyperprior's range-coded side information and latents in a format 4 file (the
compact header, the payload, a CRC-32 of both); format 2 and 3 files, with their own payload CRC-32, still decode."""

from __future__ import annotations

import numpy as np
import torch

from facelab.bitstream import Header
from facelab.container import seal, unseal
from facelab.image_io import to_tensor, to_uint8


def write_file(model: torch.nn.Module, image: np.ndarray, header: Header) -> bytes:
    """The header, the model's payload (exact indexes, one range-coded stream, latent check) and the file's CRC-32."""
    model.eval()
    payload = model.compress_image(to_tensor(image).to(next(model.parameters()).device))
    return seal(header.pack() + payload)


def read_file(model: torch.nn.Module, header: Header, payload: bytes) -> np.ndarray:
    """The image of a payload whose CRC-32 holds (the file's, checked by the container, or from before format 4
    the payload's own): a damaged range-coded string decodes to noise without any error, so it is refused first."""
    payload = payload if header.compact else unseal(payload, "the coded latents")
    model.eval()
    return to_uint8(model.decompress_image(payload, (header.height, header.width), header.version))
