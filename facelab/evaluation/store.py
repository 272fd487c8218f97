"""A resumable on-disk cache of per-image results: shards of rows keyed by image (path in its set, size, content hash).

Each shard is one `.npz` of columns written atomically after every chunk, so an interrupted run loses at
most one chunk and a later run (or another method, or a larger --limit) reuses every row already computed.
A shard also holds the SHA-256 of its columns and the cache version that wrote it: one that fails either
(truncated, bit-flipped, edited, with a short or missing column) is deleted with one line naming it, and its
rows are computed again, so a damaged cache heals instead of failing every run. Shards from before the
checksum are recomputed too, with one line per folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np

from facelab.image_io import atomic_write

CACHE_VERSION = 1
"""Bumped when what is cached changes meaning, so old rows are not reused."""

KEY_COLUMN = "_key"
CHECK_ENTRY = "_check"
"""The entry of a shard that holds its checksum and cache version, as JSON."""


class BadShard(Exception):
    """A shard that cannot be trusted; the message says why."""


class UncheckedShard(BadShard):
    """A shard without a checksum: written by a facelab from before shards had one."""


def columns_sha256(columns: dict[str, np.ndarray]) -> str:
    """SHA-256 over the cache version and each column's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256(f"facelab cache v{CACHE_VERSION}".encode())
    for name in sorted(columns):
        column = np.ascontiguousarray(columns[name])
        digest.update(f"{name}|{column.dtype.str}|{column.shape}|".encode())
        digest.update(column.tobytes())
    return digest.hexdigest()


def read_shard(shard: Path) -> dict[str, np.ndarray]:
    """A shard's columns, its keys included, once its checksum, version and row counts hold; else BadShard."""
    try:
        with np.load(shard, allow_pickle=False) as data:
            columns = {name: data[name] for name in data.files}
    except Exception as exc:  # a damaged .npz fails in zipfile, zlib or numpy, with many exception types
        raise BadShard(f"unreadable ({type(exc).__name__})") from None
    check = columns.pop(CHECK_ENTRY, None)
    if check is None:
        raise UncheckedShard("it has no checksum (written by an older facelab)")
    try:
        recorded = json.loads(str(check))
    except ValueError:
        raise BadShard("its checksum entry is unreadable") from None
    if not isinstance(recorded, dict) or recorded.get("cache_version") != CACHE_VERSION:
        raise BadShard(f"written by another cache version than this facelab's ({CACHE_VERSION})")
    if recorded.get("sha256") != columns_sha256(columns):
        raise BadShard("checksum mismatch: its contents changed after it was written")
    keys = columns.get(KEY_COLUMN)
    if keys is None or keys.ndim != 1 or any(column.shape[:1] != keys.shape for column in columns.values()):
        raise BadShard("its columns do not have one row per key")
    return columns


def discard(shard: Path) -> None:
    """Delete a shard that failed its checks (a read-only cache keeps it, and it is checked again next time)."""
    with contextlib.suppress(OSError):
        shard.unlink()


def store_folder(root: Path, kind: str, settings: dict) -> Path:
    """<root>/<kind>/<hash of settings>, with the settings saved beside the shards."""
    text = json.dumps({"version": CACHE_VERSION, **settings}, sort_keys=True, default=str)
    folder = root / kind / hashlib.sha1(text.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    settings_file = folder / "settings.json"
    if not settings_file.exists():
        settings_file.write_text(text + "\n")
    return folder


class ShardStore:
    """Rows of named columns keyed by image key, kept in checked `.npz` shards under one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows: dict[str, dict[str, np.ndarray]] = {}
        unchecked = []
        for shard in sorted(folder.glob("shard-*.npz")):
            try:
                columns = read_shard(shard)
            except UncheckedShard:
                unchecked.append(shard)
                continue
            except BadShard as exc:
                print(f"facelab: recomputing the rows of {shard}: {exc}", file=sys.stderr)
                discard(shard)
                continue
            keys = columns.pop(KEY_COLUMN)
            for number, key in enumerate(keys):
                self.rows[str(key)] = {name: column[number] for name, column in columns.items()}
        if unchecked:
            print(f"facelab: recomputing the rows of {len(unchecked)} shard(s) in {folder}: written without a "
                  f"checksum by an older facelab", file=sys.stderr)
            for shard in unchecked:
                discard(shard)

    def missing(self, keys: list[str]) -> list[int]:
        """Positions in `keys` that have no row yet."""
        return [number for number, key in enumerate(keys) if key not in self.rows]

    def add(self, keys: list[str], columns: dict[str, np.ndarray]) -> None:
        """Store rows (one per key) and write them, with their checksum, as a new shard, atomically."""
        for number, key in enumerate(keys):
            self.rows[key] = {name: column[number] for name, column in columns.items()}
        stored = {KEY_COLUMN: np.asarray(keys), **{name: np.asarray(column) for name, column in columns.items()}}
        check = {"cache_version": CACHE_VERSION, "sha256": columns_sha256(stored)}
        buffer = io.BytesIO()
        np.savez(buffer, **stored, **{CHECK_ENTRY: np.asarray(json.dumps(check))})
        digest = hashlib.sha1("\n".join(keys).encode()).hexdigest()[:16]
        atomic_write(self.folder / f"shard-{digest}.npz", buffer.getvalue(), overwrite=True)

    def gather(self, keys: list[str], names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Columns `names` (all of the first row's when None) for `keys`, in their order (every key must have a
        row, and every row those columns)."""
        names = self.rows[keys[0]].keys() if names is None else names
        return {name: np.stack([self.rows[key][name] for key in keys]) for name in names}
