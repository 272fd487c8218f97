"""One trainer for every phase, with per-epoch checkpoints, resume, a history, bf16 autocast and LR schedules.

Phase 1 ("natural"): natural images (CLIC 2020, else facelab's natural/ fallback), loss
L1 + (1 - MS-SSIM). Phase 2 ("face"): CelebA faces on the 112x96 face-recognition template
(`facelab.data.template_faces`), loss a * L2(pixels) + b * L2(FaceNet embeddings of the MTCNN crops).
The paper's "momentum 0.99" is Adam's first-moment decay: beta1 = 0.99 (beta2 stays 0.999).
The recipes of every shipped model, with their sizes and budgets, are in `facelab.recipes`.

Adam's weight decay adds 1e-3 * w to the gradient before Adam rescales it. The L2 pixel loss's
gradients are far smaller than that, so with b = 0 the decay drives training (lesson 04 measures it with
`facelab.balance.gradient_scales`).
The "-adamw" runs keep every number of the paper but decouple the decay (AdamW), so that the
ablation compares the losses and not an optimiser accident.

Speed: the forward passes run under bf16 autocast where the device computes bf16 natively (a CPU with
AMX, a recent GPU); the binarizer's sign, the pixel losses and MS-SSIM stay in fp32.

The same trainer trains the 'hyperprior' family (`facelab.hyperprior`, lesson 07) and the paper's architecture with a
learned rate ('learned-rate', `facelab.learned_rate`, lesson 06): their forward passes also return the estimated rate,
and `RateDistortionLoss` puts the phase's loss inside rate + lmbda * distortion.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from facelab.errors import ModelError
from facelab.model import FaceCodecNet
from facelab.recipes import (FACE_DATA, FAMILIES, LEARNED_RATE, RATE_FAMILIES, RECIPES, SCHEDULES, TrainConfig,
                             make_config)
from facelab.runtime import fast_dtype, get_device, seed_everything
from facelab.weights import load_model, save_checkpoint

__all__ = ["RECIPES", "TrainConfig", "Trainer", "make_config", "train"]

PLATEAU_PATIENCE = 5
"""The 'plateau' schedule halves the learning rate after this many epochs without a better validation loss."""

MIN_LR_FACTOR = 0.01
"""The 'plateau' schedule never drops the learning rate below this fraction of its start."""

FAST_LR = 1e-3
"""The least learning rate of the weights that start from nothing while the rest is fine-tuned: a hyperprior's
quantiles, a fresh bit model."""

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
"""Adam adds weight decay to the gradient (the paper's); AdamW shrinks the weights directly."""

PRECISIONS = ("auto", "bf16", "fp32")
"""'auto' is bf16 autocast where the device computes it natively (`facelab.runtime.fast_dtype`), else fp32."""


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`, or None for plain fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision == "auto":
        return fast_dtype(device)
    return torch.bfloat16 if precision == "bf16" else None


def build_data(config: TrainConfig) -> tuple[Dataset, Dataset, dict[str, Any]]:
    """Training and validation sets for the config's phase, and a description of them."""
    if config.phase == "natural":
        from facelab.data.natural import NaturalImages

        train = NaturalImages(config.data_root, split="train", crop=config.crop, max_images=config.max_images)
        val = NaturalImages(config.data_root, split="val", crop=config.crop, max_images=config.max_images)
    elif config.face_data == "template":
        from facelab.data.template_faces import TemplateFaces

        train = TemplateFaces(config.data_root, split="train", max_images=config.max_images)
        val = TemplateFaces(config.data_root, split="val", max_images=config.max_images)
    elif config.face_data == "celeba":
        from facelab.data.celeba import CelebAFaces

        train = CelebAFaces(config.data_root, split="train", size=config.face_size, max_images=config.max_images)
        val = CelebAFaces(config.data_root, split="val", size=config.face_size, max_images=config.max_images)
    else:
        raise ValueError(f"unknown face data {config.face_data!r}: use {', '.join(FACE_DATA)}")
    info = {"train": train.describe(), "val": val.describe()}
    if config.val_images and len(val) > config.val_images:
        val = Subset(val, range(config.val_images))
        info["val"]["used"] = config.val_images
    return train, val, info


def build_model(config: TrainConfig) -> torch.nn.Module:
    """The run's starting model: the weights of `config.init`, else a fresh model of the config's family."""
    if config.family not in FAMILIES:
        raise ValueError(f"unknown model family {config.family!r}: choose from {', '.join(FAMILIES)}")
    if config.init:
        model = load_model(config.init)
        if config.family == LEARNED_RATE and getattr(model, "family", "binary") == "binary":
            from facelab.learned_rate import LearnedRateNet

            return LearnedRateNet.from_paper_model(model)
        if getattr(model, "family", "binary") != config.family:
            raise ModelError(f"{config.init} is a {getattr(model, 'family', 'binary')} model, not {config.family}")
        if hasattr(model, "restore_likelihood_floor"):
            model.restore_likelihood_floor()
        if config.latent_gain != 1.0:
            if not hasattr(model, "scale_latents"):
                raise ModelError(f"a latent gain needs a hyperprior model; {config.init} is {config.family}")
            model.scale_latents(config.latent_gain)
        return model
    if config.family == "hyperprior":
        from facelab.hyperprior import HyperpriorNet

        return HyperpriorNet(tuple(config.channels))
    if config.family == LEARNED_RATE:
        from facelab.learned_rate import LearnedRateNet

        return LearnedRateNet()
    return FaceCodecNet()


def build_loss(config: TrainConfig, device: torch.device) -> torch.nn.Module:
    """The phase's loss: L1 + (1 - MS-SSIM) for natural images, Eq. 2 for faces; inside the rate loss for a hyperprior."""
    from facelab.losses import CompressionLoss, FaceLoss, RateDistortionLoss

    if config.phase == "natural":
        loss: torch.nn.Module = CompressionLoss()
    else:
        embedder = None
        if config.b > 0:
            from facelab.faces import FaceEmbedder

            embedder = FaceEmbedder(device)
        loss = FaceLoss(a=config.a, b=config.b, pixel="l2", embedder=embedder, face_samples=config.face_samples)
    if config.family in RATE_FAMILIES:
        loss = RateDistortionLoss(loss, config.lmbda)
    return loss.to(device)


def parameter_groups(model: torch.nn.Module, lr: float) -> list[dict[str, Any]]:
    """The optimiser's groups: every weight at `lr`, except a hyperprior's entropy-model quantiles, which only its
    auxiliary loss moves and which must travel far (CompressAI trains them with their own optimiser at 1e-3), and a
    fresh bit model (`facelab.bitmodel`), which must learn from scratch while the codec it prices is fine-tuned."""
    named = list(model.named_parameters())
    starting = [name.endswith("quantiles") or name.startswith("bit_model.") for name, _ in named]
    groups: list[dict[str, Any]] = [{"params": [p for (_, p), new in zip(named, starting) if not new]}]
    fast = [p for (_, p), new in zip(named, starting) if new]
    if fast:
        groups.append({"params": fast, "lr": max(lr, FAST_LR), "weight_decay": 0.0})
    return groups


def reconstruction(output: Any) -> torch.Tensor:
    """The reconstruction in a model's forward output (a tensor, or a hyperprior's `RateOutput`)."""
    return output if torch.is_tensor(output) else output.x_hat


def loss_on_batch(model: FaceCodecNet, loss_fn: torch.nn.Module, batch: Any, device: torch.device,
                  dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Forward a batch (tensor of images, or dict with 'image' and 'box') and return the loss parts.

    The model runs under autocast in `dtype` (None: fp32); the loss sees fp32 reconstructions, and only
    FaceNet inside it (which autocast reaches) computes in `dtype`: pixel losses and MS-SSIM stay fp32.
    """
    images = (batch["image"] if isinstance(batch, dict) else batch).to(device)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        output = model(images).float()
    if isinstance(batch, dict):
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return loss_fn(output, images, batch["box"].to(device))
    return loss_fn(output, images)


def psnr_batch(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """Mean PSNR in dB over a batch of [0, 1] images (after rounding to 8 bits)."""
    mse = ((x_hat.clamp(0, 1) * 255).round() / 255 - x).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1 / mse)).mean())


@torch.no_grad()
def validate(model: FaceCodecNet, loss_fn: torch.nn.Module, loader: Iterable, device: torch.device,
             dtype: torch.dtype | None = None) -> dict[str, float]:
    """Mean loss parts and PSNR on the validation set, with the deterministic binarizer."""
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    for batch in loader:
        parts = loss_on_batch(model, loss_fn, batch, device, dtype)
        images = (batch["image"] if isinstance(batch, dict) else batch).to(device)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            x_hat = reconstruction(model(images)).float()
        parts = {**{k: float(v) for k, v in parts.items()}, "psnr": psnr_batch(x_hat, images)}
        n = images.shape[0]
        for key, value in parts.items():
            sums[key] = sums.get(key, 0.0) + value * n
        count += n
    return {f"val_{k}": v / max(count, 1) for k, v in sums.items()}


def cosine_factor(step: int, total: int) -> float:
    """The 'cosine' schedule's multiplier of the starting rate at `step` of `total`: 1 down to 0."""
    return 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


class ResumeError(ModelError):
    """A run folder's `last.pt` cannot be resumed: damaged, foreign or made with another configuration."""


class Trainer:
    """Trains a model (either family) for one phase, checkpointing to `run_dir` after every epoch; `model` replaces
    the config's starting model (`build_model`), for an experiment that changes its architecture."""

    def __init__(self, config: TrainConfig, run_dir: str | Path, model: torch.nn.Module | None = None) -> None:
        if config.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {config.schedule!r}: choose from {', '.join(SCHEDULES)}")
        if config.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {config.optimizer!r}: choose from {', '.join(OPTIMIZERS)}")
        if config.schedule == "cosine" and not config.steps_per_epoch:
            raise ValueError("the cosine schedule needs steps_per_epoch, to know the run's length")
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = get_device(config.device)
        self.dtype = autocast_dtype(config.precision, self.device)
        seed_everything(config.seed)
        self.model = (build_model(config) if model is None else model).to(self.device)
        self.model.name = config.name
        self.optimizer = OPTIMIZERS[config.optimizer](
            parameter_groups(self.model, config.lr), lr=config.lr, betas=(config.beta1, 0.999), weight_decay=config.weight_decay
        )
        self.scheduler: Any = None
        if config.schedule == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, factor=0.5, patience=PLATEAU_PATIENCE, min_lr=config.lr * MIN_LR_FACTOR)
        elif config.schedule == "cosine":
            total = config.epochs * config.steps_per_epoch
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: cosine_factor(step, total))
        self.history: list[dict[str, float]] = []
        self.epoch = 0
        self.seconds = 0.0

    @property
    def state_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def checksum_path(self) -> Path:
        """The SHA-256 of `last.pt`: torch does not notice flipped bytes inside a tensor, this does."""
        return self.run_dir / "last.pt.sha256"

    def save_state(self) -> None:
        """Everything needed to resume, as plain data (loadable with weights_only=True), written atomically."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "rng": torch.get_rng_state(), "epoch": self.epoch, "history": self.history,
            "seconds": self.seconds, "config": asdict(self.config),
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        for path, content in ((self.checksum_path, hashlib.sha256(data).hexdigest().encode()), (self.state_path, data)):
            tmp = path.with_name(f"{path.name}.part")
            tmp.write_bytes(content)
            tmp.replace(path)
        (self.run_dir / "history.json").write_text(json.dumps(self.history, indent=1))

    def try_resume(self) -> bool:
        """Load `last.pt` when it exists and was made with the same configuration (more epochs may be asked).

        It is read with weights_only=True, so a run folder can never make Python run code; a damaged file
        or another configuration raises ResumeError naming the file and what to do.
        """
        if not self.state_path.is_file():
            return False
        advice = f"delete {self.run_dir} or pass --no-resume to start over, or use another run folder"
        data = self.state_path.read_bytes()
        recorded = self.checksum_path.read_text().strip() if self.checksum_path.is_file() else None
        if recorded != hashlib.sha256(data).hexdigest():
            why = "its checksum does not match" if recorded else f"{self.checksum_path.name} is missing"
            raise ResumeError(f"{self.state_path} cannot be resumed ({why}: damaged or not written by facelab); {advice}")
        try:
            state = torch.load(io.BytesIO(data), map_location=self.device, weights_only=True)
            saved = {**state["config"], "epochs": 0}
        except Exception as exc:  # torch raises many types for damaged or hostile files
            raise ResumeError(f"{self.state_path} cannot be resumed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'}); {advice}") from exc
        if json.loads(json.dumps(saved)) != json.loads(json.dumps({**asdict(self.config), "epochs": 0})):
            raise ResumeError(f"{self.state_path} was made with another configuration; {advice}")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler and state["scheduler"]:
                self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            self.epoch, self.history, self.seconds = int(state["epoch"]), list(state["history"]), float(state["seconds"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise ResumeError(f"{self.state_path} does not hold a facelab run state ({exc}); {advice}") from exc
        return True

    def update(self, loss: torch.Tensor) -> bool:
        """One optimiser step on `loss`; False (and no step) when the loss or a gradient is not finite.

        A single overflowing batch (bf16, a hyperprior's early rate estimates) would otherwise put NaN into every
        weight and into Adam's moments for good; skipped steps are counted in the epoch's history record.
        With `config.clip_norm` the gradients of the first parameter group (every weight but a hyperprior's quantiles,
        whose auxiliary loss has gradients of another scale) are scaled down to that norm first.
        """
        self.optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            return False
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), float("inf"))
        if self.config.clip_norm:
            torch.nn.utils.clip_grad_norm_(self.optimizer.param_groups[0]["params"], self.config.clip_norm)
        if not torch.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            return False
        self.optimizer.step()
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
            skipped = 0
            steps = config.steps_per_epoch or len(train_loader)
            bar = tqdm(total=steps, desc=f"{config.name} epoch {self.epoch + 1}/{config.epochs}", leave=False)
            step = 0
            while step < steps:
                for batch in train_loader:
                    parts = loss_on_batch(self.model, loss_fn, batch, self.device, self.dtype)
                    if self.update(parts["total"]):
                        for key, value in parts.items():
                            sums[key] = sums.get(key, 0.0) + value.item()
                    else:
                        skipped += 1
                    if config.schedule == "cosine":
                        self.scheduler.step()
                    step += 1
                    bar.update(1)
                    bar.set_postfix({k: f"{v / max(step - skipped, 1):.4f}" for k, v in sums.items()})
                    if step >= steps:
                        break
            bar.close()
            record = {"epoch": self.epoch + 1, **{k: v / max(steps - skipped, 1) for k, v in sums.items()}}
            if skipped:
                record["skipped_steps"] = skipped
            record["images_per_s"] = round(steps * config.batch_size / (time.perf_counter() - start), 1)
            record.update(validate(self.model, loss_fn, val_loader, self.device, self.dtype))
            record["lr"] = self.optimizer.param_groups[0]["lr"]
            if config.schedule == "plateau":
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
    if hasattr(trainer.model, "round_to_half"):
        trainer.model.cpu().round_to_half()
    return save_checkpoint(
        trainer.model.cpu(), output, config.name, config=asdict(config), data=data_info,
        history=trainer.history, device=describe_device(trainer.device), seconds=round(trainer.seconds, 1),
        precision=str(trainer.dtype or torch.float32).replace("torch.", ""), torch_version=str(torch.__version__),
    )


def describe_device(device: torch.device) -> str:
    """The device in words, for checkpoints: 'cpu (2 threads)' or the GPU's name."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({torch.get_num_threads()} threads)"


def format_record(record: dict[str, float]) -> str:
    """One line per epoch: the losses and validation figures."""
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) and not math.isnan(v) else f"{k}={v}" for k, v in record.items())
