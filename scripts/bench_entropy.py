"""Compare the paper's LZMA (.xz) with facelab's context coder on real LFW codes.

    python scripts/bench_entropy.py [N] [--model natural] [--data ROOT]

Takes N LFW images (default 200, evenly spaced over the sorted list), encodes each with the model,
and codes its bits both ways: xz is `codec.xz_compress(np.packbits(bits))` (preset 9e), container
included, as in the paper's .xz; context is `facelab.entropy.encode_bits`. Both share the same
facelab header, left out here. Prints mean bytes and bits per pixel, the saving, and the
encode/decode time per image (wall clock and CPU time of this process; the decode is checked
bit-exact).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm.auto import tqdm

from facelab.codec import encode_code, xz_compress
from facelab.data.files import list_images
from facelab.data.lfw import find_lfw
from facelab.entropy import decode_bits, encode_bits
from facelab.errors import FacelabError
from facelab.image_io import load_image
from facelab.weights import load_model


def timed(function, *args):
    """(result, wall seconds, CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=200, help="LFW images to measure")
    parser.add_argument("--model", default="natural", help="shipped model name, checkpoint path or 'untrained'")
    parser.add_argument("--data", default=None, help="data root (default: $FACELAB_DATA)")
    args = parser.parse_args()

    model = load_model(args.model)
    people = sorted(p for p in find_lfw(args.data).images_dir.iterdir() if p.is_dir())
    paths = [path for person in people for path in list_images(person)]
    paths = [paths[i] for i in np.linspace(0, len(paths) - 1, min(args.count, len(paths))).astype(int)]

    rows = []
    for path in tqdm(paths, desc="coding LFW codes"):
        image = load_image(path)
        bits = encode_code(model, image) > 0
        xz = xz_compress(np.packbits(bits).tobytes())
        payload, enc_wall, enc_cpu = timed(encode_bits, bits)
        decoded, dec_wall, dec_cpu = timed(decode_bits, payload, bits.shape)
        if not np.array_equal(decoded, bits):
            raise SystemExit(f"decode mismatch on {path}")
        pixels = image.shape[0] * image.shape[1]
        rows.append((len(xz), len(payload), 8 / pixels, enc_wall, enc_cpu, dec_wall, dec_cpu))

    xz, ctx, per_byte, enc_wall, enc_cpu, dec_wall, dec_cpu = np.array(rows).T
    print(f"model {args.model}, {len(rows)} LFW images, code {bits.shape[0]}x{bits.shape[1]}x{bits.shape[2]}")
    print(f"xz       {xz.mean():8.1f} bytes  {np.mean(xz * per_byte):.4f} bpp")
    print(f"context  {ctx.mean():8.1f} bytes  {np.mean(ctx * per_byte):.4f} bpp")
    print(f"saving   {100 * (1 - ctx.sum() / xz.sum()):.1f}% (context smaller on {np.mean(ctx < xz):.0%} of images)")
    print(f"encode   {1000 * np.median(enc_wall):.1f} ms wall, {1000 * np.median(enc_cpu):.1f} ms CPU (median per image)")
    print(f"decode   {1000 * np.median(dec_wall):.1f} ms wall, {1000 * np.median(dec_cpu):.1f} ms CPU (median per image)")


if __name__ == "__main__":
    try:
        main()
    except FacelabError as error:
        raise SystemExit(f"error: {error}") from None
