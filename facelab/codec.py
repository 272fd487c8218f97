"""The facelab codec: image -> binary code -> bytes, and back.

`compress` runs the encoder and the deterministic binarizer, packs the 128 x H/8 x W/8 code
into bits behind a `Header` and entropy-codes it:
- coder "xz" (the paper's): header + bits inside a standard `.xz` (LZMA2) stream, so
  `xz -dc file.xz` shows the raw header and bits;
- coder "context" (beyond the paper): the header in the clear, then the bits arithmetic-coded
  with probabilities from a causal context model (`facelab.entropy`), in a `.flc` file;
- coder "hyperprior" (lesson 07): a scale hyperprior's (`facelab.hyperprior`) range-coded side information and
  latents and a 16-bit check of the decoded latents, then the CRC-32 of all that, after the header in the clear,
  in a `.flh` file. Its entropy model is chosen in exact integer arithmetic (`facelab.exact`, format 3), so a file
  decodes to the same latents on every machine, or fails its latent check with a one-line error; the pixels
  synthesised from them may differ by a level between CPU backends and GPUs;
- coder "learned" (issue 29): the paper's architecture trained with a rate term; a 16-bit check of the code, its
  bits range-coded under the model's own bit model in exact integer arithmetic (`facelab.learned_rate`), then the
  CRC-32 of both, after the header in the clear, in a `.flr` file.
The coders are listed once, in `facelab.bitstream.CODERS`, each with its module of `facelab.coders`, which writes
and reads its files; a model's family decides which it can use.
`decompress` opens either (`facelab.container`: the header's checksum and sizes are checked before
anything is allocated), checks the header against the model and decodes, tile by tile for large
images. Sizes are real byte counts, never estimates.
"""

from __future__ import annotations

import lzma
import math
from pathlib import Path

import numpy as np
import torch

from facelab import limits
from facelab.bitstream import CODERS, Header, coders_for
from facelab.coders import coder_module
from facelab.container import read_header
from facelab.errors import ImageError, ModelError
from facelab.image_io import check_array, load_image, to_tensor, to_uint8
from facelab.model import BLOCK, FaceCodecNet
from facelab.rate import bpp
from facelab.weights import SHIPPED, load_model, model_id, named_model
from facelab.xz import (
    XZ_MAGIC as XZ_MAGIC,  # re-exported: how an .xz facelab file begins
)

SUFFIXES = {name: coder.suffix for name, coder in CODERS.items()}
LZMA_PRESET = 9 | lzma.PRESET_EXTREME
"""The paper's LZMA at its strongest setting, as `xz -9e`."""

LZMA_MIN_DICT = 1 << 12
"""Smallest LZMA2 dictionary (4 KiB); preset 9's is 64 MiB."""

DECODE_TILE = 128
"""Code positions per side of a decoder tile (1024 x 1024 pixels, about 0.3 GB of activations)."""


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
    """Run the decoder: (C, h, w) code (any numeric dtype) -> (H, W, 3) uint8 image cropped to `size`.

    The decoder runs on tiles of DECODE_TILE x DECODE_TILE code positions, each with a margin of one
    position, which covers the reach of its 8x8 stride-4 transposed convolution: seams match the
    whole-image result (to float rounding) and memory stays that of one tile whatever the image's size.
    An image of one tile is decoded exactly as a whole.
    """
    device = next(model.parameters()).device
    model.eval()
    height, width = size
    _, code_h, code_w = code.shape
    image = np.empty((height, width, 3), np.uint8)
    for top in range(0, code_h, DECODE_TILE):
        for left in range(0, code_w, DECODE_TILE):
            bottom, right = min(top + DECODE_TILE, code_h), min(left + DECODE_TILE, code_w)
            y0, x0 = max(top - 1, 0), max(left - 1, 0)
            tile = np.ascontiguousarray(code[:, y0:min(bottom + 1, code_h), x0:min(right + 1, code_w)], np.float32)
            pixels = to_uint8(model.decode(torch.from_numpy(tile).unsqueeze(0).to(device)))
            rows = slice(BLOCK * top, min(BLOCK * bottom, height))
            cols = slice(BLOCK * left, min(BLOCK * right, width))
            dy, dx = BLOCK * (top - y0), BLOCK * (left - x0)
            image[rows, cols] = pixels[dy:dy + rows.stop - rows.start, dx:dx + cols.stop - cols.start]
    return image


