"""Shared fixtures: the real data root, the counts its README states, and small images made on the fly."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
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


def stated_counts(readme: Path) -> dict[str, dict[str, int]]:
    """The counts the data README's table states, by folder: {folder: {"images": 5910, "identities": 197}}.

    Read from the table rows whose first cell is a quoted folder, counting phrases of the third cell
    like "13,233 images" or "5,749 people".
    """
    rows = {}
    for line in readme.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            found = re.findall(r"(\d[\d,]*) (images|identities|people|pairs|lines)\b", cells[2])
            rows[cells[0].strip("`")] = {word: int(number.replace(",", "")) for number, word in found}
    return rows


@pytest.fixture(scope="session")
def readme_count(data_root: Path) -> Callable[[str, str], int]:
    """count(folder prefix, word): the total the data README states for its folders under that prefix."""
    rows = stated_counts(data_root / "README.md")

    def count(prefix: str, word: str) -> int:
        matching = [counts[word] for folder, counts in rows.items() if folder.startswith(prefix) and word in counts]
        assert matching, f"{data_root / 'README.md'} states no {word} for {prefix}"
        return sum(matching)

    return count


@pytest.fixture(scope="session")
def lfw_image_path(data_root: Path) -> Path:
    return data_root / "lfw" / "lfw-deepfunneled" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"


@pytest.fixture
def smooth_image() -> np.ndarray:
    """A 37x53 RGB gradient: an odd size that exercises padding to multiples of 8."""
    y, x = np.mgrid[0:37, 0:53]
    return np.stack([x * 4, y * 6, (x + y) * 2], axis=2).clip(0, 255).astype(np.uint8)
