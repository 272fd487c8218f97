"""Where facelab runs: the compute device, seeds, and the cache and data folders."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def get_device(preference: str | None = None) -> torch.device:
    """Return the device to run on: the one asked for, else CUDA when present, else the CPU."""
    if preference and preference != "auto":
        device = torch.device(preference)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                "device 'cuda' was asked for but no GPU is visible; on Colab pick "
                "Runtime > Change runtime type > GPU, or pass device='cpu'"
            )
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def cache_dir() -> Path:
    """facelab's cache folder: $FACELAB_CACHE, else $XDG_CACHE_HOME/facelab, else ~/.cache/facelab."""
    if os.environ.get("FACELAB_CACHE"):
        root = Path(os.environ["FACELAB_CACHE"])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facelab"
    root.mkdir(parents=True, exist_ok=True)
    return root


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: the argument, else $FACELAB_DATA, else <cache>/data."""
    if root:
        return Path(root).expanduser()
    if os.environ.get("FACELAB_DATA"):
        return Path(os.environ["FACELAB_DATA"]).expanduser()
    return cache_dir() / "data"


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (Linux /proc/cpuinfo flags avx512_bf16 or amx_bf16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def fast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 where `device` computes it natively (a CUDA GPU with bf16, a CPU with AMX or AVX512-BF16), else None."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if device.type == "cpu" and native_bf16() else None

