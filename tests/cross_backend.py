"""Decode facelab files the way another machine would: run as a script in a second process with oneDNN off and one
thread (`python cross_backend.py FOLDER`), it decodes every `.flh` in FOLDER and writes, per file, the entropy-model
indexes it chose (exact and float) and the image, for the test to compare with the encoding process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from facelab.bitstream import Header
from facelab.codec import decompress
from facelab.container import read_header
from facelab.errors import BitstreamError
from facelab.hyperprior import hyper_shape, latent_shape
from facelab.weights import load_model


def side_information(model: torch.nn.Module, header: Header, payload: bytes) -> torch.Tensor:
    """The decoded side information z_hat of a payload: format 4's stream starts with it; format 3's first string is
    it, after its 4-byte length."""
    if header.compact:
        return model.side_information(payload, (header.height, header.width))[1]
    z_length = int.from_bytes(payload[:4], "big")
    return model.entropy_bottleneck.decompress([payload[4:4 + z_length]], hyper_shape(header.height, header.width))


def indexes(model: torch.nn.Module, data: bytes) -> dict[str, np.ndarray]:
    """The exact and float entropy-model indexes, and the float scales, a decoder here chooses for a file."""
    header, payload = read_header(data)
    with torch.inference_mode():
        z_hat = side_information(model, header, payload)
        size = latent_shape(header.height, header.width)
        return {"exact": model._indexes(z_hat, size).numpy(), "float": model._indexes(z_hat, size, exact=False).numpy(),
                "scales": model._scales(z_hat, size).numpy()}


def measure(folder: Path) -> None:
    """Decode every file of FOLDER/<model>/ with that model; write FOLDER/<model>/<file>.decoded.npz."""
    for model_dir in sorted(path for path in folder.iterdir() if path.is_dir()):
        model = load_model(model_dir.name)
        for path in sorted(model_dir.glob("*.flh")):
            data = path.read_bytes()
            try:
                image, error = decompress(data, model), ""
            except BitstreamError as exc:
                image, error = np.zeros((0,), np.uint8), str(exc)
            np.savez(path.with_suffix(".decoded.npz"), image=image, error=np.asarray(error), **indexes(model, data))


if __name__ == "__main__":
    torch.backends.mkldnn.enabled = False
    torch.set_num_threads(1)
    measure(Path(sys.argv[1]))
    print(json.dumps({"mkldnn": torch.backends.mkldnn.enabled, "threads": torch.get_num_threads()}))
