"""Shared fixtures: the real data root, and small images made on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


def real_data_root() -> Path | None:
    """$FACELAB_DATA when it holds the course data; in CI its absence is a failure, not a skip."""
    root = os.environ.get("FACELAB_DATA")
    if root and (Path(root) / "lfw").is_dir():
        return Path(root)
    if os.environ.get("CI"):
        raise RuntimeError("CI must set FACELAB_DATA to the course data (../shared/data)")
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = real_data_root()
    if root is None:
        pytest.skip("FACELAB_DATA is not set to the course data (e.g. FACELAB_DATA=../shared/data)")
    return root


@pytest.fixture(scope="session")
def lfw_image_path(data_root: Path) -> Path:
    return data_root / "lfw" / "lfw-deepfunneled" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"


@pytest.fixture
def smooth_image() -> np.ndarray:
    """A 37x53 RGB gradient: an odd size that exercises padding to multiples of 8."""
    y, x = np.mgrid[0:37, 0:53]
    return np.stack([x * 4, y * 6, (x + y) * 2], axis=2).clip(0, 255).astype(np.uint8)
