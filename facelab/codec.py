"""The facelab codec: image -> binary code -> bytes, and back.

`compress` runs the encoder and the deterministic binarizer, packs the 128 x H/8 x W/8 code
into bits behind a `Header` and entropy-codes it:
- coder "xz" (the paper's): header + bits inside a standard `.xz` (LZMA2) stream, so
  `xz -dc file.xz` shows the raw header and bits;
- coder "context" (beyond the paper): the header in the clear, then the bits arithmetic-coded
  with probabilities from a causal context model (`facelab.entropy`), in a `.flc` file.
`decompress` tells the two apart by their first bytes, checks the header against the model
and decodes. Sizes are real byte counts, never estimates.
"""

from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np
import torch

from facelab.bitstream import Header, pack_code, unpack_code, unpack_header
from facelab.errors import BitstreamError, ModelError
from facelab.image_io import check_array, load_image, to_tensor, to_uint8
from facelab.model import FaceCodecNet
from facelab.weights import load_model, model_id

XZ_MAGIC = b"\xfd7zXZ\x00"
SUFFIXES = {"xz": ".xz", "context": ".flc"}
LZMA_PRESET = 9 | lzma.PRESET_EXTREME
"""The paper's LZMA at its strongest setting, as `xz -9e`."""

LZMA_MIN_DICT = 1 << 12
"""Smallest LZMA2 dictionary (4 KiB); preset 9's is 64 MiB."""


def xz_compress(data: bytes) -> bytes:
    """`data` as an .xz stream at preset 9e, with the dictionary cut to the data's size.

    A dictionary larger than the data finds no more matches, so the file has the size `xz -9e`
    gives; it only saves initialising 64 MiB for a 16 KB code (40 ms -> 2 ms per LFW face).
    """
    dict_size = min(64 << 20, max(LZMA_MIN_DICT, 1 << max(len(data) - 1, 1).bit_length()))
    filters = [{"id": lzma.FILTER_LZMA2, "preset": LZMA_PRESET, "dict_size": dict_size}]
    return lzma.compress(data, format=lzma.FORMAT_XZ, filters=filters)


def as_image(image: np.ndarray | str | Path) -> np.ndarray:
    """Accept a path or an (H, W, 3) uint8 array; return a checked array."""
    if isinstance(image, (str, Path)):
        return load_image(image)
    return check_array(image)


@torch.inference_mode()
def encode_code(model: FaceCodecNet, image: np.ndarray) -> np.ndarray:
    """Run the encoder and deterministic binarizer: (H, W, 3) uint8 -> (128, h, w) array of {-1, +1}."""
    device = next(model.parameters()).device
    model.eval()
    return model.encode(to_tensor(image).to(device))[0].cpu().numpy()


@torch.inference_mode()
def decode_code(model: FaceCodecNet, code: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Run the decoder: (128, h, w) code -> (H, W, 3) uint8 image cropped to `size`."""
    device = next(model.parameters()).device
    model.eval()
    return to_uint8(model.decode(torch.from_numpy(code).unsqueeze(0).to(device), size=size))


def compress(
    image: np.ndarray | str | Path, model: FaceCodecNet | None = None, coder: str = "xz"
) -> bytes:
    """Compress an image (array or path) to the bytes of a facelab file."""
    if coder not in SUFFIXES:
        raise ValueError(f"unknown coder '{coder}': choose from {', '.join(SUFFIXES)}")
    model = model if model is not None else load_model()
    image = as_image(image)
    code = encode_code(model, image)
    header = Header(coder, image.shape[0], image.shape[1], *code.shape, model_id(model))
    if coder == "xz":
        return xz_compress(header.pack() + pack_code(code))
    from facelab.entropy import encode_bits

    return header.pack() + encode_bits(code > 0)


def read_header(data: bytes) -> tuple[Header, bytes]:
    """Open either container and return its header and the packed (xz) or coded (context) payload."""
    if not data:
        raise BitstreamError("empty file: not a facelab bitstream")
    if data.startswith(XZ_MAGIC):
        try:
            data = lzma.decompress(data, format=lzma.FORMAT_XZ)
        except (EOFError, lzma.LZMAError) as exc:
            if isinstance(exc, EOFError) or "ended before" in str(exc):
                raise BitstreamError("truncated .xz stream: the file ends before the end-of-stream marker") from None
            raise BitstreamError(f"corrupt .xz stream ({exc})") from None
        header, payload = unpack_header(data)
        if header.coder != "xz":
            raise BitstreamError("corrupt file: an .xz stream whose header names another coder")
        return header, payload
    if data.startswith(b"FLAB"):
        header, payload = unpack_header(data)
        if header.coder == "xz":
            raise BitstreamError("corrupt file: an LZMA code outside its .xz container")
        return header, payload
    raise BitstreamError("not a facelab file: it is neither an .xz stream nor a .flc file")


def check_model(header: Header, model: FaceCodecNet) -> None:
    """Refuse to decode with a model other than the one the file was encoded with."""
    if header.bits != model.bits:
        raise ModelError(f"the code has {header.bits} channels but the model expects {model.bits}")
    if header.model_id != model_id(model):
        name = header.model_id.split(":")[0]
        raise ModelError(
            f"this file was encoded with model '{header.model_id}', not the loaded '{model_id(model)}'; "
            f"decode it with --model {name} (or that checkpoint's path)"
        )


def decompress(data: bytes, model: FaceCodecNet | None = None) -> np.ndarray:
    """Decode the bytes of a facelab file to an (H, W, 3) uint8 image."""
    header, payload = read_header(data)
    model = model if model is not None else load_model(header.model_id.split(":")[0])
    check_model(header, model)
    if header.coder == "xz":
        code = unpack_code(payload, header.code_shape)
    else:
        from facelab.entropy import decode_bits

        code = decode_bits(payload, header.code_shape).astype(np.float32) * 2 - 1
    return decode_code(model, code, (header.height, header.width))


def bits_per_pixel(data: bytes, height: int, width: int) -> float:
    """Real rate of a compressed file: 8 x its size in bytes over the image's pixel count."""
    return 8 * len(data) / (height * width)
