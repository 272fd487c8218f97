"""Trained weights: the checkpoint format, the weights shipped in the package, and model identity.

A checkpoint is a `torch.save`d dict with the model's state, the training configuration, the
data it saw and its loss history, so that a shipped file says how it was made. A model's
identifier (`model_id`) is its name plus a hash of its weights: the bitstream records it so
that a file is never decoded by a model it was not encoded with.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from facelab.errors import ModelError
from facelab.model import FaceCodecNet

FORMAT = "facelab-checkpoint"
FORMAT_VERSION = 1
SHIPPED_DIR = Path(__file__).parent / "weights"
SHIPPED = {
    "natural": "phase 1: natural-image pretraining, L1 + (1 - MS-SSIM)",
    "face": "phase 2: face fine-tuning with a*L2(pixels) + b*L2(FaceNet embeddings), a = b = 1",
    "face-pixel": "phase 2 ablation: the same fine-tuning without the face loss (b = 0)",
    "face-adamw": "phase 2 as 'face', with the weight decay decoupled from Adam's gradient (AdamW)",
    "face-pixel-adamw": "phase 2 ablation as 'face-pixel', with the weight decay decoupled (AdamW)",
}
DEFAULT_MODEL = "face-adamw"
"""The model `compress` uses unless told otherwise: on LFW it keeps faces best (cosine similarity) at the
same rate as the paper's recipe, with better PSNR (see lesson 05)."""


def weights_hash(model: torch.nn.Module) -> str:
    """A short SHA-256 over the model's parameters and buffers, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def model_id(model: FaceCodecNet) -> str:
    """'<name>:<hash>' for a loaded model; the name is 'untrained' for a fresh one."""
    return f"{getattr(model, 'name', 'untrained')}:{weights_hash(model)}"


def save_checkpoint(model: FaceCodecNet, path: str | os.PathLike, name: str, **info: Any) -> Path:
    """Write a checkpoint atomically (temp file + rename); `info` holds config, data counts, history."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "name": name,
        "bits": model.bits,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **info,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict, with a clear error when the file is missing or not a facelab checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path} is not a readable PyTorch file ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path} is not a facelab checkpoint")
    if payload.get("version", 0) > FORMAT_VERSION:
        raise ModelError(f"{path} has checkpoint version {payload['version']}; upgrade facelab to read it")
    return payload


def resolve(spec: str | os.PathLike) -> Path:
    """A shipped model name ('face', 'natural', 'face-pixel') or a path -> the checkpoint's path."""
    if str(spec) in SHIPPED:
        path = SHIPPED_DIR / f"{spec}.pt"
        if not path.is_file():
            raise ModelError(f"shipped model '{spec}' is missing from {SHIPPED_DIR}; reinstall facelab")
        return path
    path = Path(spec).expanduser()
    if path.suffix != ".pt" and not path.exists():
        raise ModelError(f"unknown model '{spec}': use one of {', '.join(SHIPPED)} or a path to a .pt checkpoint")
    return path


def load_model(spec: str | os.PathLike = DEFAULT_MODEL, device: str | torch.device = "cpu") -> FaceCodecNet:
    """Build a `FaceCodecNet` in eval mode from a shipped name, a checkpoint path, or 'untrained'."""
    if str(spec) == "untrained":
        torch.manual_seed(0)
        model = FaceCodecNet()
        model.name = "untrained"
        return model.eval().to(device)
    payload = read_checkpoint(resolve(spec))
    model = FaceCodecNet(bits=payload.get("bits", 128))
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise ModelError(f"{spec}: weights do not fit the facelab model ({str(exc).splitlines()[0]})") from None
    model.name = payload["name"]
    model.checkpoint = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.eval().to(device)
