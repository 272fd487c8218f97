"""The whole LFW evaluation: the paper's Tables 1 and 2, equal-bpp codecs, curves, BD-rate, files and timings."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from facelab import __version__, judge
from facelab.baselines import CODECS, installed
from facelab.bitstream import coders_for
from facelab.data import lfw_aligned
from facelab.errors import FacelabError, ModelError
from facelab.evaluation.context import RunContext, resolve_precision
from facelab.evaluation.methods import CodecMethod, EqualRateMethod, FacelabMethod, Method
from facelab.evaluation.originals import Originals, compute_originals, fallback_fractions
from facelab.evaluation.output import per_image_table, write_results
from facelab.evaluation.paper import LFW_IMAGES, PAPER_TABLE1, PAPER_TABLE2
from facelab.evaluation.report import originals_name
from facelab.evaluation.rows import Score
from facelab.evaluation.runner import MethodResult, coded_sizes, evaluate_method, original_result
from facelab.evaluation.scores import bd_rates, score
from facelab.evaluation.selection import LFW_SIZES, EvalSet, folder_set, lfw_set, lfw_view, select
from facelab.evaluation.timing import StageTimer
from facelab.evaluation.workers import WorkerPool, start_workers
from facelab.model import FaceCodecNet
from facelab.rate import bpp
from facelab.runtime import get_device
from facelab.weights import SHIPPED, SHIPPED_DIR, load_model, read_checkpoint

CURVE_QUALITIES = {
    "jpeg": (5, 10, 20, 40, 70, 90),
    "webp": (5, 20, 40, 70, 90),
    "jpeg2000": (150.0, 80.0, 40.0, 20.0, 12.0),
    "avif": (10, 30, 50, 70, 85),
    "heic": (5, 20, 35, 50, 65),
    "jxl": (5, 25, 50, 75, 90),
}
"""Each codec's quality settings for the curves (JPEG 2000's is a compression ratio: 24 / ratio bpp),
chosen to span about 0.15-2 bpp on LFW's 250x250 images, the range of facelab's operating points (at 112x96
about 0.2-1.8 bpp; HEIC's and AVIF's containers keep them above 0.33 bpp there, lesson 06)."""

MODELS = ("face-a100", "face-b0", "face", "face-pixel")
"""Models evaluated by default: the default model and its b = 0 twin from the loss-balance sweep, and the paper's
recipe with and without the face loss (b = 0). The first is the equal-bpp reference."""

SCALES = (0.5, 0.625, 0.75, 1.0)
"""Facelab operating points: the image is coded at these fractions of its size (4 points: BD-rate's minimum)."""


@dataclass
class EvaluationConfig:
    """What to evaluate and how (defaults: LFW's own 250x250 files, the MODELS, JPEG q70/80/90, curves on 500 images).

    `lfw_size` picks the LFW view (selection.LFW_SIZES): '250x250' (the files) or '112x96' (aligned crops, the paper's).
    `workers` > 1 measures the images in that many processes of one torch thread each (`workers` module).
    """

    output: Path = Path("results/lfw")
    root: str | None = None
    images: str | None = None
    lfw_size: str = LFW_SIZES[0]
    limit: int | None = None
    seed: int = 0
    models: tuple[str, ...] = MODELS
    jpeg_qualities: tuple[int, ...] = (70, 80, 90)
    curves: bool = True
    curve_limit: int = 500
    scales: tuple[float, ...] = SCALES
    coders: tuple[str, ...] = ("xz", "context")
    curve_qualities: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: {codec: CURVE_QUALITIES[codec] for codec in installed(CURVE_QUALITIES)})
    equal_rate: tuple[str, ...] = field(default_factory=lambda: installed(CODECS))
    pairs: bool = True
    batch_size: int = 64
    device: str = "cpu"
    threads: int | None = None
    workers: int = 1
    progress: bool = True
    cache: Path | None = None
    precision: str = "auto"


def choose_threads(requested: int | None) -> int:
    """Torch threads: the number asked for, else every core when the machine is idle, else one fewer (at least 1).

    When other processes keep the cores busy, fewer threads avoid OpenMP workers spin-waiting for a core.
    """
    if requested:
        return max(1, requested)
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return cores if load < 0.5 else max(1, cores - max(1, round(load)))


def model_label(spec: str) -> str:
    """A model's row name: the shipped name or 'untrained' as given, else the checkpoint file's stem."""
    return spec if spec in SHIPPED or spec == "untrained" else Path(spec).stem


