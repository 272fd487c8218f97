"""`facelab data download`: a dataset from its official address (or a mirror), only when asked, checked before use.

Each official file is streamed to <data root>/downloads/<file>.part (resumed when interrupted), checked
(size and hash, the images it must decode to, or after unzipping a manifest of every file), and only then
put in place: plain files by a rename, archives by an atomic unpack (facelab.data.unpack), after which the
archive is deleted. What is already in place is left alone. A failure is one line saying what to fetch
by hand and where to put it. $FACELAB_MIRROR replaces every official address by
<mirror>/<download name>/<file name> (a local server or a file:// folder laid out that way).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from facelab.data.fetch import FetchError, fetch
from facelab.data.files import file_digest
from facelab.data.manifest import read_manifest
from facelab.data.registry import COURSE, COURSE_OPTIONAL, DOWNLOADS, DatasetInfo, OfficialFile, dataset_info
from facelab.data.unpack import unpack
from facelab.errors import DatasetError
from facelab.runtime import data_root

MIRROR_ENV = "FACELAB_MIRROR"


@dataclass
class Tally:
    """What downloading did: files put in place, bytes received, files found already in place."""

    files: int = 0
    received: int = 0
    present: int = 0

    def add(self, other: Tally) -> None:
        """Count `other` in."""
        self.files += other.files
        self.received += other.received
        self.present += other.present


@dataclass
class Report:
    """The outcome of `download_many`: the tally, the time taken, and the one-line failures (required or not)."""

    root: Path
    tally: Tally = field(default_factory=Tally)
    seconds: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: files and bytes downloaded, time, where, and how many official files were already in place."""
        return (f"downloaded {self.tally.files:,} files ({megabytes(self.tally.received)}) in {self.seconds:.0f} s "
                f"into {self.root}; {self.tally.present:,} official files or folders already in place, "
                "not fetched again")


def megabytes(count: int) -> str:
    """A byte count in MB, for people."""
    return f"{count / 1e6:,.1f} MB"


def source_name(name: str) -> str:
    """`name` if it is a download name, else DatasetError listing them."""
    if name not in DOWNLOADS:
        raise DatasetError(f"unknown download {name!r}: choose from {', '.join([*DOWNLOADS, 'course'])}")
    return name


def source_url(name: str, official: OfficialFile) -> str:
    """Where `official` is fetched from: its own address, or <$FACELAB_MIRROR>/<name>/<file name>."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{name}/{official.filename}" if mirror else official.url


def destination(info: DatasetInfo, official: OfficialFile, root: Path) -> Path:
    """Where `official` ends up under the data root: its unpacked folder, or the plain file."""
    return root / (official.unpack_to or official.save_as or f"{info.folder}/{official.filename}")


def verify(path: Path, official: OfficialFile) -> str | None:
    """Why `path` is not the official file (size, hash, or the image it must decode to), or None when it is."""
    if official.size is not None and path.stat().st_size != official.size:
        return f"{path.stat().st_size} bytes instead of {official.size}"
    for algorithm in ("sha256", "md5"):
        expected = getattr(official, algorithm)
        if expected and (actual := file_digest(path, algorithm)) != expected:
            return f"{algorithm.upper()} {actual} instead of {expected}"
    if official.image_size:
        try:
            with Image.open(path) as image:
                image.load()
                found = (image.format, image.mode, image.size)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            return f"not a readable image ({exc})"
        wanted = ("PNG", "RGB", official.image_size)
        if found != wanted:
            return f"a {found[0]} {found[1]} {found[2][0]}x{found[2][1]} image, not {wanted[0]} {wanted[1]} " \
                   f"{wanted[2][0]}x{wanted[2][1]}"
    return None


def by_hand(name: str, official: OfficialFile, url: str, archive: Path, reason: str) -> str:
    """The one-line failure: what went wrong, then what to fetch by hand, from where, and where to put it."""
    return (f"{name}: {official.filename} from {url}: {reason}; fetch it by hand from {official.url} and put it at "
            f"{archive}, then run `facelab data download {name}` again")


def get_file(name: str, info: DatasetInfo, official: OfficialFile, root: Path, progress: bool) -> Tally:
    """Put one official file in place under `root` (fetched, checked, then renamed or unpacked) unless it is there."""
    target = destination(info, official, root)
    if target.exists():
        return Tally(present=1)
    archive = root / "downloads" / official.filename
    url = source_url(name, official)
    received = 0
    if not archive.is_file():
        part = archive.with_name(archive.name + ".part")
        try:
            received = fetch(url, part, official.filename, official.size, progress)
        except FetchError as exc:
            raise DatasetError(by_hand(name, official, url, archive, str(exc))) from None
        problem = verify(part, official)
        if problem:
            part.unlink()
            raise DatasetError(by_hand(name, official, url, archive, f"the file received is not the one facelab "
                                       f"knows ({problem}): the source changed or the download was damaged; "
                                       "nothing was kept"))
        os.replace(part, archive)
    elif problem := verify(archive, official):
        raise DatasetError(by_hand(name, official, url, archive, f"{archive} is not the official file ({problem})"))
    if not official.unpack_to:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(archive, target)
        return Tally(files=1, received=received)
    try:
        files = unpack(archive, target, read_manifest(official.manifest) if official.manifest else None)
    except DatasetError as exc:
        archive.unlink()
        raise DatasetError(by_hand(name, official, url, archive, f"{exc}; nothing was kept")) from None
    archive.unlink()
    return Tally(files=files, received=received)


def download_source(name: str, root: Path, progress: bool = True) -> Tally:
    """Every official file of download `name` put in place under `root`; what it took."""
    info = dataset_info(DOWNLOADS[source_name(name)])
    print(f"{name}: {info.title}. Source: {info.homepage}. Terms: {info.terms}. Checked: {info.checksums}",
          file=sys.stderr)
    tally = Tally()
    for official in info.files:
        tally.add(get_file(name, info, official, root, progress))
    return tally


def download(name: str, root: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Fetch download `name` (see registry.DOWNLOADS) into the data root, checked before use; the dataset's folder.

    Raises DatasetError with one line saying what to fetch by hand and where to put it when a source fails.
    """
    root = data_root(root)
    download_source(name, root, progress)
    return root / dataset_info(DOWNLOADS[name]).folder


def expand(names: list[str]) -> list[str]:
    """Download names with `course` replaced by what the course's default run reads, each once, in order."""
    expanded = [part for name in names for part in (COURSE if name == "course" else (source_name(name),))]
    return list(dict.fromkeys(expanded))


def download_many(names: list[str], root: str | os.PathLike | None = None, progress: bool = True) -> Report:
    """Fetch each named download (or `course`), going on after a failure; the report says what happened.

    Under `course`, a failure of COURSE_OPTIONAL (CelebA's quota-limited Drive links) is `skipped`, not `failed`.
    """
    report = Report(data_root(root))
    start = time.perf_counter()
    for name in expand(names):
        try:
            report.tally.add(download_source(name, report.root, progress))
        except DatasetError as exc:
            optional = "course" in names and name in COURSE_OPTIONAL and name not in names
            (report.skipped if optional else report.failed)[name] = str(exc)
    report.seconds = time.perf_counter() - start
    return report
