"""Downloading a dataset from its official address, only when the user asks, with every file checked by checksum."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from facelab.data.files import file_digest
from facelab.data.registry import OfficialFile, dataset_info
from facelab.errors import DatasetError
from facelab.runtime import data_root


def verify(path: Path, official: OfficialFile) -> str | None:
    """Why `path` is not the official file (size or checksum), or None when it is."""
    if official.size is not None and path.stat().st_size != official.size:
        return f"{path.stat().st_size} bytes instead of {official.size}"
    for algorithm in ("sha256", "md5"):
        expected = getattr(official, algorithm)
        if expected and (actual := file_digest(path, algorithm)) != expected:
            return f"{algorithm.upper()} {actual} instead of {expected}"
    return None


def fetch(official: OfficialFile, target: Path, progress: bool = True) -> Path:
    """Download `official` to `target` through a .part file, verified before it takes its final name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(official.url, timeout=60) as response, open(part, "wb") as handle:
            total = official.size or int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=official.filename, disable=not progress) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    handle.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError) as exc:
        part.unlink(missing_ok=True)
        raise DatasetError(f"could not download {official.url} ({exc}); fetch it by hand and put it at {target}") from None
    problem = verify(part, official)
    if problem:
        part.unlink()
        raise DatasetError(f"{official.url}: downloaded file has {problem}; nothing was kept")
    os.replace(part, target)
    return target


def unpack(archive: Path, destination: Path) -> None:
    """Extract a zip into `destination`, refusing members that would land outside it."""
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                if not (destination / member).resolve().is_relative_to(destination.resolve()):
                    raise DatasetError(f"{archive}: member {member!r} would be written outside {destination}")
            bundle.extractall(destination)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{archive}: not a readable zip ({exc})") from None


def download(name: str, root: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Fetch dataset `name` into the data root from its official address (checked by checksum) and unpack it.

    Only datasets whose official source still works can be downloaded; for the others the DatasetError
    says exactly what to get by hand, from where, and where to put it. Archives are kept under
    <data root>/downloads/; no file is fetched again while it passes its checksum.
    """
    info = dataset_info(name)
    root = data_root(root)
    if not info.downloadable:
        raise DatasetError(f"{info.title} cannot be downloaded automatically: {info.how_to_get}")
    print(f"{info.title}: {info.terms}. Source: {info.homepage}", file=sys.stderr)
    for official in info.files:
        target = root / ("downloads" if official.unpack_to else info.folder) / official.filename
        if not target.is_file() or verify(target, official):
            fetch(official, target, progress)
        marker = root / official.unpack_to / f".unpacked-{official.filename}"
        if official.unpack_to and not marker.is_file():
            unpack(target, root / official.unpack_to)
            marker.write_text(official.sha256 or official.md5 or "")
    return root / info.folder
