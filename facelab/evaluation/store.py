"""A resumable on-disk cache of per-image results: shards of rows keyed by image (path in its set, size, content hash).

Each shard is one `.npz` of columns written atomically after every chunk, so an interrupted run loses at
most one chunk and a later run (or another method, or a larger --limit) reuses every row already computed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

CACHE_VERSION = 1
"""Bumped when what is cached changes meaning, so old rows are not reused."""

KEY_COLUMN = "_key"


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
    """Rows of named columns keyed by image key, kept in `.npz` shards under one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows: dict[str, dict[str, np.ndarray]] = {}
        for shard in sorted(folder.glob("shard-*.npz")):
            try:
                with np.load(shard, allow_pickle=False) as data:
                    columns = {name: data[name] for name in data.files}
            except (OSError, ValueError, EOFError):
                continue
            keys = columns.pop(KEY_COLUMN)
            for number, key in enumerate(keys):
                self.rows[str(key)] = {name: column[number] for name, column in columns.items()}

    def missing(self, keys: list[str]) -> list[int]:
        """Positions in `keys` that have no row yet."""
        return [number for number, key in enumerate(keys) if key not in self.rows]

    def add(self, keys: list[str], columns: dict[str, np.ndarray]) -> None:
        """Store rows (one per key) and write them as a new shard, atomically."""
        for number, key in enumerate(keys):
            self.rows[key] = {name: column[number] for name, column in columns.items()}
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".shard-", suffix=".npz")
        os.close(fd)
        try:
            np.savez(tmp, **{KEY_COLUMN: np.asarray(keys)}, **columns)
            digest = hashlib.sha1("\n".join(keys).encode()).hexdigest()[:16]
            os.replace(tmp, self.folder / f"shard-{digest}.npz")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def gather(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Columns for `keys`, in their order (every key must have a row)."""
        names = self.rows[keys[0]].keys()
        return {name: np.stack([self.rows[key][name] for key in keys]) for name in names}
