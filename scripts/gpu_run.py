"""One call on a borrowed GPU: train both families briefly, check files across devices, time training, train the ladder.

    python3 scripts/gpu_run.py --device cuda --stage /tmp/facelab-stage --output /tmp/facelab-gpu --bundle $OUT \
        --minutes 8                                                        # on the GPU machine (stage_gpu.py's calls)
    python scripts/gpu_run.py --device cpu --smoke --output /tmp/gpu-smoke     # the same path at toy sizes, here

(a) a few epochs of the paper's binary autoencoder (`face-a100`'s recipe) and of the scale hyperprior (`ladder-4`'s),
    both with the face loss, through `facelab.train.train`, then each scored on held-out CelebA faces: PSNR, real
    bits per pixel from `facelab.codec.compress` and FaceNet cosine to the original;
(b) every shipped model compresses faces on the device and on the CPU, and each file is decoded on both: a decode
    that raises or a device/CPU difference over `MAX_LEVELS` grey levels fails the run (exit status 1);
(c) the training throughput of each family on the device (the last epoch of (a), after warm-up);
(d) the hyperprior rate ladder (`facelab.recipes.LADDER_ORDER`, each rung with and without the face loss, each
    starting from the checkpoint just trained) with the minutes left, its steps scaled to fit, stopping before
    the budget ends with whole checkpoints in --output.
Every part runs even when an earlier one failed (device time is scarce); failures are listed and make the exit
status 1. `--stage` points at what `scripts/stage_gpu.py unpack` extracted: the data, and FaceNet in half
precision, installed as facenet-pytorch's CASIA-WebFace checkpoint in a private $TORCH_HOME, the local-path
override `facelab.faces` reads. `--bundle` packs the ladder's checkpoints into tar files of at most 15 MiB and
copies the report, for a device call's $OUT (at most 8 files of 16 MiB come back).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tarfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from facelab.catalog import SHIPPED, SHIPPED_DIR
from facelab.codec import bits_per_pixel, compress, decompress
from facelab.data.template_faces import TemplateFaces
from facelab.faces import USER_WEIGHTS, FaceEmbedder
from facelab.image_io import to_tensor, to_uint8
from facelab.metrics import cosine_similarity, psnr
from facelab.recipes import LADDER_ORDER, LADDER_PARENT, RECIPES, ladder_name, make_config
from facelab.train import train
from facelab.weights import load_model
from stage_gpu import FACENET_FILE

MAX_LEVELS = 2
"""The largest device/CPU difference in grey levels a decoded image may show: the latents must agree exactly, the
synthesis transform may round a level or two differently between backends."""

FAMILY_RECIPES = {"binary": "face-a100", "hyperprior": ladder_name(4, True)}
"""The recipe (a) trains for each family: the shipped face loss on each, from its shipped starting checkpoint."""

LADDER_SCALES = (8.0, 4.0, 2.0, 1.0, 0.5, 0.25)
"""Multipliers of each rung's steps per epoch, largest first: (d) takes the largest whose estimate fits."""

PLAN_SAFETY = 0.85
"""(d) plans the ladder for this fraction of the seconds left, so that estimates a little short still end in time."""

RESERVE_S = 20.0
"""Seconds kept at the end for the report and the bundles."""

BUNDLE_LIMIT = 15 << 20
"""Largest tar file of checkpoints `--bundle` writes (a device call returns files of at most 16 MiB)."""


@dataclass(frozen=True)
class Sizes:
    """How much each part does: the real run's sizes or the smoke test's."""

    epochs: int
    steps: int
    batch_size: int | None
    face_samples: int | None
    max_images: int | None
    val_images: int
    eval_faces: int
    coding_faces: int
    coding_models: int | None
    ladder_runs: int | None

    @staticmethod
    def of(smoke: bool) -> Sizes:
        if smoke:
            return Sizes(epochs=1, steps=2, batch_size=4, face_samples=2, max_images=16, val_images=4, eval_faces=2,
                         coding_faces=1, coding_models=2, ladder_runs=2)
        return Sizes(epochs=2, steps=30, batch_size=None, face_samples=None, max_images=None, val_images=64,
                     eval_faces=32, coding_faces=4, coding_models=None, ladder_runs=None)


