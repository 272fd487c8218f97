"""`facelab compress/decompress/info`: round trips, folders, and one clear line for every bad input."""

from __future__ import annotations

import lzma
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelab.cli import main
from facelab.image_io import load_image


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facelab.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def face_png(tmp_path: Path, smooth_image: np.ndarray) -> Path:
    path = tmp_path / "face.png"
    Image.fromarray(smooth_image).save(path)
    return path


def test_round_trip_through_the_command(tmp_path: Path, face_png: Path) -> None:
    xz, png = tmp_path / "face.xz", tmp_path / "back.png"
    result = run_cli("compress", str(face_png), str(xz), "--model", "untrained")
    assert result.returncode == 0, result.stderr
    assert "bpp" in result.stdout and xz.stat().st_size > 0
    result = run_cli("decompress", str(xz), str(png))
    assert result.returncode == 0, result.stderr
    assert load_image(png).shape == (37, 53, 3)
    info = run_cli("info", str(xz))
    assert "53x37 pixels" in info.stdout and "code 128x5x7" in info.stdout


def test_default_model_is_the_sweep_choice(tmp_path: Path, face_png: Path) -> None:
    xz = tmp_path / "face.xz"
    assert main(["compress", str(face_png), str(xz)]) == 0
    assert main(["info", str(xz)]) == 0
    from facelab.codec import read_header

    assert read_header(xz.read_bytes())[0].model_id.startswith("face-a100:")


def test_context_coder_writes_flc(tmp_path: Path, face_png: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert main(["compress", str(face_png), str(out), "--coder", "context", "--model", "untrained"]) == 0
    assert (out / "face.flc").read_bytes().startswith(b"FLAB")
    assert main(["decompress", str(out / "face.flc"), str(tmp_path / "face_back.png")]) == 0


def test_folders(tmp_path: Path, smooth_image: np.ndarray) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(smooth_image).save(src / "a.png")
    Image.fromarray(smooth_image).save(src / "sub" / "b.jpg")
    (src / "notes.txt").write_text("not an image")
    assert main(["compress", str(src), str(tmp_path / "codes"), "--model", "untrained"]) == 0
    assert sorted(p.relative_to(tmp_path / "codes").as_posix() for p in (tmp_path / "codes").rglob("*.xz")) == ["a.xz", "sub/b.xz"]
    assert main(["decompress", str(tmp_path / "codes"), str(tmp_path / "back")]) == 0
    assert load_image(tmp_path / "back" / "sub" / "b.png").shape == (37, 53, 3)


def test_never_overwrites_unless_asked(tmp_path: Path, face_png: Path, capsys) -> None:
    xz = tmp_path / "face.xz"
    xz.write_bytes(b"keep me")
    assert main(["compress", str(face_png), str(xz), "--model", "untrained"]) == 1
    assert xz.read_bytes() == b"keep me"
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["compress", str(face_png), str(xz), "--model", "untrained", "--overwrite"]) == 0
    assert xz.read_bytes().startswith(b"\xfd7zXZ")


def test_refuses_to_write_over_its_input(tmp_path: Path, face_png: Path, capsys) -> None:
    before = face_png.read_bytes()
    assert main(["decompress", str(face_png), str(face_png), "--overwrite"]) == 1
    assert face_png.read_bytes() == before
    assert "refusing to write over the input" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"\xfd7zXZ\x00\x00\x04", "truncated .xz"),
        (b"hello world, not compressed", "not a facelab file"),
        (lzma.compress(b"XXXX" + bytes(30)), "wrong magic"),
    ],
)
def test_bad_compressed_files_fail_cleanly(tmp_path: Path, content: bytes, message: str) -> None:
    bad, out = tmp_path / "bad.xz", tmp_path / "out.png"
    bad.write_bytes(content)
    result = run_cli("decompress", str(bad), str(out))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.png*"))


def test_truncated_real_file(tmp_path: Path, face_png: Path) -> None:
    xz = tmp_path / "face.xz"
    assert main(["compress", str(face_png), str(xz), "--model", "untrained"]) == 0
    xz.write_bytes(xz.read_bytes()[:-20])
    result = run_cli("decompress", str(xz), str(tmp_path / "o.png"))
    assert result.returncode == 1 and "truncated" in result.stderr and "Traceback" not in result.stderr


def test_unreadable_image(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = run_cli("compress", str(bad), str(tmp_path / "o.xz"), "--model", "untrained")
    assert result.returncode == 1 and "broken.png" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o.xz").exists()


def test_missing_input_and_bad_model(tmp_path: Path, face_png: Path) -> None:
    result = run_cli("compress", str(tmp_path / "nope.png"), str(tmp_path / "o.xz"))
    assert result.returncode == 1 and "does not exist" in result.stderr
    result = run_cli("compress", str(face_png), str(tmp_path / "o.xz"), "--model", "nonsense")
    assert result.returncode == 1 and "unknown model 'nonsense'" in result.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not torch")
    result = run_cli("compress", str(face_png), str(tmp_path / "o.xz"), "--model", str(bad))
    assert result.returncode == 1 and "not a readable PyTorch file" in result.stderr


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "LA", "CMYK"])
def test_any_image_mode_compresses(tmp_path: Path, smooth_image: np.ndarray, mode: str) -> None:
    rgb = Image.fromarray(smooth_image)
    if mode == "I;16":
        image = Image.fromarray(smooth_image[..., 0].astype(np.uint16) * 257)
    else:
        image = rgb.convert(mode)
    path = tmp_path / ("img.tif" if mode == "CMYK" else "img.png")
    image.save(path)
    assert load_image(path).shape == (37, 53, 3)
    assert main(["compress", str(path), str(tmp_path / "img.xz"), "--model", "untrained"]) == 0


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(path)
    assert load_image(path).max() == 255 and load_image(path).min() == 255


def test_very_large_image_is_refused_with_its_size(tmp_path: Path, monkeypatch, capsys) -> None:
    from facelab import limits

    monkeypatch.setattr(limits, "MAX_PIXELS", 1000)
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(path)
    assert main(["compress", str(path), str(tmp_path / "big.xz"), "--model", "untrained"]) == 1
    assert "megapixels" in capsys.readouterr().err
    assert not (tmp_path / "big.xz").exists()


def test_python_dash_m_facelab_is_the_command(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "facelab", "info", str(tmp_path / "missing.xz")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.startswith("facelab: error:") and "missing.xz" in result.stderr


def test_info_starts_without_the_torch_stack(tmp_path: Path, face_png: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "face.xz"
    assert main(["compress", str(face_png), str(out), "--model", "untrained"]) == 0
    probe = ("import sys; from facelab.cli import main; code = main(['info', sys.argv[1]]); "
             "print('loaded:', sorted(m for m in ('torch', 'facenet_pytorch', 'scipy', 'matplotlib') if m in sys.modules))")
    shown = subprocess.run([sys.executable, "-c", probe, str(out)], capture_output=True, text=True, check=True).stdout
    assert "facelab xz file" in shown and "loaded: []" in shown
