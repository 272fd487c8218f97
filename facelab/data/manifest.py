"""Manifests: the file names and SHA-256 of what an archive must unpack to, for archives whose own hash is unpublished.

A manifest is a gzipped text file shipped in `facelab/data/manifests/`, one `<sha256> <relative path>` line
per file, sorted by path (the format of `sha256sum`, with one space). `scripts/make_manifest.py` writes
them from a trusted copy of the data; `check_tree` holds an unpacked folder to one before it is used.
"""

from __future__ import annotations

import gzip
from importlib import resources
from pathlib import Path

from facelab.data.files import file_digest
from facelab.errors import DatasetError

Manifest = dict[str, str]
"""{relative path with '/' separators: SHA-256 hex digest}."""


def manifest_lines(folder: Path, suffixes: tuple[str, ...]) -> list[str]:
    """The manifest lines of every file under `folder` whose suffix is in `suffixes`, sorted by path."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    return [f"{file_digest(path, 'sha256')} {path.relative_to(folder).as_posix()}" for path in files]


def write_manifest(folder: Path, target: Path, suffixes: tuple[str, ...]) -> int:
    """Write the gzipped manifest of `folder` to `target` (reproducibly: no time stamp); returns the file count."""
    lines = manifest_lines(folder, suffixes)
    if not lines:
        raise DatasetError(f"{folder} holds no {'/'.join(suffixes)} files to list")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=9, mtime=0))
    return len(lines)


def read_manifest(name: str) -> Manifest:
    """The packaged manifest `facelab/data/manifests/<name>.txt.gz`."""
    source = resources.files("facelab.data") / "manifests" / f"{name}.txt.gz"
    try:
        text = gzip.decompress(source.read_bytes()).decode()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DatasetError(f"facelab's manifest {name!r} cannot be read ({exc}); reinstall facelab") from None
    return {path: digest for digest, path in (line.split(" ", 1) for line in text.splitlines() if line)}


def locate(folder: Path, manifest: Manifest) -> Path | None:
    """The folder under `folder` (itself or deeper) that holds the manifest's first file at its listed path."""
    first = next(iter(manifest))
    if (folder / first).is_file():
        return folder
    depth = len(Path(first).parts)
    for candidate in folder.rglob(Path(first).name):
        base = candidate.parents[depth - 1]
        if (base / first).is_file():
            return base
    return None


def check_tree(folder: Path, manifest: Manifest) -> str | None:
    """Why `folder` does not hold every manifest file with its SHA-256 (missing or changed files), or None when it does.

    Files the manifest does not list are ignored.
    """
    missing, changed = [], []
    for path, digest in manifest.items():
        file = folder / path
        if not file.is_file():
            missing.append(path)
        elif file_digest(file, "sha256") != digest:
            changed.append(path)
    problems = [f"{len(found)} of {len(manifest)} files {what} (e.g. {found[0]})"
                for found, what in ((missing, "missing"), (changed, "differ from facelab's manifest")) if found]
    return "; ".join(problems) or None