@dataclass
class TrainingRow:
    """(a) and (c) for one family: throughput on the device and scores of the briefly trained model."""

    family: str
    recipe: str
    steps: int
    images_per_s: float
    steps_per_s: float
    wall_s: float
    val_psnr: float
    psnr: float
    bpp: float
    cosine: float


@dataclass
class CodingRow:
    """(b) for one model: files coded on each device, decodes that raised, the largest device/CPU difference."""

    model: str
    family: str
    files: int = 0
    failed: int = 0
    max_diff: int = 0
    same_files: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class LadderRow:
    """(d) for one rung: its checkpoint and what the trainer recorded."""

    name: str
    init: str
    steps: int
    seconds: float
    wall_s: float
    val_psnr: float
    val_bpp: float
    device: str
    precision: str


class Clock:
    """The run's budget: seconds since start and seconds left before the deadline."""

    def __init__(self, minutes: float) -> None:
        self.start = time.perf_counter()
        self.budget = minutes * 60

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()


def use_stage(stage: Path) -> None:
    """Read data, cache and FaceNet from what `stage_gpu.py unpack` extracted, through the environment facelab reads."""
    os.environ["FACELAB_DATA"] = str(stage / "data")
    os.environ["FACELAB_CACHE"] = str(stage / "cache")
    weights = stage / "torch" / "checkpoints" / USER_WEIGHTS["casia-webface"]
    if not weights.is_file():
        half = torch.load(stage / FACENET_FILE, map_location="cpu", weights_only=True)
        weights.parent.mkdir(parents=True, exist_ok=True)
        torch.save({key: value.float() if value.is_floating_point() else value for key, value in half.items()}, weights)
    os.environ["TORCH_HOME"] = str(stage / "torch")


def held_out_faces(count: int, max_images: int | None) -> tuple[list[np.ndarray], torch.Tensor]:
    """The first `count` validation faces (centred 112x96 crops, people training never sees) and their MTCNN boxes."""
    faces = TemplateFaces(split="val", max_images=max_images, progress=False)
    items = [faces[index] for index in range(min(count, len(faces)))]
    return [to_uint8(item["image"]) for item in items], torch.stack([item["box"] for item in items])


@torch.no_grad()
def score(model: torch.nn.Module, images: list[np.ndarray], boxes: torch.Tensor,
          device: torch.device) -> dict[str, float]:
    """Mean PSNR, real bpp and FaceNet cosine of `model`'s files of `images`, coded and decoded on `device`."""
    files = [compress(image, model) for image in images]
    decoded = [decompress(data, model) for data in files]
    embedder = FaceEmbedder(device)
    originals = embedder.embed_images(to_tensor(np.stack(images)).to(device), boxes.to(device))
    reconstructions = embedder.embed_images(to_tensor(np.stack(decoded)).to(device), boxes.to(device))
    return {"psnr": float(np.mean([psnr(a, b) for a, b in zip(images, decoded)])),
            "bpp": float(np.mean([bits_per_pixel(data, *image.shape[:2]) for data, image in zip(files, images)])),
            "cosine": float(cosine_similarity(originals, reconstructions).mean())}


def train_families(device: str, sizes: Sizes, output: Path) -> list[TrainingRow]:
    """(a) and (c): each family's recipe for a few epochs on the device, its last epoch's throughput and scores."""
    images, boxes = held_out_faces(sizes.eval_faces, sizes.max_images)
    rows = []
    for family, recipe in FAMILY_RECIPES.items():
        config = make_config(recipe, name=f"gpu-{family}", device=device, epochs=sizes.epochs,
                             steps_per_epoch=sizes.steps, batch_size=sizes.batch_size, face_samples=sizes.face_samples,
                             max_images=sizes.max_images, val_images=sizes.val_images)
        start = time.perf_counter()
        path = train(config, output / "runs" / config.name, output / f"{config.name}.pt", resume=False)
        wall = time.perf_counter() - start
        model = load_model(path, device)
        last = model.checkpoint["history"][-1]
        rows.append(TrainingRow(family=family, recipe=recipe, steps=sizes.epochs * sizes.steps,
                                images_per_s=last["images_per_s"], steps_per_s=last["images_per_s"] / config.batch_size,
                                wall_s=round(wall, 1), val_psnr=last["val_psnr"],
                                **score(model, images, boxes, torch.device(device))))
    return rows


