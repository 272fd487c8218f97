"""Faults and odd inputs end in one `facelab: error:` line (exit 1), and outputs are written as users expect."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelab import image_io
from facelab.cli import main
from facelab.errors import FacelabWarning, OutputError
from facelab.image_io import PARTIAL, atomic_write, load_image


@pytest.fixture
def face_png(tmp_path: Path, smooth_image: np.ndarray) -> Path:
    path = tmp_path / "face.png"
    Image.fromarray(smooth_image).save(path)
    return path


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facelab: error: ") and "Traceback" not in err, err
    return lines[0]


def test_read_only_output_folder(face_png: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """Simulated: the tests may run as root, whom permission bits do not stop."""
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert main(["compress", str(face_png), str(tmp_path / "face.xz"), "--model", "untrained"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "face.xz" in line and "Read-only file system" in line


def test_full_disk(face_png: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle) -> None:
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.handle.close()

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", lambda fd, *args, **kwargs: FullDisk(real_fdopen(fd, *args, **kwargs)))
    target = tmp_path / "face.xz"
    assert main(["compress", str(face_png), str(target), "--model", "untrained"]) == 1
    assert "No space left on device" in one_error_line(capsys.readouterr().err)
    assert not target.exists() and not list(tmp_path.glob(f"face.xz{PARTIAL}*"))


def test_output_path_under_a_regular_file(face_png: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    assert main(["compress", str(face_png), str(blocker / "sub" / "face.xz"), "--model", "untrained"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"{blocker} is a file, not a folder" in line and "File exists" not in line


def test_out_of_memory_is_one_line_and_a_folder_goes_on(tmp_path: Path, smooth_image: np.ndarray,
                                                        monkeypatch, capsys) -> None:
    import facelab.codec

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(smooth_image).save(folder / name)
    real = facelab.codec.compress

    def compress(image, model=None, coder="xz"):
        if image[0, 0, 0] == 0 and not hasattr(compress, "failed"):
            compress.failed = True
            raise MemoryError("Unable to allocate 64.0 GiB for an array")
        return real(image, model, coder)

    monkeypatch.setattr(facelab.codec, "compress", compress)
    assert main(["compress", str(folder), str(tmp_path / "out"), "--model", "untrained"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("facelab:")]
    assert err[0] == f"facelab: error: {folder / 'a.png'}: out of memory (Unable to allocate 64.0 GiB for an array)"
    assert err[-1] == "facelab: 1 of 2 files failed" and (tmp_path / "out" / "b.xz").is_file()


def test_partial_files_say_what_they_are_and_stale_ones_are_removed(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "face.xz"
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(finished.stdout)
    stale = tmp_path / f"face.xz{PARTIAL}{dead}-abc123"
    stale.write_bytes(b"left by a SIGKILL")
    old = time.time() - 2 * image_io.STALE_SECONDS
    os.utime(stale, (old, old))
    young = tmp_path / f"face.xz{PARTIAL}{dead}-young"
    young.write_bytes(b"maybe a writer on another machine")
    alive = tmp_path / f"face.xz{PARTIAL}{os.getpid()}-alive"
    alive.write_bytes(b"a writer still running")
    os.utime(alive, (old, old))
    names = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: names.append(Path(src).name) or real_replace(src, dst))
    atomic_write(target, b"data")
    assert target.read_bytes() == b"data" and not stale.exists() and young.exists() and alive.exists()
    assert names[0].startswith(f"face.xz{PARTIAL}{os.getpid()}-") and not names[0].startswith(".")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_respect_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        path = atomic_write(tmp_path / "out.bin", b"x")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == mode


def test_atomic_write_failures_are_output_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        atomic_write(tmp_path / "file" / "deeper" / "out.bin", b"x")


def test_info_on_a_folder(tmp_path: Path, capsys) -> None:
    assert main(["info", str(tmp_path)]) == 1
    assert "is a folder" in one_error_line(capsys.readouterr().err)


def test_folder_errors_name_the_file_once(tmp_path: Path, smooth_image: np.ndarray, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(smooth_image).save(folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert main(["compress", str(folder), str(tmp_path / "out"), "--model", "untrained"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("facelab: error:")]
    assert len(errors) == 1 and errors[0].count("broken.png") == 1


def test_gif_files_are_compressed_in_folder_mode(tmp_path: Path, smooth_image: np.ndarray) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(smooth_image).save(folder / "still.gif")
    assert main(["compress", str(folder), str(tmp_path / "out"), "--model", "untrained"]) == 0
    assert (tmp_path / "out" / "still.xz").is_file()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A phone photo stored 20 wide and 10 high with orientation 6 (rotate 90 clockwise) is 10 wide and 20 high."""
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :10] = 255
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "portrait.jpg"
    image.save(path, exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.shape == (20, 10, 3)
    assert loaded[:10].mean() > 200 and loaded[10:].mean() < 50


def test_animated_gif_keeps_its_first_frame_and_says_so(tmp_path: Path, smooth_image: np.ndarray, capsys) -> None:
    path = tmp_path / "anim.gif"
    first, second = Image.fromarray(smooth_image), Image.fromarray(255 - smooth_image)
    first.save(path, save_all=True, append_images=[second], duration=100)
    with pytest.warns(FacelabWarning, match="animation of 2 frames; facelab keeps only the first"):
        assert load_image(path).shape == smooth_image.shape
    assert main(["compress", str(path), str(tmp_path / "anim.xz"), "--model", "untrained"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [f"facelab: warning: {path}: an animation of 2 frames; facelab keeps only the first"]
