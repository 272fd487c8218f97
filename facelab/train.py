"""One trainer for both phases of the paper, with per-epoch checkpoints, resume and a history.

Phase 1 ("natural"): natural images (CLIC 2020, else facelab's natural/ fallback), loss
L1 + (1 - MS-SSIM), Adam at 1e-4, reduced when validation stalls (the paper's "dynamic" rate).
Phase 2 ("face"): starts from phase 1; CelebA faces MTCNN can detect; loss
a * L2(pixels) + b * L2(FaceNet embeddings of the MTCNN crops), a = b = 1, Adam at 3e-3 with
weight decay 1e-3 (the paper's "static" rate); b = 0 is the paper's ablation.
The paper's "momentum 0.99" is Adam's first-moment decay: beta1 = 0.99 (beta2 stays 0.999).

Adam's weight decay adds 1e-3 * w to the gradient before Adam rescales it. The L2 pixel loss's
gradients are far smaller than that, so with b = 0 the decay drives training: the ablation's
validation PSNR fell from 20.2 to 14.2 dB over 15 epochs, while the same run without decay rose to
27.6 dB in 8. The "-adamw" runs keep every number of the paper but decouple the decay (AdamW), so
that the ablation compares the losses and not an optimiser accident.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from facelab.model import FaceCodecNet
from facelab.runtime import get_device, seed_everything
from facelab.weights import load_model, save_checkpoint


PLATEAU_PATIENCE = 5
"""Phase 1 halves the learning rate after this many epochs without a better validation loss."""

MIN_LR_FACTOR = 0.01
"""Phase 1's learning rate never drops below this fraction of its start."""


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in its checkpoints."""

    phase: str = "natural"
    name: str = "natural"
    epochs: int = 10
    batch_size: int = 16
    crop: int = 128
    face_size: tuple[int, int] = (218, 178)
    lr: float = 1e-4
    beta1: float = 0.99
    weight_decay: float = 0.0
    optimizer: str = "adam"
    a: float = 1.0
    b: float = 1.0
    init: str | None = None
    max_images: int | None = None
    steps_per_epoch: int | None = None
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    workers: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


_PHASE2 = dict(phase="face", lr=3e-3, beta1=0.99, weight_decay=1e-3, a=1.0, init="natural")

RECIPES = {
    "natural": dict(phase="natural", name="natural", lr=1e-4, beta1=0.99, weight_decay=0.0),
    "face": dict(_PHASE2, name="face", b=1.0),
    "face-pixel": dict(_PHASE2, name="face-pixel", b=0.0),
    "face-adamw": dict(_PHASE2, name="face-adamw", b=1.0, optimizer="adamw"),
    "face-pixel-adamw": dict(_PHASE2, name="face-pixel-adamw", b=0.0, optimizer="adamw"),
}
"""Hyper-parameters of each shipped model: the paper's, and for "-adamw" the paper's with decoupled
weight decay (see the module docstring); sizes and epochs are set per run."""

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
"""Adam adds weight decay to the gradient (the paper's); AdamW shrinks the weights directly."""


def make_config(name: str, **overrides: Any) -> TrainConfig:
    """The recipe of a shipped model name, with `overrides` applied."""
    if name not in RECIPES:
        raise ValueError(f"unknown run '{name}': choose from {', '.join(RECIPES)}")
    settings = {**RECIPES[name], **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(**settings)


def build_data(config: TrainConfig) -> tuple[Dataset, Dataset, dict[str, Any]]:
    """Training and validation sets for the config's phase, and a description of them."""
    from facelab.data.celeba import CelebAFaces
    from facelab.data.natural import NaturalImages

    if config.phase == "natural":
        train = NaturalImages(config.data_root, split="train", crop=config.crop, max_images=config.max_images)
        val = NaturalImages(config.data_root, split="val", crop=config.crop, max_images=config.max_images)
    else:
        train = CelebAFaces(config.data_root, split="train", size=config.face_size, max_images=config.max_images)
        val = CelebAFaces(config.data_root, split="val", size=config.face_size, max_images=config.max_images)
    return train, val, {"train": train.describe(), "val": val.describe()}


def build_loss(config: TrainConfig, device: torch.device) -> torch.nn.Module:
    """The phase's loss: L1 + (1 - MS-SSIM) for natural images, Eq. 2 for faces."""
    from facelab.losses import CompressionLoss, FaceLoss

    if config.phase == "natural":
        return CompressionLoss().to(device)
    embedder = None
    if config.b > 0:
        from facelab.faces import FaceEmbedder

        embedder = FaceEmbedder(device)
    return FaceLoss(a=config.a, b=config.b, pixel="l2", embedder=embedder).to(device)


def loss_on_batch(model: FaceCodecNet, loss_fn: torch.nn.Module, batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
    """Forward a batch (tensor of images, or dict with 'image' and 'box') and return the loss parts."""
    if isinstance(batch, dict):
        images = batch["image"].to(device)
        return loss_fn(model(images), images, batch["box"].to(device))
    images = batch.to(device)
    return loss_fn(model(images), images)


def gradient_scales(model: FaceCodecNet, loss_fn: torch.nn.Module, batch: Any, device: torch.device,
                    weight_decay: float) -> dict[str, float]:
    """Mean |gradient| over the model's weights of each loss part on one batch, and of Adam's decay term.

    Adam adds `weight_decay * w` to each weight's gradient; when that term is the larger one, the
    decay, not the loss, decides where the weights go (see the module docstring). The model is not
    changed: a copy runs in training mode.
    """
    model = copy.deepcopy(model).train()
    parts = [key for key in loss_on_batch(model, loss_fn, batch, device) if key != "total"]
    weights = [p for p in model.parameters() if p.requires_grad]
    scales = {}
    for part in parts:
        model.zero_grad(set_to_none=True)
        loss = loss_on_batch(model, loss_fn, batch, device)[part]
        if loss.requires_grad:
            loss.backward()
        grads = [p.grad.abs().flatten() for p in weights if p.grad is not None]
        scales[part] = float(torch.cat(grads).mean()) if grads else 0.0
    model.zero_grad(set_to_none=True)
    scales["weight decay"] = weight_decay * float(torch.cat([p.detach().abs().flatten() for p in weights]).mean())
    return scales


def psnr_batch(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """Mean PSNR in dB over a batch of [0, 1] images (after rounding to 8 bits)."""
    mse = ((x_hat.clamp(0, 1) * 255).round() / 255 - x).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1 / mse)).mean())


@torch.no_grad()
def validate(model: FaceCodecNet, loss_fn: torch.nn.Module, loader: Iterable, device: torch.device) -> dict[str, float]:
    """Mean loss parts and PSNR on the validation set, with the deterministic binarizer."""
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    for batch in loader:
        parts = loss_on_batch(model, loss_fn, batch, device)
        images = (batch["image"] if isinstance(batch, dict) else batch).to(device)
        parts = {**{k: float(v) for k, v in parts.items()}, "psnr": psnr_batch(model(images), images)}
        n = images.shape[0]
        for key, value in parts.items():
            sums[key] = sums.get(key, 0.0) + value * n
        count += n
    return {f"val_{k}": v / max(count, 1) for k, v in sums.items()}


class Trainer:
    """Trains a `FaceCodecNet` for one phase, checkpointing to `run_dir` after every epoch."""

    def __init__(self, config: TrainConfig, run_dir: str | Path) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = get_device(config.device)
        seed_everything(config.seed)
        self.model = (load_model(config.init) if config.init else FaceCodecNet()).to(self.device)
        self.model.name = config.name
        if config.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {config.optimizer!r}: choose from {', '.join(OPTIMIZERS)}")
        self.optimizer = OPTIMIZERS[config.optimizer](
            self.model.parameters(), lr=config.lr, betas=(config.beta1, 0.999), weight_decay=config.weight_decay
        )
        self.scheduler = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=0.5, patience=PLATEAU_PATIENCE,
                                                       min_lr=config.lr * MIN_LR_FACTOR)
            if config.phase == "natural" else None
        )
        self.history: list[dict[str, float]] = []
        self.epoch = 0
        self.seconds = 0.0

    @property
    def state_path(self) -> Path:
        return self.run_dir / "last.pt"

    def save_state(self) -> None:
        """Everything needed to resume: model, optimizer, scheduler, RNG, epoch and history."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "rng": torch.get_rng_state(), "epoch": self.epoch, "history": self.history,
            "seconds": self.seconds, "config": asdict(self.config),
        }
        tmp = self.state_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.state_path)
        (self.run_dir / "history.json").write_text(json.dumps(self.history, indent=1))

    def try_resume(self) -> bool:
        """Load `last.pt` when it exists and was made with the same configuration (more epochs may be asked)."""
        if not self.state_path.is_file():
            return False
        state = torch.load(self.state_path, map_location=self.device, weights_only=False)
        if {**state["config"], "epochs": 0} != {**asdict(self.config), "epochs": 0}:
            raise ValueError(f"{self.state_path} was made with another configuration; use a new run folder")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        self.epoch, self.history, self.seconds = state["epoch"], state["history"], state["seconds"]
        return True

    def fit(self, train: Dataset, val: Dataset, loss_fn: torch.nn.Module,
            on_epoch: Callable[[dict[str, float]], None] | None = None) -> list[dict[str, float]]:
        """Train until `config.epochs`, resuming from `last.pt` if present; returns the history."""
        config = self.config
        val_loader = DataLoader(val, batch_size=config.batch_size, num_workers=config.workers)
        while self.epoch < config.epochs:
            train_loader = DataLoader(
                train, batch_size=config.batch_size, shuffle=True, drop_last=len(train) > config.batch_size,
                num_workers=config.workers, generator=torch.Generator().manual_seed(config.seed + self.epoch),
            )
            start = time.perf_counter()
            self.model.train()
            sums: dict[str, float] = {}
            steps = config.steps_per_epoch or len(train_loader)
            bar = tqdm(total=steps, desc=f"{config.name} epoch {self.epoch + 1}/{config.epochs}", leave=False)
            step = 0
            while step < steps:
                for batch in train_loader:
                    parts = loss_on_batch(self.model, loss_fn, batch, self.device)
                    self.optimizer.zero_grad(set_to_none=True)
                    parts["total"].backward()
                    self.optimizer.step()
                    for key, value in parts.items():
                        sums[key] = sums.get(key, 0.0) + value.item()
                    step += 1
                    bar.update(1)
                    bar.set_postfix({k: f"{v / step:.4f}" for k, v in sums.items()})
                    if step >= steps:
                        break
            bar.close()
            record = {"epoch": self.epoch + 1, **{k: v / steps for k, v in sums.items()}}
            record.update(validate(self.model, loss_fn, val_loader, self.device))
            record["lr"] = self.optimizer.param_groups[0]["lr"]
            if self.scheduler:
                self.scheduler.step(record["val_total"])
            self.seconds += time.perf_counter() - start
            record["seconds"] = round(self.seconds, 1)
            self.history.append(record)
            self.epoch += 1
            self.save_state()
            if on_epoch:
                on_epoch(record)
        return self.history


def train(config: TrainConfig, run_dir: str | Path, output: str | Path | None = None, resume: bool = True) -> Path:
    """Run one phase end to end and write the final checkpoint (default: run_dir/<name>.pt)."""
    trainer = Trainer(config, run_dir)
    if resume:
        trainer.try_resume()
    train_set, val_set, data_info = build_data(config)
    loss_fn = build_loss(config, trainer.device)
    trainer.fit(train_set, val_set, loss_fn, on_epoch=lambda r: tqdm.write(format_record(r)))
    output = Path(output) if output else Path(run_dir) / f"{config.name}.pt"
    return save_checkpoint(
        trainer.model.cpu(), output, config.name, config=asdict(config), data=data_info,
        history=trainer.history, device=str(trainer.device), seconds=round(trainer.seconds, 1),
        torch_version=str(torch.__version__),
    )


def format_record(record: dict[str, float]) -> str:
    """One line per epoch: the losses and validation figures."""
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) and not math.isnan(v) else f"{k}={v}" for k, v in record.items())


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of `facelab train`."""
    parser.add_argument("run", choices=tuple(RECIPES), help="which shipped model to (re)train")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--crop", type=int, default=None, help="natural phase: random crop side in pixels")
    parser.add_argument("--face-size", type=int, nargs=2, default=None, metavar=("H", "W"), help="face phase image size")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the paper's)")
    parser.add_argument("--beta1", type=float, default=None, help="Adam's first-moment decay (default: the paper's 0.99)")
    parser.add_argument("--max-images", type=int, default=None, help="use at most this many training images")
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--init", default=None, help="weights to start from (default: natural for face runs)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--run-dir", default=None, help="checkpoints and history (default: runs/<run>)")
    parser.add_argument("--output", default=None, help="final checkpoint (default: <run-dir>/<run>.pt)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if the run folder has a checkpoint")


def run(args: argparse.Namespace) -> int:
    """`facelab train RUN`: train and print where the checkpoint went."""
    config = make_config(
        args.run, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, beta1=args.beta1, crop=args.crop,
        face_size=tuple(args.face_size) if args.face_size else None, max_images=args.max_images,
        steps_per_epoch=args.steps_per_epoch, init=args.init, device=args.device, data_root=args.data_root,
    )
    path = train(config, args.run_dir or Path("runs") / args.run, args.output, resume=not args.no_resume)
    print(f"wrote {path}")
    return 0
