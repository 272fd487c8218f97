"""The main job on a fresh machine: `make course` with no data, fed by a loopback mirror of the official files.

A copy of the working tree with no ../shared beside it, FACELAB_DATA unset and empty caches: `make course SMOKE=1`
must fetch LFW and Kodak from $FACELAB_MIRROR (a 127.0.0.1 server laid out as the official files: LFW's zip,
pairs.txt and lfw-names.txt, the 24 Kodak PNGs, all made from the course data's real files so the registry's own
checks pass unchanged), go on without CelebA (the mirror answers with Google Drive's quota notice), then run every
lesson in smoke mode.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from facelab import course
from facelab.data.manifest import read_manifest

REPO = Path(__file__).resolve().parent.parent
RUN_LIMIT_S = 3600
"""A bound against a hang, not a benchmark: the run took 8 min on a 2-core CPU shared with a training job."""
QUOTA_PAGE = (b"<html><head><title>Google Drive - Quota exceeded</title></head><body>Too many users have viewed or "
              b"downloaded this file recently.</body></html>")

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.notebooks,
              pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None,
                                 reason="needs make and git")]


def build_mirror(data_root: Path, mirror: Path) -> None:
    """The official files of `facelab data download course` at <mirror>/<download name>/<file name>.

    LFW's zip holds `lfw-deepfunneled/<Name>/<Name>_NNNN.jpg` for every image of facelab's manifest (stored,
    not deflated: JPEGs do not shrink); CelebA's two files are the quota page Google Drive sends instead.
    """
    (mirror / "lfw").mkdir(parents=True)
    images = data_root / "lfw" / "lfw-deepfunneled"
    with zipfile.ZipFile(mirror / "lfw" / "lfw-deepfunneled.zip", "w", zipfile.ZIP_STORED) as bundle:
        for path in read_manifest("lfw-deepfunneled"):
            bundle.write(images / path, f"lfw-deepfunneled/{path}")
    for name in ("pairs.txt", "lfw-names.txt"):
        shutil.copyfile(data_root / "lfw" / name, mirror / "lfw" / name)
    shutil.copytree(data_root / "natural" / "kodak", mirror / "kodak")
    (mirror / "celeba").mkdir()
    for name in ("img_align_celeba.zip", "identity_CelebA.txt"):
        (mirror / "celeba" / name).write_bytes(QUOTA_PAGE)


class MirrorHandler(SimpleHTTPRequestHandler):
    """Serves the mirror folder and records each path asked for in the server's `asked` list."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.asked.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path, data_root: Path) -> Iterator[tuple[str, list[str]]]:
    """(URL, paths asked) of a loopback HTTP server over the built mirror; it only listens on 127.0.0.1."""
    build_mirror(data_root, tmp_path / "mirror")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(MirrorHandler, directory=str(tmp_path / "mirror")))
    httpd.asked = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.asked  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def copy_working_tree(target: Path) -> Path:
    """The files a clone of this working tree would hold (tracked and untracked, not ignored), copied to `target`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_make_course_runs_every_lesson_from_an_empty_machine(tmp_path: Path, mirror: tuple[str, list[str]]) -> None:
    url, asked = mirror
    clone = copy_working_tree(tmp_path / "work" / "facelab")
    assert not (clone.parent / "shared").exists()
    venv = Path(sys.prefix)
    env = {key: value for key, value in os.environ.items() if key not in ("FACELAB_DATA", "TORCH_HOME")}
    env.update(FACELAB_MIRROR=url, FACELAB_CACHE=str(tmp_path / "cache"), XDG_CACHE_HOME=str(tmp_path / "xdg"),
               MPLBACKEND="Agg", PYTHONPATH=str(clone))
    command = ["make", "-C", str(clone), "-o", f"{venv}/.installed", "course", f"VENV={venv}", "SMOKE=1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_LIMIT_S)
    tail = done.stdout[-2000:] + done.stderr[-1000:]
    report = clone / "results" / "REPORT.md"
    failures = [line for line in report.read_text().splitlines() if "FAILED" in line or "**Failed:**" in line] \
        if report.is_file() else []
    assert done.returncode == 0, "\n".join(failures) or tail

    root = tmp_path / "cache" / "data"
    assert "facelab data download course" in done.stdout and f"into {root}" in done.stdout, tail
    assert "downloaded 13,259 files" in done.stdout and "the course goes on without celeba" in done.stderr, tail
    assert sum(1 for _ in (root / "lfw" / "lfw-deepfunneled").rglob("*.jpg")) == 13233
    assert len(list((root / "natural" / "kodak").glob("kodim*.png"))) == 24
    assert not [path for folder in ("celeba", "downloads") for path in (root / folder).rglob("*") if path.is_file()]
    assert {path.split("/")[1] for path in asked} == {"lfw", "kodak", "celeba"}, "every file came from the mirror"

    runs = json.loads((clone / "results" / "results.json").read_text())
    lessons = [path.stem for path in course.find_notebooks(clone / "notebooks")]
    assert [run["notebook"] for run in runs] == lessons and len(lessons) == 8
    assert [run["notebook"] for run in runs if not run["ok"]] == []
    assert sorted(path.stem for path in (clone / "executed").glob("*.ipynb")) == lessons
    values = {run["notebook"][:2]: run["values"] for run in runs}
    assert values["00"]["lfw_images"] == 13233 and values["00"]["lfw_pairs"] == 6000
    assert "short_run" not in values["04"], "without CelebA lesson 04 trains nothing (LFW is never trained on)"
