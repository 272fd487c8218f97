"""`facelab data download` against a loopback HTTP server: good, resumed, refused and already-present downloads.

The server (started and stopped by the `server` fixture) serves small archives built here, at the paths
$FACELAB_MIRROR maps the registry's files to (<mirror>/<download name>/<file name>); nothing leaves the machine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from facelab import cli
from facelab.data import downloads, manifest, registry
from facelab.data.webpage import confirmation_link, looks_like_html
from facelab.errors import DatasetError

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Route:
    """What the server answers for one path: a body (Range honoured), an HTTP error, or a body cut short."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    cut_at: int | None = None
    """Close the connection after this many bytes of the body (announcing its full length)."""


@dataclass
class Server:
    """The loopback server's address, its routes, and the requests it got as (path, Range header)."""

    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)


def handler_for(server: Server) -> type[BaseHTTPRequestHandler]:
    """A request handler serving `server.routes` and logging each request."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = urlsplit(self.path).path
            server.requests.append((self.path, self.headers.get("Range")))
            route = server.routes.get(path)
            if route is None or route.status >= 400:
                self.send_error(route.status if route else 404)
                return
            body, start = route.body, 0
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes=") and route.status == 200:
                start = int(ranged[6:].split("-")[0])
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:route.cut_at] if route.cut_at else body[start:])
            if route.cut_at:
                self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A loopback HTTP server in a thread, set as $FACELAB_MIRROR; stopped after the test."""
    state = Server("")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(downloads.MIRROR_ENV, state.url)
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def png_bytes(size: tuple[int, int], colour: str = "gray") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (25, 25), (seed * 40 % 256, 90, 160)).save(buffer, format="JPEG")
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, content in members.items():
            bundle.writestr(name, content)
    return buffer.getvalue()


LFW_IMAGES = {"Ann_Lee/Ann_Lee_0001.jpg": jpeg_bytes(1), "Ann_Lee/Ann_Lee_0002.jpg": jpeg_bytes(2),
              "Bo_Ng/Bo_Ng_0001.jpg": jpeg_bytes(3)}
PAIRS = b"1 1\nAnn_Lee 1 2\nAnn_Lee 1 Bo_Ng 1\n"
NAMES = b"Ann_Lee 2\nBo_Ng 1\n"
CELEBA_ZIP = zip_bytes({"img_align_celeba/000001.jpg": jpeg_bytes(4), "img_align_celeba/000002.jpg": jpeg_bytes(5)})
IDENTITIES = b"000001.jpg 1\n000002.jpg 2\n"


def official(name: str, body: bytes, **kwargs: object) -> registry.OfficialFile:
    """An official file whose real address is never contacted (the mirror serves it), pinned by size and SHA-256."""
    return registry.OfficialFile(name, f"https://example.invalid/{name}", len(body),
                                 hashlib.sha256(body).hexdigest(), **kwargs)


@pytest.fixture
def small_registry(monkeypatch: pytest.MonkeyPatch, server: Server) -> Server:
    """The registry's lfw, natural (Kodak) and celeba made of tiny files, served by the loopback server."""
    lfw_zip = zip_bytes({f"lfw-deepfunneled/{path}": content for path, content in LFW_IMAGES.items()})
    kodak = {f"kodim{n:02d}.png": png_bytes(size) for n, size in ((1, (24, 16)), (2, (16, 24)))}
    files = {
        "lfw": (registry.OfficialFile("lfw-deepfunneled.zip", "https://example.invalid/lfw.zip",
                                      unpack_to="lfw/lfw-deepfunneled", manifest="test-lfw"),
                official("pairs.txt", PAIRS), official("lfw-names.txt", NAMES)),
        "natural": tuple(registry.OfficialFile(name, f"https://example.invalid/{name}", save_as=f"natural/kodak/{name}",
                                               image_size=Image.open(io.BytesIO(body)).size)
                         for name, body in kodak.items()),
        "celeba": (official("img_align_celeba.zip", CELEBA_ZIP, unpack_to="celeba/img_align_celeba"),
                   official("identity_CelebA.txt", IDENTITIES)),
    }
    for name, entries in files.items():
        monkeypatch.setitem(registry.REGISTRY, name, replace(registry.REGISTRY[name], files=entries))
    test_manifest = {path: hashlib.sha256(content).hexdigest() for path, content in LFW_IMAGES.items()}
    monkeypatch.setattr(downloads, "read_manifest", lambda name: test_manifest)
    server.routes.update({"/lfw/lfw-deepfunneled.zip": Route(lfw_zip), "/lfw/pairs.txt": Route(PAIRS),
                          "/lfw/lfw-names.txt": Route(NAMES), "/celeba/img_align_celeba.zip": Route(CELEBA_ZIP),
                          "/celeba/identity_CelebA.txt": Route(IDENTITIES),
                          **{f"/kodak/{name}": Route(body) for name, body in kodak.items()}})
    return server