def default_coder(model: torch.nn.Module) -> str:
    """The coder a model uses unless told otherwise: the first its family lists (the paper's LZMA for the paper's model)."""
    return coders_for(getattr(model, "family", "binary"))[0]


def check_coder(coder: str, model: torch.nn.Module) -> None:
    """Refuse a coder that does not code this model's family, naming the ones that do."""
    if coder not in CODERS:
        raise ValueError(f"unknown coder '{coder}': choose from {', '.join(CODERS)}")
    family = getattr(model, "family", "binary")
    if CODERS[coder].family != family:
        raise ModelError(f"model '{getattr(model, 'name', 'untrained')}' is a {family} model: it codes with "
                         f"{' or '.join(coders_for(family))}, not {coder}")


def code_header(coder: str, height: int, width: int, model: torch.nn.Module) -> Header:
    """The header of a height x width image coded by `coder` with `model`."""
    block = CODERS[coder].block
    return Header(coder, height, width, model.code_channels, math.ceil(height / block), math.ceil(width / block),
                  model_id(model))


def compress(
    image: np.ndarray | str | Path, model: torch.nn.Module | None = None, coder: str | None = None
) -> bytes:
    """Compress an image (array or path) to the bytes of a facelab file (coder: the model's default when None)."""
    model = model if model is not None else load_model()
    coder = coder or default_coder(model)
    check_coder(coder, model)
    image = as_image(image)
    problem = limits.size_problem(image.shape[0], image.shape[1], model.code_channels)
    if problem:
        raise ImageError(problem)
    return coder_module(coder).write_file(model, image, code_header(coder, *image.shape[:2], model))


def write_code(code: np.ndarray, height: int, width: int, model: FaceCodecNet, coder: str = "xz") -> bytes:
    """The file of a binary code of a height x width image: its header, then the bits under `coder`.

    `compress` writes every paper's-model file through it; an analysis that keeps only some of the code's
    channels (lesson 02) writes its files through it too, so their sizes are what facelab would write.
    """
    header = Header(coder, height, width, *code.shape, model_id(model))
    return coder_module(coder).write_code(code, header, model)


def decode_hint(header: Header, model: FaceCodecNet) -> str:
    """What to pass instead of `model`: the header's model when it is shipped and not the one that refused."""
    name = header.model_name
    if name != getattr(model, "name", "untrained") and (name in SHIPPED or name == "untrained"):
        return f"decode it with --model {name}"
    return "decode it with --model and the path of the checkpoint that wrote it"


def check_model(header: Header, model: FaceCodecNet) -> None:
    """Refuse to decode with a model other than the one the file was encoded with."""
    if header.code_channels != model.code_channels:
        raise ModelError(f"the code has {header.code_channels} channels but the model expects {model.code_channels}")
    if not header.written_by(model_id(model)):
        raise ModelError(
            f"this file was encoded with model '{header.model_id}', not the loaded '{model_id(model)}'; "
            f"{decode_hint(header, model)}"
        )


def decompress(data: bytes, model: FaceCodecNet | None = None) -> np.ndarray:
    """Decode the bytes of a facelab file to an (H, W, 3) uint8 image.

    Without a model, the one the header names is loaded if it is shipped; a header never names a path.
    """
    header, payload = read_header(data)
    model = model if model is not None else named_model(header.model_name)
    check_coder(header.coder, model)
    check_model(header, model)
    return coder_module(header.coder).read_file(model, header, payload)


def bits_per_pixel(data: bytes, height: int, width: int) -> float:
    """Real rate of a compressed file: 8 x its size in bytes over the image's pixel count."""
    return bpp(len(data), height, width)
