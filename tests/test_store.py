"""Evaluation caches heal: a shard that fails its checksum or version is recomputed, with one line naming it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from facelab.evaluation.store import CHECK_ENTRY, KEY_COLUMN, ShardStore


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    store = ShardStore(tmp_path)
    store.add(["a", "b"], {"psnr": np.array([30.0, 31.0]), "embedding": np.ones((2, 4), np.float32)})
    store.add(["c"], {"psnr": np.array([32.0]), "embedding": np.zeros((1, 4), np.float32)})
    return tmp_path


def shard_of(folder: Path, key: str) -> Path:
    for shard in folder.glob("shard-*.npz"):
        with np.load(shard) as data:
            if key in data[KEY_COLUMN]:
                return shard
    raise AssertionError(key)


def rewrite(shard: Path, change) -> None:
    """Rewrite a shard's entries through `change(entries)`, keeping its recorded checksum."""
    with np.load(shard) as data:
        entries = {name: data[name] for name in data.files}
    change(entries)
    buffer = io.BytesIO()
    np.savez(buffer, **entries)
    shard.write_bytes(buffer.getvalue())


def truncate(shard: Path) -> None:
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])


def flip_a_bit(shard: Path) -> None:
    data = bytearray(shard.read_bytes())
    at = data.find(np.array([30.0, 31.0]).tobytes())
    assert at > 0
    data[at + 6] ^= 0x10
    shard.write_bytes(bytes(data))


def short_column(shard: Path) -> None:
    rewrite(shard, lambda entries: entries.update(psnr=entries["psnr"][:1]))


def missing_column(shard: Path) -> None:
    rewrite(shard, lambda entries: entries.pop("psnr"))


def wrong_value(shard: Path) -> None:
    rewrite(shard, lambda entries: entries.update(psnr=np.array([99.0, 31.0])))


def written_by_an_older_facelab(shard: Path) -> None:
    rewrite(shard, lambda entries: entries.pop(CHECK_ENTRY))


def other_cache_version(shard: Path) -> None:
    def change(entries: dict) -> None:
        check = json.loads(str(entries[CHECK_ENTRY]))
        entries[CHECK_ENTRY] = np.asarray(json.dumps({**check, "cache_version": 0}))

    rewrite(shard, change)


def test_shards_round_trip_with_their_checksum(folder: Path, capsys) -> None:
    store = ShardStore(folder)
    assert store.missing(["a", "b", "c"]) == [] and capsys.readouterr().err == ""
    assert store.gather(["c", "a"])["psnr"].tolist() == [32.0, 30.0]


@pytest.mark.parametrize("damage", [truncate, flip_a_bit, short_column, missing_column, wrong_value,
                                    written_by_an_older_facelab, other_cache_version])
def test_a_bad_shard_is_recomputed_and_named(folder: Path, damage, capsys) -> None:
    bad = shard_of(folder, "a")
    damage(bad)
    store = ShardStore(folder)
    lines = capsys.readouterr().err.strip().splitlines()
    named = f"1 shard(s) in {folder}: written without" if damage is written_by_an_older_facelab else f"{bad}: "
    assert len(lines) == 1 and lines[0].startswith(f"facelab: recomputing the rows of {named}")
    assert store.missing(["a", "b", "c"]) == [0, 1] and not bad.exists()
    store.add(["a", "b"], {"psnr": np.array([30.0, 31.0]), "embedding": np.ones((2, 4), np.float32)})
    assert ShardStore(folder).gather(["a", "b", "c"])["psnr"].tolist() == [30.0, 31.0, 32.0]
    assert capsys.readouterr().err == ""