def decode_or_problem(data: bytes, model: torch.nn.Module) -> np.ndarray | str:
    """The decoded image, or the one-line reason the decode raised (any exception: the run counts it and goes on)."""
    try:
        return decompress(data, model)
    except Exception as exc:  # a cross-device desync may surface as any error; each is counted as a failed decode
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def coding_models(limit: int | None) -> list[str]:
    """The shipped models whose checkpoints are installed; with `limit`, that many of each family."""
    installed = [name for name in SHIPPED if (SHIPPED_DIR / f"{name}.pt").is_file()]
    if limit is None:
        return installed
    families: dict[str, list[str]] = {}
    for name in installed:
        families.setdefault(RECIPES[name].get("family", "binary"), []).append(name)
    return [name for names in families.values() for name in names[:limit]]


def cross_device(name: str, images: list[np.ndarray], device: str) -> CodingRow:
    """(b) for one model: each image coded on the device and on the CPU, each file decoded on both."""
    on_device, on_cpu = load_model(name, device), load_model(name, "cpu")
    row = CodingRow(model=name, family=getattr(on_device, "family", "binary"))
    for image in images:
        files = [compress(image, on_device), compress(image, on_cpu)]
        row.same_files += files[0] == files[1]
        for data in files:
            row.files += 1
            decoded = [decode_or_problem(data, model) for model in (on_device, on_cpu)]
            problems = [result for result in decoded if isinstance(result, str)]
            row.failed += len(problems)
            row.problems += problems
            if not problems:
                row.max_diff = max(row.max_diff, int(np.abs(decoded[0].astype(np.int16) - decoded[1]).max()))
    return row


def check_coding(device: str, sizes: Sizes) -> list[CodingRow]:
    """(b) for every installed shipped model (a few in smoke mode), on held-out faces."""
    images, _ = held_out_faces(sizes.coding_faces, sizes.max_images)
    return [cross_device(name, images, device) for name in coding_models(sizes.coding_models)]


def coding_failures(coding: list[CodingRow], device: str) -> list[str]:
    """What fails (b): any decode that raised, and any device/CPU difference over MAX_LEVELS grey levels."""
    failures = []
    raised = [row for row in coding if row.failed]
    if raised:
        failures.append(f"coding: {sum(row.failed for row in raised)} decodes raised ("
                        + ", ".join(f"{row.model} {row.failed}" for row in raised) + ")")
    failures += [f"coding: {row.model} decodes differ by {row.max_diff} levels between {device} and cpu "
                 f"(at most {MAX_LEVELS} allowed)" for row in coding if row.max_diff > MAX_LEVELS]
    return failures


def ladder_runs(limit: int | None) -> list[tuple[str, str | None]]:
    """(rung name, parent rung name or None for the recipe's own start) in training order, face-loss twin first."""
    runs = [(ladder_name(rung, face), None if LADDER_PARENT[rung] is None else ladder_name(LADDER_PARENT[rung], face))
            for rung in LADDER_ORDER for face in (True, False)]
    if limit is None:
        return runs
    return [run for run in runs if not run[0].endswith("-pixel")][:limit]


def recipe_steps(name: str) -> int:
    """A rung's steps in its recipe."""
    return RECIPES[name]["epochs"] * RECIPES[name]["steps_per_epoch"]


