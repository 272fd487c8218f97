"""The learned-rate models' real files against their trained estimate, and their decoding time on one thread.

    python scripts/bench_learned_rate.py [MODEL ...] [--faces N]

Codes N CelebA validation faces (default 32, spread over the 569; people never trained on) with each model (default:
every shipped learned-rate model) and prints, summed over the faces, the real payload (the file without its header:
check, range-coded bits and CRC), the float bit model's estimate (what training minimised) and the exact integer
model's, then the median and largest decoding time of a file on one thread.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from facelab import codec
from facelab.data.template_faces import validation_sample
from facelab.learned_rate import estimated_bits
from facelab.recipes import LEARNED
from facelab.weights import load_model


def measure(name: str, faces: list[np.ndarray]) -> str:
    """One line: payload bytes against both estimates, and decoding times, for model `name` on `faces`."""
    model = load_model(name)
    real = estimate = exact = 0.0
    times = []
    for face in faces:
        code = codec.encode_code(model, face)
        with torch.no_grad():
            estimate += float(model.bit_model.bits(torch.from_numpy(code).float()[None])) / 8
        exact += estimated_bits(model.integer_bit_model(), code) / 8
        data = codec.compress(face, model)
        real += len(data) - len(codec.code_header("learned", *face.shape[:2], model).pack())
        start = time.perf_counter()
        codec.decompress(data, model)
        times.append(time.perf_counter() - start)
    return (f"{name}: {len(faces)} faces, payload {real:,.0f} B, float estimate {estimate:,.0f} B "
            f"({real / estimate - 1:+.2%}), integer estimate {exact:,.0f} B; decode median "
            f"{np.median(times) * 1000:.0f} ms, largest {max(times) * 1000:.0f} ms (1 thread)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(LEARNED))
    parser.add_argument("--faces", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    faces = validation_sample(args.faces)
    for name in args.models:
        print(measure(name, faces))


if __name__ == "__main__":
    main()
