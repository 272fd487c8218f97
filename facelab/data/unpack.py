"""Unzipping an archive into the data root atomically: into a scratch folder beside the target, checked, then renamed.

The target folder appears whole or not at all, so an interrupted or refused unpack never leaves
half a dataset where the loaders would find it.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from facelab.data.manifest import Manifest, check_tree, locate
from facelab.errors import DatasetError

IGNORED = ("__MACOSX",)
"""Top-level archive entries that are not content (macOS resource forks)."""


def extract(archive: Path, folder: Path) -> None:
    """Extract a zip into `folder`, refusing members that would land outside it; zip's CRCs are checked on the way."""
    folder.mkdir(parents=True)
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                if not (folder / member).resolve().is_relative_to(folder.resolve()):
                    raise DatasetError(f"{archive}: member {member!r} would be written outside {folder}")
            bundle.extractall(folder)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{archive}: not a readable zip ({exc})") from None
    except OSError as exc:
        raise DatasetError(f"{archive}: cannot be unzipped into {folder} ({exc})") from None


def content_folder(scratch: Path, manifest: Manifest | None) -> Path:
    """What the archive holds: the folder with the manifest's files, else its single top folder, else everything."""
    if manifest:
        found = locate(scratch, manifest)
        if found is None:
            raise DatasetError(f"the archive holds none of the files facelab's manifest lists "
                               f"(e.g. {next(iter(manifest))})")
        return found
    entries = [entry for entry in scratch.iterdir() if entry.name not in IGNORED]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else scratch


def unpack(archive: Path, target: Path, manifest: Manifest | None = None) -> int:
    """Unzip `archive` so that its content becomes the folder `target`; the number of files it holds.

    With a manifest, every listed file must be there with its SHA-256 before `target` is created.
    """
    if target.exists():
        raise DatasetError(f"{target} already exists; move it away to unpack {archive.name} again")
    scratch = target.parent / f".{target.name}.unpacking"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        extract(archive, scratch)
        content = content_folder(scratch, manifest)
        problem = check_tree(content, manifest) if manifest else None
        if problem:
            raise DatasetError(f"{archive.name} unpacks to different files than facelab knows: {problem}")
        files = sum(path.is_file() for path in content.rglob("*"))
        content.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return files