def hyperprior_curve(model: torch.nn.Module) -> str:
    """The curve a hyperprior model is a point of: one curve per loss, its points the models' rates."""
    trained_with_face_loss = getattr(model, "checkpoint", {}).get("config", {}).get("b", 0) > 0
    return "hyperprior + face loss" if trained_with_face_loss else "hyperprior, pixels only"


def extra_checkpoints() -> list[Path]:
    """Checkpoints in the shipped weights folder besides the shipped ones whose code has fewer than 128 bits."""
    found = []
    for path in sorted(SHIPPED_DIR.glob("*.pt")):
        if path.stem in SHIPPED:
            continue
        try:
            if read_checkpoint(path).get("bits", 128) < 128:
                found.append(path)
        except ModelError:
            continue
    return found


def _load_set(config: EvaluationConfig) -> EvalSet:
    """The full evaluation set the config names: an image folder, else LFW under the data root."""
    evalset = folder_set(config.images) if config.images else lfw_set(config.root)
    if not config.pairs:
        evalset.pairs = []
    return evalset


@dataclass
class EvaluationRun:
    """One evaluation under way: its config, context, evaluated set, its seeded order and the originals' data."""

    config: EvaluationConfig
    context: RunContext
    evalset: EvalSet
    order: list[int]
    originals: Originals
    pool: WorkerPool | None = None
    per_image: list[tuple[str, MethodResult, str, list[int]]] = field(default_factory=list)

    def run(self, method: Method, subset: EvalSet | None = None, originals: Originals | None = None) -> MethodResult:
        """A method's per-image results on the whole set, or on a subset with its originals' data."""
        return evaluate_method(method, (subset or self.evalset).images, originals or self.originals, self.context,
                               self.pool)

    def paper_tables(self, models: dict[str, FaceCodecNet]) -> tuple[dict[str, Score], list[Score]]:
        """Table 1 (per model) and Table 2 rows: the originals, each model (.xz, full size) and each JPEG quality."""
        original = score(original_result(self.originals), "file", self.originals, self.evalset)
        table1, table2 = {}, [replace(original, method=originals_name(self.evalset.view))]
        everything = list(range(len(self.evalset.images)))
        methods = [(method, method.coders[0]) for method in (FacelabMethod(model, 1.0, label)
                                                             for label, model in models.items())]
        methods += [(CodecMethod("jpeg", quality), "jpeg") for quality in self.config.jpeg_qualities]
        for method, coder in methods:
            result = self.run(method)
            label = method.label if isinstance(method, FacelabMethod) else None
            row = score(result, coder, self.originals, self.evalset, model=label)
            table2.append(row)
            self.per_image.append((row.method, result, coder, everything))
            if isinstance(method, FacelabMethod):
                table1[method.label] = row
        return table1, table2

    def curve_subset(self) -> tuple[EvalSet, list[int], Originals]:
        """The curves' and equal-bpp subset: the first --curve-limit images of the seeded order."""
        index = sorted(self.order[:self.config.curve_limit])
        return self.evalset.subset(self.config.curve_limit, self.order), index, self.originals.take(index)

    def curves(self, models: dict[str, FaceCodecNet]) -> list[Score]:
        """Rate-distortion / rate-accuracy points: each model at each scale and coder, each codec at each quality."""
        subset, _, originals = self.curve_subset()
        curve_models = dict(models)
        for path in extra_checkpoints():
            curve_models[path.stem] = load_model(path, self.context.device)
        points = []
        for label, model in curve_models.items():
            hyperprior = getattr(model, "family", "binary") == "hyperprior"
            for scale in self.config.scales if label in models and not hyperprior else (1.0,):
                method = FacelabMethod(model, scale, label)
                result = self.run(method, subset, originals)
                usable = coders_for(getattr(model, "family", "binary"))
                for coder in [c for c in self.config.coders if c in usable] or method.coders:
                    if coder != method.coders[0]:
                        result.sizes[coder] = coded_sizes(method, coder, subset.images, self.context, self.pool)
                    row = score(result, coder, originals, subset, model=label)
                    curve = hyperprior_curve(model) if hyperprior else f"facelab {method.label} ({coder})"
                    points.append(row.on_curve(curve, scale, f"{method.name} ({coder})"))
        for codec, qualities in self.config.curve_qualities.items():
            for quality in qualities:
                row = score(self.run(CodecMethod(codec, quality), subset, originals), codec, originals, subset)
                points.append(row.on_curve(codec))
        return points

    def equal_rate(self, label: str, model: FaceCodecNet) -> list[Score]:
        """The reference model's row, then each codec coding every image at that image's bpp (its first coder's)."""
        subset, index, originals = self.curve_subset()
        reference = FacelabMethod(model, 1.0, label)
        coder = reference.coders[0]
        result = self.run(reference, subset, originals)
        rates = bpp(result.sizes[coder], originals.heights, originals.widths)
        targets = {image.key: float(value) for image, value in zip(subset.images, rates)}
        rows = [score(result, coder, originals, subset, model=label)]
        for codec in self.config.equal_rate:
            method = EqualRateMethod(codec, targets, label, reference.sizes_key(coder))
            coded = self.run(method, subset, originals)
            rows.append(score(coded, codec, originals, subset))
            self.per_image.append((method.name, coded, codec, index))
        return rows


