"""Decode learned-rate files the way another machine would: run as a script in a second process with oneDNN off and
one thread (`python cross_backend_learned.py CHECKPOINT FOLDER`), it decodes every `.flr` in FOLDER and writes, per
file, the code it decoded and the probabilities it coded that code with, for the test to compare."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from facelab.container import read_header, unseal
from facelab.learned_rate import code_probabilities, decode_code
from facelab.weights import load_model


def measure(checkpoint: Path, folder: Path) -> None:
    """Write FOLDER/<file>.npz with the decoded code and its probabilities for every FOLDER/<file>.flr."""
    model = load_model(checkpoint)
    exact = model.integer_bit_model()
    for path in sorted(folder.glob("*.flr")):
        header, payload = read_header(path.read_bytes())
        code = decode_code(exact, unseal(payload, "the coded latents"), header.code_shape)
        np.savez(path.with_suffix(".npz"), code=code, probabilities=code_probabilities(exact, code)[1])


if __name__ == "__main__":
    torch.backends.mkldnn.enabled = False
    torch.set_num_threads(1)
    measure(Path(sys.argv[1]), Path(sys.argv[2]))
    print(json.dumps({"mkldnn": torch.backends.mkldnn.enabled, "threads": torch.get_num_threads()}))
