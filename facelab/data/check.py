"""`facelab data check`: for each dataset, where it was found, its image and identity counts, and what is missing."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from facelab.data.celeba import WILD_FOLDER, cached_count, find_celeba, read_identities
from facelab.data.files import file_digest, list_images, scan_images
from facelab.data.lfw import find_lfw, image_path, parse_pairs
from facelab.data.natural import find_clic, find_natural
from facelab.data.registry import REGISTRY, dataset_info
from facelab.errors import DatasetError
from facelab.runtime import data_root


@dataclass
class DatasetStatus:
    """What `check` found for one dataset: where, how many images and identities, notes, problems, what is missing."""

    name: str
    title: str
    root: Path
    found: bool = False
    location: Path | None = None
    images: int = 0
    identities: int | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def scan_note(status: DatasetStatus, paths: list[Path], progress: bool) -> list[Path]:
    """Probe `paths`, record broken and grayscale files on `status`, and return the usable ones."""
    scan = scan_images(paths, progress)
    if scan.skipped:
        example, reason = next(iter(scan.skipped.items()))
        status.problems.append(f"{len(scan.skipped)} unusable image file(s), skipped by the loaders (e.g. {example}: {reason})")
    if scan.grayscale:
        status.notes.append(f"{scan.grayscale} grayscale image(s), loaded as RGB")
    return scan.good


def official_match(path: Path, name: str, filename: str) -> str:
    """'matches the official file' or how it differs (by MD5), for a small metadata file."""
    expected = next(f.md5 for f in dataset_info(name).files if f.filename == filename)
    actual = file_digest(path)
    return "MD5 matches the official file" if actual == expected else f"MD5 {actual}, not the official {expected}"


def check_clic(root: Path, progress: bool) -> DatasetStatus:
    """CLIC 2020: train and valid counts, professional and mobile."""
    status = DatasetStatus("clic2020", dataset_info("clic2020").title, root)
    clic = find_clic(root)
    if clic is None:
        status.missing.append(f"no CLIC 2020 PNGs under {root}/clic2020/: {dataset_info('clic2020').how_to_get}")
        return status
    status.found, status.location = True, clic.location
    good = scan_note(status, clic.train + clic.val, progress)
    status.images = len(good)
    for label, files in (("train", clic.train), ("valid", clic.val)):
        kinds = {kind: sum(kind in str(p.relative_to(clic.location)).lower() for p in files)
                 for kind in ("professional", "mobile")}
        status.notes.append(f"{label}: {len(files)} images (professional {kinds['professional']}, mobile {kinds['mobile']})")
    if not clic.val:
        status.missing.append("no valid/ images (natural/kodak is used for validation instead)")
    return status


def check_natural(root: Path, progress: bool) -> DatasetStatus:
    """The natural/ fallback: Kodak and photo counts, and which source pretraining will use."""
    status = DatasetStatus("natural", dataset_info("natural").title, root)
    kodak = list_images(root / "natural" / "kodak")
    photos = list_images(root / "natural" / "photos")
    if kodak or photos:
        status.found, status.location = True, root / "natural"
        status.images = len(scan_note(status, kodak + photos, progress))
        status.notes.append(f"kodak: {len(kodak)} images (every 4th validates), photos: {len(photos)} images")
    if not kodak:
        status.missing.append(f"{root / 'natural' / 'kodak'}/*.png: {dataset_info('natural').how_to_get}")
    if not photos:
        status.missing.append(f"{root / 'natural' / 'photos'}/ (optional): photographs of facelab's own course data, "
                              "not downloadable; training uses the Kodak images without them")
    try:
        status.notes.append(f"natural-image pretraining uses: {find_natural(root).note}")
    except DatasetError as exc:
        status.problems.append(f"natural-image pretraining has no data: {exc}")
    return status


def check_celeba(root: Path, progress: bool) -> DatasetStatus:
    """CelebA: aligned or in-the-wild, image and identity counts, identity coverage, and the face cache."""
    status = DatasetStatus("celeba", dataset_info("celeba").title, root)
    try:
        layout = find_celeba(root)
    except DatasetError as exc:
        status.missing.append(str(exc))
        return status
    status.found, status.location = True, layout.images_dir
    files = scan_note(status, list_images(layout.images_dir), progress)
    status.images = len(files)
    if layout.kind == "wild":
        status.notes.append("in-the-wild images: facelab makes CelebA-aligned 178x218 crops with MTCNN on first use")
        status.missing.append(f"the official aligned set {layout.location / 'img_align_celeba'}/ (optional): "
                              f"{dataset_info('celeba').how_to_get}")
    if layout.identity_file:
        identities = read_identities(layout.identity_file)
        listed = [identities.get(p.name, identities.get(f"{p.stem}.jpg")) for p in files]
        status.identities = len({i for i in listed if i is not None})
        status.notes.append(f"{layout.identity_file.name}: {sum(i is not None for i in listed)} of {len(files)} "
                            f"images have an identity")
    else:
        status.missing.append(f"{layout.location / 'identity_CelebA.txt'} (optional; without it there are no "
                              "identities and the split is by file name)")
    wild = list_images(layout.location / WILD_FOLDER) if layout.kind == "aligned" else []
    if wild:
        identities = read_identities(layout.identity_file) if layout.identity_file else {}
        people = len({identities[p.name] for p in wild if p.name in identities})
        counts = f"{len(wild)} in-the-wild images" + (f", {people} identities" if people else "")
        status.notes.append(f"also {WILD_FOLDER}/: {counts} (read with source='wild')")
    cached, faces = cached_count(layout, files)
    status.notes.append(f"MTCNN results cached for {cached} of {len(files)} images ({faces} with a face)")
    return status


def check_lfw(root: Path, progress: bool) -> DatasetStatus:
    """LFW: layout, image and people counts, empty folders, and the pairs file (count, checksum, missing images)."""
    status = DatasetStatus("lfw", dataset_info("lfw").title, root)
    try:
        layout = find_lfw(root)
    except DatasetError as exc:
        status.missing.append(str(exc))
        return status
    status.found, status.location = True, layout.images_dir
    listed = layout.files()
    files = scan_note(status, listed, progress)
    status.images = len(files)
    status.identities = len({path.parent.name for path in files})
    status.notes.append(f"layout: {layout.variant}")
    with_images = {path.parent.name for path in listed}
    empty = sorted(p.name for p in layout.images_dir.iterdir() if p.is_dir() and p.name not in with_images)
    if empty:
        status.problems.append(f"{len(empty)} empty person folder(s), e.g. {empty[0]}")
    if layout.pairs is None:
        status.missing.append(f"{root / 'lfw' / 'pairs.txt'}: {dataset_info('lfw').how_to_get}")
    else:
        try:
            _, _, rows = parse_pairs(layout.pairs)
            absent = sum(not (image_path(layout.images_dir, a, i).is_file() and image_path(layout.images_dir, b, j).is_file())
                         for a, i, b, j, _ in rows)
            status.notes.append(f"pairs.txt: {len(rows)} pairs ({sum(r[4] for r in rows)} same, "
                                f"{sum(not r[4] for r in rows)} different), {official_match(layout.pairs, 'lfw', 'pairs.txt')}")
            if absent:
                status.problems.append(f"{absent} pair(s) in pairs.txt name images that are missing")
        except DatasetError as exc:
            status.problems.append(str(exc))
    names = layout.pairs.parent / "lfw-names.txt" if layout.pairs else root / "lfw" / "lfw-names.txt"
    if names.is_file():
        status.notes.append(f"lfw-names.txt: {official_match(names, 'lfw', 'lfw-names.txt')}")
    return status


CHECKS = {"clic2020": check_clic, "natural": check_natural, "celeba": check_celeba, "lfw": check_lfw}


def check(root: str | os.PathLike | None = None, progress: bool = True) -> list[DatasetStatus]:
    """The status of every registered dataset under the data root (argument, else $FACELAB_DATA, else the cache)."""
    root = data_root(root)
    return [CHECKS[name](root, progress) for name in REGISTRY]


def format_check(statuses: list[DatasetStatus]) -> str:
    """A plain-text report of `check`'s statuses, one block per dataset."""
    lines = [f"data root: {statuses[0].root}" if statuses else "no datasets registered"]
    for status in statuses:
        if status.found:
            counts = f"{status.images} images" + (f", {status.identities} identities" if status.identities else "")
            lines.append(f"[found]   {status.name}: {status.title}\n    at {status.location}: {counts}")
        else:
            lines.append(f"[missing] {status.name}: {status.title}")
        lines += [f"    {note}" for note in status.notes]
        lines += [f"    problem: {problem}" for problem in status.problems]
        lines += [f"    missing: {missing}" for missing in status.missing]
        lines.append(f"    terms: {dataset_info(status.name).terms}")
    return "\n".join(lines)