def choose_scale(seconds_left: float, steps_per_s: float, overhead_s: float,
                 runs: list[tuple[str, str | None]]) -> float:
    """The largest of LADDER_SCALES whose estimated ladder (steps at `steps_per_s` plus `overhead_s` a rung) fits."""
    for scale in LADDER_SCALES:
        estimate = sum(recipe_steps(name) * scale / steps_per_s + overhead_s for name, _ in runs)
        if estimate <= PLAN_SAFETY * seconds_left:
            return scale
    return LADDER_SCALES[-1]


def train_ladder(device: str, sizes: Sizes, output: Path, clock: Clock, throughput: TrainingRow | None,
                 smoke: bool) -> tuple[list[LadderRow], str]:
    """(d): the rungs in order, each from the checkpoint just trained, while the budget lasts; and what ended it."""
    runs = ladder_runs(sizes.ladder_runs)
    overhead = 15.0 if throughput is None else max(throughput.wall_s - throughput.steps / throughput.steps_per_s, 1.0)
    scale = (1.0 if throughput is None
             else choose_scale(clock.left() - RESERVE_S, throughput.steps_per_s, overhead, runs))
    print(f"ladder: {len(runs)} runs, steps x {scale:g} of each recipe" + (" (smoke: 1 step each)" if smoke else ""))
    rows: list[LadderRow] = []
    slowest = 0.0
    for name, parent in runs:
        planned = recipe_steps(name) * scale / throughput.steps_per_s + overhead if throughput else 0.0
        expected = max(slowest, planned)
        if not smoke and expected > clock.left() - RESERVE_S:
            return rows, f"stopped before {name}: {clock.left():.0f} s left, a rung takes about {expected:.0f} s"
        sizes_now = (dict(epochs=1, steps_per_epoch=1, batch_size=sizes.batch_size, face_samples=sizes.face_samples,
                          max_images=sizes.max_images, val_images=sizes.val_images) if smoke
                     else dict(steps_per_epoch=max(1, round(RECIPES[name]["steps_per_epoch"] * scale))))
        init = str(output / f"{parent}.pt") if parent else None
        config = make_config(name, device=device, init=init, **sizes_now)
        start = time.perf_counter()
        path = train(config, output / "runs" / name, output / f"{name}.pt", resume=False)
        wall = time.perf_counter() - start
        slowest = max(slowest, wall)
        checkpoint = load_model(path).checkpoint
        last = checkpoint["history"][-1]
        rows.append(LadderRow(name=name, init=config.init or "", steps=config.epochs * config.steps_per_epoch,
                              seconds=checkpoint["seconds"], wall_s=round(wall, 1), val_psnr=last["val_psnr"],
                              val_bpp=last.get("val_bpp", math.nan), device=checkpoint["device"],
                              precision=checkpoint["precision"]))
    return rows, f"all {len(runs)} runs trained"


def table(title: str, rows: list[Any], columns: tuple[str, ...]) -> str:
    """A plain-text table of dataclass rows: a title line, a header line, then one line per row."""
    cells = [[format_cell(getattr(row, column)) for column in columns] for row in rows]
    widths = [max([len(column)] + [len(line[i]) for line in cells]) for i, column in enumerate(columns)]
    lines = [f"== {title} ==", "  ".join(column.ljust(width) for column, width in zip(columns, widths))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in cells]
    return "\n".join(lines)


