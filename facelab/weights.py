"""Trained weights: the checkpoint format, the weights shipped in the package, and model identity.

A checkpoint is a `torch.save`d dict with the model's state, the training configuration, the
data it saw and its loss history, so that a shipped file says how it was made, and the SHA-256 of
its tensors, checked on every load, so that a damaged file is refused instead of decoding badly. A model's
identifier (`model_id`) is its name plus a hash of its weights: the bitstream records it so
that a file is never decoded by a model it was not encoded with.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from facelab.catalog import DEFAULT_MODEL, SHIPPED, SHIPPED_DIR
from facelab.errors import ModelError
from facelab.image_io import atomic_write
from facelab.model import FaceCodecNet
from facelab.recipes import LEARNED_RATE

FORMAT = "facelab-checkpoint"
FORMAT_VERSION = 1
def weights_hash(model: torch.nn.Module) -> str:
    """A short SHA-256 over the model's parameters and buffers, in name order.

    Hashing a hyperprior's 5 MB of tensors took a third of each file's coding time, so the hash is kept on the
    model with the tensors' storage addresses and version counters (which every in-place change, an optimizer
    step or `load_state_dict`, increments) and recomputed only when one of them moved.
    """
    state = sorted(model.state_dict().items())
    fingerprint = tuple((name, tensor.data_ptr(), tensor._version) for name, tensor in state)
    cached = getattr(model, "_weights_hash", None)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    digest = hashlib.sha256()
    for name, tensor in state:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    model._weights_hash = (fingerprint, digest.hexdigest()[:12])
    return model._weights_hash[1]


def model_id(model: FaceCodecNet) -> str:
    """'<name>:<hash>' for a loaded model; the name is 'untrained' for a fresh one."""
    return f"{getattr(model, 'name', 'untrained')}:{weights_hash(model)}"


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over each tensor's name, dtype, shape and bytes, in name order: independent of torch.save."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike, name: str, **info: Any) -> Path:
    """Write a checkpoint atomically, with its tensors' SHA-256; `info` holds config, data counts, history.

    A hyperprior's parameters are stored in half precision (`HyperpriorNet.round_to_half` made them exact there),
    which halves the shipped size, and without the Gaussian coder's tables, which are the same for every model
    (`facelab.hyperprior.SHARED_TABLES`); its other buffers and the paper's model are stored as they are.
    """
    family = getattr(model, "family", "binary")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if family == "hyperprior":
        from facelab.hyperprior import SHARED_TABLES

        parameters = {name for name, _ in model.named_parameters()}
        state = {k: v.half() if k in parameters else v for k, v in state.items() if k not in SHARED_TABLES}
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "name": name,
        "family": family,
        "channels": list(getattr(model, "channels", ())),
        "bits": model.code_channels,  # the key checkpoints have always used for the code's channel count
        "state_dict": state,
        "sha256": state_sha256(state),
        **info,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write(path, buffer.getvalue(), overwrite=True)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict, with a clear error when the file is missing, damaged or not a facelab checkpoint.

    The tensors' SHA-256 is checked when the checkpoint records one (every checkpoint `save_checkpoint` writes).
    """
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
    recorded = payload.get("sha256")
    if recorded is not None and (not isinstance(payload.get("state_dict"), dict)
                                 or state_sha256(payload["state_dict"]) != recorded):
        raise ModelError(f"{path} is damaged: its weights do not match the SHA-256 recorded when it was saved")
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


def named_model(name: str, device: str | torch.device = "cpu") -> FaceCodecNet:
    """The model a file's header names: a shipped one or 'untrained', never a path (a file cannot open others)."""
    if name != "untrained" and name not in SHIPPED:
        raise ModelError(f"the file was encoded with model '{name}', which is not shipped with facelab; "
                         f"decode it with --model and the path of that checkpoint")
    return load_model(name, device)


def build_from(payload: dict[str, Any]) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """An empty model of the checkpoint's family and sizes, and its state in fp32."""
    state = payload["state_dict"]
    if payload.get("family", "binary") == "hyperprior":
        from facelab.hyperprior import HyperpriorNet, shared_tables

        channels = payload.get("channels")
        if not (isinstance(channels, list) and len(channels) == 2 and all(isinstance(c, int) and 0 < c <= 1024
                                                                          for c in channels)):
            raise ModelError(f"the checkpoint's hyperprior channels {channels!r} are not two sizes")
        state = {**{k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()}, **shared_tables()}
        return HyperpriorNet(tuple(channels)), state
    if payload.get("family", "binary") == LEARNED_RATE:
        from facelab.learned_rate import LearnedRateNet

        return LearnedRateNet(code_channels=payload.get("bits", 128)), state
    if payload.get("family", "binary") != "binary":
        raise ModelError(f"unknown model family {payload.get('family')!r}: upgrade facelab")
    return FaceCodecNet(code_channels=payload.get("bits", 128)), state


def load_model(spec: str | os.PathLike = DEFAULT_MODEL, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Build a model in eval mode from a shipped name, a checkpoint path, or 'untrained': the paper's `FaceCodecNet`,
    or for a checkpoint of the 'hyperprior' family a `facelab.hyperprior.HyperpriorNet`, of the 'learned-rate' family
    a `facelab.learned_rate.LearnedRateNet`."""
    if str(spec) == "untrained":
        torch.manual_seed(0)
        model = FaceCodecNet()
        model.name = "untrained"
        return model.eval().to(device)
    payload = read_checkpoint(resolve(spec))
    model, state = build_from(payload)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise ModelError(f"{spec}: weights do not fit the facelab model ({str(exc).splitlines()[0]})") from None
    model.name = payload["name"]
    model.checkpoint = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.eval().to(device)