def nothing_kept(root: Path) -> bool:
    """No file anywhere under `root` (empty folders allowed)."""
    return not any(path.is_file() for path in root.rglob("*"))


# --- good downloads ---------------------------------------------------------------------------

def test_a_good_download_is_checked_unpacked_and_readable(tmp_path: Path, small_registry: Server) -> None:
    from facelab import data

    assert downloads.download("lfw", tmp_path, progress=False) == tmp_path / "lfw"
    images = data.LFWImages(tmp_path)
    assert images.people == ["Ann_Lee", "Bo_Ng"] and len(images) == 3
    assert len(data.read_pairs(tmp_path)) == 2
    assert not (tmp_path / "downloads" / "lfw-deepfunneled.zip").exists(), "the archive is deleted once unpacked"
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob(".*unpacking"))
    assert all(path.startswith("/lfw/") for path, _ in small_registry.requests), "every file came from the mirror"


def test_kodak_images_are_checked_by_decoding_them_at_their_size(tmp_path: Path, small_registry: Server) -> None:
    downloads.download("kodak", tmp_path, progress=False)
    assert sorted(p.name for p in (tmp_path / "natural" / "kodak").iterdir()) == ["kodim01.png", "kodim02.png"]
    shutil.rmtree(tmp_path / "natural")
    small_registry.routes["/kodak/kodim02.png"] = Route(png_bytes((24, 16)))
    with pytest.raises(DatasetError, match=r"kodim02.png .*PNG RGB 24x16 image, not PNG RGB 16x24.*nothing was kept"):
        downloads.download("kodak", tmp_path, progress=False)
    assert not (tmp_path / "natural" / "kodak" / "kodim02.png").exists()


def test_already_present_files_are_not_fetched_again(tmp_path: Path, small_registry: Server) -> None:
    first = downloads.download_many(["lfw"], tmp_path, progress=False)
    assert (first.tally.files, first.tally.present) == (5, 0) and first.tally.received > 0
    asked = len(small_registry.requests)
    again = downloads.download_many(["lfw"], tmp_path, progress=False)
    assert (again.tally.files, again.tally.received, again.tally.present) == (0, 0, 3)
    assert len(small_registry.requests) == asked and "3 official files or folders already in place" in again.summary()


def test_an_archive_put_in_downloads_by_hand_is_checked_and_used(tmp_path: Path, small_registry: Server) -> None:
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "img_align_celeba.zip").write_bytes(CELEBA_ZIP)
    del small_registry.routes["/celeba/img_align_celeba.zip"]
    downloads.download("celeba", tmp_path, progress=False)
    assert sorted(p.name for p in (tmp_path / "celeba" / "img_align_celeba").iterdir()) == ["000001.jpg", "000002.jpg"]


# --- resuming ---------------------------------------------------------------------------------

def test_a_partial_download_resumes_with_a_range_request(tmp_path: Path, small_registry: Server) -> None:
    part = tmp_path / "downloads" / "img_align_celeba.zip.part"
    part.parent.mkdir()
    part.write_bytes(CELEBA_ZIP[:100])
    downloads.download("celeba", tmp_path, progress=False)
    assert ("/celeba/img_align_celeba.zip", "bytes=100-") in small_registry.requests
    assert (tmp_path / "celeba" / "img_align_celeba" / "000002.jpg").is_file() and not part.exists()


def test_an_interrupted_download_keeps_its_part_and_the_next_run_finishes_it(tmp_path: Path,
                                                                            small_registry: Server) -> None:
    small_registry.routes["/celeba/img_align_celeba.zip"].cut_at = 150
    with pytest.raises(DatasetError, match="connection .* after 150 .*run the command again to resume"):
        downloads.download("celeba", tmp_path, progress=False)
    assert (tmp_path / "downloads" / "img_align_celeba.zip.part").stat().st_size == 150
    small_registry.routes["/celeba/img_align_celeba.zip"].cut_at = None
    downloads.download("celeba", tmp_path, progress=False)
    assert small_registry.requests[-2] == ("/celeba/img_align_celeba.zip", "bytes=150-")
    assert (tmp_path / "celeba" / "img_align_celeba" / "000001.jpg").read_bytes() == jpeg_bytes(4)


