"""How long one face takes to decode, on one thread: the rate ladder by default (issue 28 asks under 0.5 s).

    python scripts/bench_decode.py                       # every rung of the ladder, with and without the face loss
    python scripts/bench_decode.py face-a100 ladder-9    # any shipped models
    python scripts/bench_decode.py --faces 64

Writes each of N CelebA validation faces (112x96, spread over the 569; people never trained on) with each model
through `facelab.codec`, then times `codec.decompress` of every file and prints the mean rate, the median and the
largest decoding time. Run it on an idle machine: other processes on the same cores lengthen every time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from facelab import codec
from facelab.data.template_faces import validation_sample
from facelab.rate import bpp
from facelab.recipes import LADDER, LADDER_PIXEL
from facelab.weights import load_model


def measure(name: str, faces: list[np.ndarray]) -> str:
    """One line for model `name`: mean bpp of its files of `faces`, median and largest decoding time."""
    model = load_model(name)
    files = [codec.compress(face, model) for face in faces]
    times = []
    for data in files:
        start = time.perf_counter()
        codec.decompress(data, model)
        times.append(time.perf_counter() - start)
    rate = np.mean([bpp(len(data), *face.shape[:2]) for data, face in zip(files, faces)])
    return (f"{name}: {rate:.3f} bpp, decode median {np.median(times) * 1000:.0f} ms, "
            f"largest {max(times) * 1000:.0f} ms ({len(faces)} faces, 1 thread)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=[*LADDER, *LADDER_PIXEL])
    parser.add_argument("--faces", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    faces = validation_sample(args.faces)
    for name in args.models:
        print(measure(name, faces), flush=True)


if __name__ == "__main__":
    main()