def format_cell(value: Any) -> str:
    """A table cell: floats with 4 significant digits, everything else as text."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def bundle(output: Path, names: list[str], destination: Path) -> list[Path]:
    """Copy the report and pack the checkpoints `names` of `output` into tar files of at most BUNDLE_LIMIT bytes."""
    destination.mkdir(parents=True, exist_ok=True)
    groups: list[list[Path]] = []
    for path in (output / f"{name}.pt" for name in names):
        if not groups or sum(p.stat().st_size for p in groups[-1]) + path.stat().st_size > BUNDLE_LIMIT:
            groups.append([])
        groups[-1].append(path)
    written = []
    for number, group in enumerate(groups, 1):
        with tarfile.open(destination / f"checkpoints-{number}.tar", "w") as archive:
            for path in group:
                archive.add(path, arcname=path.name)
        written.append(destination / f"checkpoints-{number}.tar")
    report = output / "report.json"
    (destination / report.name).write_bytes(report.read_bytes())
    return written + [destination / report.name]


def run_part(name: str, failures: list[str], seconds: dict[str, float], part: Callable[[], Any]) -> Any:
    """Run one part and record its wall time; a failure is printed with its traceback and listed, and the run goes
    on to the next part."""
    start = time.perf_counter()
    try:
        return part()
    except Exception as exc:  # the GPU is borrowed for minutes: one broken part must not cost the others
        traceback.print_exc()
        failures.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return None
    finally:
        seconds[name] = round(time.perf_counter() - start, 1)
        print(f"gpu_run: {name} took {seconds[name]:.1f} s")


def environment(device: str) -> dict[str, str]:
    """Where the run ran, for the report."""
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu"
    return {"device": device, "device_name": name, "torch": torch.__version__, "python": platform.python_version(),
            "numpy": np.__version__, "threads": str(torch.get_num_threads())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--smoke", action="store_true", help="toy sizes: the whole path in a minute or two on a CPU")
    parser.add_argument("--output", type=Path, required=True, help="checkpoints, run folders and report.json")
    parser.add_argument("--stage", type=Path, default=None,
                        help="the payload stage_gpu.py unpacked (default: this machine's data and FaceNet)")
    parser.add_argument("--minutes", type=float, default=8.0, help="the whole run's budget; (d) stops before it ends")
    parser.add_argument("--bundle", type=Path, default=None,
                        help="also pack the ladder's checkpoints and the report here (a device call's $OUT)")
    args = parser.parse_args(argv)
    clock = Clock(args.minutes)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no GPU")
    if args.stage:
        use_stage(args.stage)
    sizes = Sizes.of(args.smoke)
    args.output.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"environment": environment(args.device), "smoke": args.smoke, "minutes": args.minutes}
    if args.stage:
        report["environment"]["facenet"] = "the converted graph rounded to fp16 (the stage), loaded from $TORCH_HOME"
    print(json.dumps(report["environment"]))
    failures: list[str] = []
    seconds: dict[str, float] = {}

    training = run_part("training", failures, seconds, lambda: train_families(args.device, sizes, args.output)) or []
    print(table(f"training throughput and scores on {args.device}", training,
                ("family", "recipe", "steps", "images_per_s", "steps_per_s", "wall_s", "val_psnr", "psnr", "bpp",
                 "cosine")))
    coding = run_part("coding", failures, seconds, lambda: check_coding(args.device, sizes)) or []
    print(table(f"cross-device decoding (each file encoded on {args.device} and on cpu, decoded on both)", coding,
                ("model", "family", "files", "failed", "max_diff", "same_files")))
    for row in coding:
        for problem in sorted(set(row.problems)):
            print(f"  {row.model}: {problem}")
    hyperprior = next((row for row in training if row.family == "hyperprior"), None)
    ladder, stopped = run_part("ladder", failures, seconds, lambda: train_ladder(
        args.device, sizes, args.output, clock, hyperprior, args.smoke)) or ([], "ladder failed")
    print(table("ladder", ladder, ("name", "steps", "seconds", "val_psnr", "val_bpp", "device", "precision")))
    print(f"ladder: {stopped}")

    failures += coding_failures(coding, args.device)
    report.update(training=[asdict(row) for row in training], coding=[asdict(row) for row in coding],
                  ladder=[asdict(row) for row in ladder], ladder_stopped=stopped, failures=failures,
                  part_seconds=seconds, seconds=round(clock.elapsed(), 1))
    (args.output / "report.json").write_text(json.dumps(report, indent=1))
    if args.bundle:
        for path in bundle(args.output, [row.name for row in ladder], args.bundle):
            print(f"bundled {path} ({path.stat().st_size / (1 << 20):.1f} MiB)")
    print(f"gpu_run: {clock.elapsed():.0f} s of {args.minutes:g} min")
    if failures:
        print("gpu_run: FAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    print("gpu_run: passed: every file decoded on both devices within "
          f"{MAX_LEVELS} levels; {len(ladder)} ladder checkpoints in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