def test_a_part_the_server_cannot_resume_is_fetched_again_whole(tmp_path: Path, small_registry: Server) -> None:
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "pairs.txt.part").write_bytes(PAIRS + b"and more: longer than the file")
    whole = zip_bytes({f"lfw-deepfunneled/{path}": content for path, content in LFW_IMAGES.items()})
    (tmp_path / "downloads" / "lfw-deepfunneled.zip.part").write_bytes(whole)
    downloads.download("lfw", tmp_path, progress=False)
    assert ("/lfw/lfw-deepfunneled.zip", f"bytes={len(whole)}-") in small_registry.requests, "answered 416"
    assert ("/lfw/pairs.txt", None) in small_registry.requests, "a part longer than the file is not resumed"
    assert (tmp_path / "lfw" / "pairs.txt").read_bytes() == PAIRS and (tmp_path / "lfw" / "lfw-deepfunneled").is_dir()


# --- failures: one line, what to fetch by hand and where to put it, nothing kept ----------------

def test_a_wrong_checksum_keeps_nothing(tmp_path: Path, small_registry: Server) -> None:
    small_registry.routes["/lfw/pairs.txt"] = Route(PAIRS.replace(b"Bo_Ng", b"Bo_Ny"))
    with pytest.raises(DatasetError) as caught:
        downloads.download("lfw", tmp_path, progress=False)
    line = str(caught.value)
    assert "\n" not in line and "pairs.txt" in line and "SHA256" in line and "nothing was kept" in line
    assert f"put it at {tmp_path / 'downloads' / 'pairs.txt'}" in line and "https://example.invalid/pairs.txt" in line
    assert not (tmp_path / "lfw" / "pairs.txt").exists() and not list((tmp_path / "downloads").iterdir())


def test_an_archive_that_unpacks_to_changed_files_keeps_nothing(tmp_path: Path, small_registry: Server) -> None:
    changed = {**LFW_IMAGES, "Bo_Ng/Bo_Ng_0001.jpg": jpeg_bytes(9)}
    small_registry.routes["/lfw/lfw-deepfunneled.zip"] = Route(zip_bytes(changed))
    with pytest.raises(DatasetError, match=r"1 of 3 files differ from facelab's manifest \(e.g. Bo_Ng/Bo_Ng_0001"):
        downloads.download("lfw", tmp_path, progress=False)
    assert nothing_kept(tmp_path) and not (tmp_path / "lfw" / "lfw-deepfunneled").exists()


@pytest.mark.parametrize("status", [404, 503])
def test_a_server_error_says_what_to_fetch_by_hand(tmp_path: Path, small_registry: Server, status: int) -> None:
    small_registry.routes["/lfw/lfw-deepfunneled.zip"] = Route(status=status)
    with pytest.raises(DatasetError, match=f"lfw: lfw-deepfunneled.zip from {small_registry.url}/lfw/"
                                           f"lfw-deepfunneled.zip: the server answered HTTP {status}.*fetch it by hand "
                                           "from https://example.invalid/lfw.zip and put it at .*downloads/"
                                           "lfw-deepfunneled.zip, then run `facelab data download lfw` again"):
        downloads.download("lfw", tmp_path, progress=False)
    assert nothing_kept(tmp_path)


def test_no_server_at_all_says_so(tmp_path: Path, small_registry: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(downloads.MIRROR_ENV, "http://127.0.0.1:9")
    with pytest.raises(DatasetError, match="no answer from the server"):
        downloads.download("kodak", tmp_path, progress=False)


def drive_page(form: str) -> Route:
    page = (f"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>"
            f"<p>Google Drive can't scan this file for viruses.</p>{form}</body></html>")
    return Route(page.encode(), content_type="text/html; charset=utf-8")


def test_a_drive_confirmation_page_is_followed_to_the_file(tmp_path: Path, small_registry: Server) -> None:
    small_registry.routes["/celeba/img_align_celeba.zip"] = drive_page(
        '<form id="download-form" action="/confirmed/img_align_celeba.zip" method="get">'
        '<input type="submit" value="Download anyway"/><input type="hidden" name="id" value="0B7EVK8r">'
        '<input type="hidden" name="export" value="download"><input type="hidden" name="confirm" value="t"></form>')
    small_registry.routes["/confirmed/img_align_celeba.zip"] = Route(CELEBA_ZIP)
    downloads.download("celeba", tmp_path, progress=False)
    assert ("/confirmed/img_align_celeba.zip?id=0B7EVK8r&export=download&confirm=t", None) in small_registry.requests
    assert (tmp_path / "celeba" / "img_align_celeba" / "000001.jpg").is_file()


def test_a_drive_quota_page_instead_of_the_file_says_so_and_keeps_nothing(tmp_path: Path,
                                                                         small_registry: Server) -> None:
    small_registry.routes["/celeba/img_align_celeba.zip"] = Route(
        b"<html><head><title>Google Drive - Quota exceeded</title></head><body>Too many users have viewed or "
        b"downloaded this file recently.</body></html>", content_type="application/octet-stream")
    with pytest.raises(DatasetError, match=r"web page instead of the file \(\"Google Drive - Quota exceeded\";.*quota"):
        downloads.download("celeba", tmp_path, progress=False)
    assert nothing_kept(tmp_path)


def test_unknown_names_list_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="choose from lfw, kodak, celeba, clic2020, course"):
        downloads.download_many(["imagenet"], tmp_path)