def _check_view(config: EvaluationConfig) -> None:
    """Raise FacelabError unless `lfw_size` names an LFW view and, when not the default, LFW is evaluated."""
    if config.lfw_size not in LFW_SIZES:
        raise FacelabError(f"unknown LFW size {config.lfw_size!r}: use {' or '.join(LFW_SIZES)}")
    if config.images and config.lfw_size != LFW_SIZES[0]:
        raise FacelabError(f"--lfw-size {config.lfw_size} applies to LFW, not to an --images folder")


def run_evaluation(config: EvaluationConfig) -> dict:
    """Evaluate everything the config asks for, write the results folder, and return results.json's content."""
    _check_view(config)
    threads = choose_threads(config.threads)
    torch.set_num_threads(threads)
    device = get_device(config.device)
    aligned = config.lfw_size == lfw_aligned.VIEW
    context = RunContext(device, resolve_precision(config.precision, device), config.batch_size, config.cache,
                         StageTimer(), config.progress, lfw_aligned.FACE_BOX if aligned else None)
    full = _load_set(config)
    evalset, order = select(full, config.limit, config.seed)
    if aligned:
        with context.timer(f"align LFW to {config.lfw_size}"):
            evalset = lfw_view(evalset, config.lfw_size, config.root, str(device), config.progress)
    with context.timer("load models"):
        models = {}
        for spec in config.models:
            model = load_model(spec, device)
            models[model_label(spec)] = model
    pool = start_workers(config.workers, device)
    try:
        session = EvaluationRun(config, context, evalset, order, compute_originals(evalset.images, context, pool),
                                pool)
        table1, table2 = session.paper_tables(models)
        curve_set, _, curve_originals = session.curve_subset()
        curve_points = session.curves(models) if config.curves else []
        equal_rows = session.equal_rate(*next(iter(models.items()))) if config.equal_rate and models else []
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    curve_original = replace(score(original_result(curve_originals), "file", curve_originals, curve_set),
                             method=table2[0].method)
    results = {
        "facelab_version": __version__,
        "settings": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
                     "threads_used": threads, "device_used": str(device),
                     "workers_used": config.workers if pool else 1,
                     "facenet_precision_used": context.precision, "fallback_box": fallback_fractions(context),
                     "judge": f"{judge.JUDGE_NAME} from {judge.load_judge().folder}",
                     "machine": f"{platform.machine()}, {os.cpu_count()} cores"},
        "dataset": {"name": evalset.name, "source": evalset.source, "view": evalset.view,
                    "aligned_by_fallback": sum(image.fallback for image in evalset.images) if aligned else None,
                    "available": full.total_available,
                    "images": len(evalset.images), "selection": evalset.selection,
                    "identities": None if evalset.identities is None else int(len(set(evalset.identities))),
                    "pairs": len(evalset.pairs), "curve_images": len(curve_set.images),
                    "curve_pairs": len(curve_set.pairs),
                    "originals_without_face": int((~session.originals.detected).sum())},
        "paper": {"table1": PAPER_TABLE1, "table2": PAPER_TABLE2, "lfw_images": LFW_IMAGES},
        "table1": table1,
        "table2": table2,
        "equal_bpp": equal_rows,
        "curves": curve_points,
        "curve_original": curve_original,
        "bd_rate": bd_rates(curve_points),
    }
    write_results(config.output, results, context.timer, per_image_table(evalset, session.originals, session.per_image))
    return results


def evaluate(**settings) -> dict:
    """Run an evaluation (keyword arguments: the fields of EvaluationConfig) and return its results: results.json's
    content, with every table row and curve point a `rows.Score`."""
    unknown = set(settings) - set(EvaluationConfig.__dataclass_fields__)
    if unknown:
        raise FacelabError(f"unknown evaluation settings: {', '.join(sorted(unknown))}")
    for name in ("output", "cache"):
        if settings.get(name) is not None:
            settings[name] = Path(settings[name])
    return run_evaluation(EvaluationConfig(**settings))
