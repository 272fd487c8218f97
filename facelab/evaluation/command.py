"""`facelab evaluate`: the command line of the LFW evaluation (`configure`, `run`).

The work is `facelab.evaluation.evaluate`; everything lands under --output (default results/lfw): results.md,
a .md and .csv per table, rate_distortion.png, rate_accuracy.png and results.json with every number.
`--lfw-size 112x96` evaluates LFW aligned to the paper's 112x96 (`facelab.data.lfw_aligned`) instead of its files.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from facelab.baselines import CODECS, installed
from facelab.errors import FacelabError
from facelab.evaluation.context import PRECISIONS
from facelab.evaluation.experiment import CURVE_QUALITIES, MODELS, SCALES, evaluate
from facelab.evaluation.selection import LFW_SIZES


def _qualities(text: str) -> tuple[str, tuple[float, ...]]:
    """'jpeg=10,20,40' -> ('jpeg', (10, 20, 40)) for --curve-quality."""
    codec, _, values = text.partition("=")
    if codec not in CODECS or not values:
        raise argparse.ArgumentTypeError(f"expected CODEC=Q1,Q2,... with CODEC one of {', '.join(CODECS)}")
    try:
        return codec, tuple(float(value) for value in values.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"qualities must be numbers: {values!r}") from None


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `facelab evaluate`'s arguments."""
    where = parser.add_argument_group("what to evaluate")
    where.add_argument("--root", default=None, help="data root holding lfw/ (default: $FACELAB_DATA, else the cache)")
    where.add_argument("--images", default=None, metavar="DIR",
                       help="evaluate this image folder instead of LFW (identity = sub-folder name, if any)")
    where.add_argument("--lfw-size", choices=LFW_SIZES, default=LFW_SIZES[0],
                       help="LFW view: 250x250 = LFW's files as they are (default); 112x96 = faces aligned like "
                            "face-recognition work (and the paper), MTCNN landmarks -> the standard template, "
                            "made once and cached")
    where.add_argument("--limit", type=int, default=None, metavar="N",
                       help="only the first N images of a seeded order that keeps View-2 pairs whole "
                            "(see facelab.evaluation.selection)")
    where.add_argument("--seed", type=int, default=0, help="seed of that order (default 0)")
    where.add_argument("--models", nargs="+", default=list(MODELS),
                       help="facelab models, a Table 1 and a Table 2 row each: shipped names, .pt paths or 'untrained' "
                            f"(default {' '.join(MODELS)}; the first is the equal-bpp reference)")
    where.add_argument("--jpeg-qualities", nargs="*", type=int, default=[70, 80, 90],
                       help="JPEG quality factors of Table 2 (default: the paper's 70 80 90)")
    where.add_argument("--no-pairs", action="store_true", help="skip the LFW View-2 pairs protocol")
    beyond = parser.add_argument_group("beyond the paper (on a subset: --curve-limit)")
    beyond.add_argument("--curve-limit", type=int, default=500, metavar="N",
                        help="images for the curves and equal-bpp codecs: the first N of the same order (default 500)")
    beyond.add_argument("--no-curves", action="store_true", help="skip the rate-distortion / rate-accuracy curves")
    beyond.add_argument("--scales", nargs="+", type=float, default=list(SCALES),
                        help=f"facelab operating points: code the image at these fractions of its size "
                             f"(default {' '.join(map(str, SCALES))})")
    beyond.add_argument("--coders", nargs="+", choices=("xz", "context"), default=["xz", "context"],
                        help="entropy coders on the curves of the paper's models (default both; a hyperprior codes with its own)")
    beyond.add_argument("--curve-quality", action="append", type=_qualities, default=[], metavar="CODEC=Q1,Q2",
                        help="replace a codec's curve qualities, e.g. jpeg=10,30,50,70,90 (repeatable; defaults: "
                             + "; ".join(f"{c}={','.join(f'{q:g}' for q in qs)}" for c, qs in CURVE_QUALITIES.items())
                             + ")")
    beyond.add_argument("--curve-codecs", nargs="*", choices=CODECS, default=list(installed(CODECS)),
                        help="codecs on the curves (default all)")
    beyond.add_argument("--equal-bpp", nargs="*", choices=CODECS, default=list(installed(CODECS)),
                        help="codecs coded at each image's bpp under the first model (default all; none to skip)")
    how = parser.add_argument_group("how")
    how.add_argument("--output", default="results/lfw", help="results folder (default results/lfw)")
    how.add_argument("--threads", type=int, default=None,
                     help="torch threads (default: all cores when idle, fewer when the machine is busy)")
    how.add_argument("--workers", type=int, default=1,
                     help="processes measuring images side by side, one torch thread each (default 1: this one; "
                          "CPU only, ignored with a warning on a GPU); per-stage times then add up the workers'")
    how.add_argument("--facenet-precision", choices=PRECISIONS, default="auto",
                     help="FaceNet arithmetic: auto = bf16 on CPUs with native bfloat16 (cosine >= 0.9998 to fp32, "
                          "about 2.5x faster), else fp32; MTCNN is always fp32")
    how.add_argument("--batch-size", type=int, default=64, help="images per MTCNN / FaceNet batch (default 64)")
    how.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    how.add_argument("--cache", default=None, metavar="DIR",
                     help="per-image results cache (default <facelab cache>/evaluate); reruns reuse it")
    how.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Run `facelab evaluate`, print the tables and timings, and return the exit status."""
    if args.limit is not None and args.limit < 1:
        raise FacelabError(f"--limit must be at least 1, got {args.limit}")
    if args.workers < 1:
        raise FacelabError(f"--workers must be at least 1, got {args.workers}")
    qualities = {codec: CURVE_QUALITIES[codec] for codec in args.curve_codecs}
    qualities.update({codec: values for codec, values in args.curve_quality if codec in qualities})
    started = time.perf_counter()
    results = evaluate(output=args.output, root=args.root, images=args.images, lfw_size=args.lfw_size,
                       limit=args.limit, seed=args.seed,
                       models=tuple(args.models), jpeg_qualities=tuple(args.jpeg_qualities),
                       curves=not args.no_curves, curve_limit=args.curve_limit, scales=tuple(args.scales),
                       coders=tuple(args.coders), curve_qualities=qualities, equal_rate=tuple(args.equal_bpp),
                       pairs=not args.no_pairs, batch_size=args.batch_size, device=args.device,
                       threads=args.threads, workers=args.workers, progress=not args.no_progress, cache=args.cache,
                       precision=args.facenet_precision)
    print((Path(args.output) / "results.md").read_text())
    data = results["dataset"]
    print(f"evaluated {data['images']} images in {time.perf_counter() - started:.1f} s "
          f"({results['settings']['threads_used']} threads, {args.workers} worker process(es)); per stage: "
          + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in results["timings"].items()))
    print(f"results in {args.output}: {', '.join(results['files'])}")
    return 0