def test_web_page_helpers() -> None:
    assert looks_like_html("text/html; charset=UTF-8", b"") and looks_like_html("", b"\n  <!DOCTYPE html>")
    assert not looks_like_html("application/zip", b"PK\x03\x04")
    assert confirmation_link("<p>quota</p>", "https://drive.google.com/uc") is None


# --- manifests ----------------------------------------------------------------------------------

def test_manifests_are_written_reproducibly_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for path, content in LFW_IMAGES.items():
        (tmp_path / "tree" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "tree" / path).write_bytes(content)
    assert manifest.write_manifest(tmp_path / "tree", tmp_path / "a.txt.gz", (".jpg",)) == 3
    manifest.write_manifest(tmp_path / "tree", tmp_path / "b.txt.gz", (".jpg",))
    assert (tmp_path / "a.txt.gz").read_bytes() == (tmp_path / "b.txt.gz").read_bytes()
    lines = gzip.decompress((tmp_path / "a.txt.gz").read_bytes()).decode().splitlines()
    assert lines[0] == f"{hashlib.sha256(LFW_IMAGES['Ann_Lee/Ann_Lee_0001.jpg']).hexdigest()} Ann_Lee/Ann_Lee_0001.jpg"
    entries = dict(line.split(" ", 1)[::-1] for line in lines)
    assert manifest.check_tree(tmp_path / "tree", entries) is None
    assert manifest.locate(tmp_path, entries) == tmp_path / "tree"


def test_the_shipped_lfw_manifest_lists_every_image() -> None:
    entries = manifest.read_manifest("lfw-deepfunneled")
    assert len(entries) == 13233 and len({path.split("/")[0] for path in entries}) == 5749
    assert all(len(digest) == 64 for digest in entries.values())


def test_the_shipped_lfw_manifest_matches_the_course_data(data_root: Path) -> None:
    entries = manifest.read_manifest("lfw-deepfunneled")
    sample = dict(list(entries.items())[::500])
    assert manifest.check_tree(data_root / "lfw" / "lfw-deepfunneled", sample) is None


# --- the course's own entry point ---------------------------------------------------------------

def test_the_course_download_fills_an_empty_default_root_through_the_mirror(
        tmp_path: Path, small_registry: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("FACELAB_DATA", raising=False)
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "cache"))
    small_registry.routes["/celeba/img_align_celeba.zip"] = drive_page("")
    assert cli.main(["data", "download", "course"]) == 0
    out, err = capsys.readouterr()
    root = tmp_path / "cache" / "data"
    assert "downloaded 7 files (" in out and "MB) in " in out and f"into {root}" in out
    assert "celeba: img_align_celeba.zip" in err and "the course goes on without celeba" in err
    assert "facelab: error" not in err
    assert (root / "lfw" / "lfw-deepfunneled" / "Bo_Ng" / "Bo_Ng_0001.jpg").is_file()
    assert (root / "natural" / "kodak" / "kodim02.png").is_file()
    from facelab.data import face_training_problem, find_natural

    assert find_natural().name == "natural" and "celeba" in face_training_problem().lower()
    assert cli.main(["data", "download", "course"]) == 0
    assert "downloaded 0 files" in capsys.readouterr().out


def test_a_required_course_source_that_fails_fails_the_command(tmp_path: Path, small_registry: Server,
                                                                 capsys: pytest.CaptureFixture) -> None:
    small_registry.routes["/kodak/kodim01.png"] = Route(status=500)
    assert cli.main(["data", "download", "course", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("facelab: error: ") == 1 and "kodak: kodim01.png" in err and "HTTP 500" in err


def make_dry_run(*variables: str) -> str:
    """What `make course` would run (make -n), with these variable settings."""
    return subprocess.run(["make", "-n", "course", *variables], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=True).stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_course_downloads_only_without_facelab_data() -> None:
    assert "facelab data download course" in make_dry_run("FACELAB_DATA=")
    assert "facelab data download course" not in make_dry_run("FACELAB_DATA=/some/data")


def test_nothing_is_downloaded_at_import_time(server: Server) -> None:
    code = "import facelab.data, facelab.data.downloads, facelab.cli"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300,
                   env={**os.environ, downloads.MIRROR_ENV: server.url})
    assert server.requests == []
