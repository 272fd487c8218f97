"""facelab.data.lfw_aligned: LFW aligned to 112x96 on the face-recognition template, cached, with a fallback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facelab import faces
from facelab.data import lfw_aligned
from facelab.data.align import FR_SIZE, FR_TEMPLATE, align_face, fit_similarity
from facelab.data.files import read_rgb
from facelab.data.lfw_aligned import FALLBACK_LANDMARKS, align_lfw
from facelab.errors import DatasetError
from facelab.image_io import save_image

PEOPLE = ("Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "Jiang_Zemin/Jiang_Zemin_0005.jpg",
          "Mohammed_Al-Douri/Mohammed_Al-Douri_0006.jpg")
"""Real LFW files; in the last two the most probable MTCNN face is a bystander at the image's edge."""


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh facelab cache for one test."""
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def aligned(data_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """PEOPLE aligned once into this module's own cache, which stays facelab's cache while the module runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACELAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        files = [data_root / "lfw" / "lfw-deepfunneled" / name for name in PEOPLE]
        yield files, align_lfw(data_root, files, progress=False)


def index_entries() -> dict[str, dict]:
    """The cached index of the deep-funneled folder, by file name."""
    return json.loads((lfw_aligned.cache_folder() / "lfw-deepfunneled.json").read_text())["entries"]


def eye_marks(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The image with a 3x3 magenta dot on each eye landmark."""
    marked = image.copy()
    for x, y in np.rint(landmarks[:2]).astype(int):
        marked[y - 1:y + 2, x - 1:x + 2] = (255, 0, 255)
    return marked


def test_landmarks_land_on_the_template(aligned):
    files, result = aligned
    assert result.fallback == [] and set(result.crops) == set(files)
    entries = index_entries()
    for path in files:
        image, landmarks = read_rgb(path), np.asarray(entries[path.name]["landmarks"])
        matrix = fit_similarity(landmarks, FR_TEMPLATE)
        mapped = landmarks @ matrix[:, :2].T + matrix[:, 2]
        assert np.abs(mapped - FR_TEMPLATE).max() < 6.0, path.name  # five landmarks of one real face
        crop = read_rgb(result.crops[path])
        assert crop.shape == (*FR_SIZE, 3)
        redone = align_face(image, landmarks, FR_SIZE, FR_TEMPLATE)  # from the landmarks as stored (0.01 px)
        assert np.abs(crop.astype(int) - redone).max() <= 2, path.name
        dots = align_face(eye_marks(image, landmarks), landmarks, FR_SIZE, FR_TEMPLATE).astype(int)
        ys, xs = np.nonzero((dots[..., 0] > 180) & (dots[..., 1] < 90) & (dots[..., 2] > 180))
        for side, template in zip((xs < FR_SIZE[1] / 2, xs >= FR_SIZE[1] / 2), FR_TEMPLATE[:2]):
            found = np.array([xs[side].mean(), ys[side].mean()])
            assert np.abs(found - template).max() < 3.0, path.name  # each eye within 3 px of the template's


def test_the_labelled_person_not_a_bystander(aligned):
    for path, entry in index_entries().items():
        x1, y1, x2, y2 = entry["box"]
        assert abs((x1 + x2) / 2 - 125) < 40 and abs((y1 + y2) / 2 - 125) < 40, path


def test_second_call_reads_the_cache(aligned, data_root, monkeypatch):
    files, first = aligned
    monkeypatch.setattr(faces, "detect_faces", lambda *args, **kwargs: pytest.fail("MTCNN ran on a cached file"))
    assert align_lfw(data_root, files, progress=False) == first


def test_a_copied_data_set_keeps_the_cache(aligned, tmp_path, monkeypatch):
    original = aligned[0][0]
    moved = tmp_path / "copy" / "lfw" / "lfw-deepfunneled" / original.parent.name / original.name
    moved.parent.mkdir(parents=True)
    shutil.copy(original, moved)
    monkeypatch.setattr(faces, "detect_faces", lambda *args, **kwargs: pytest.fail("MTCNN ran on a cached file"))
    assert align_lfw(tmp_path / "copy", [moved], progress=False).crops[moved].is_file()


def test_an_image_without_a_face_gets_the_fallback_crop(lfw_image_path, tmp_path, own_cache):
    plain = tmp_path / "data" / "lfw"  # LFW's plain layout: <root>/lfw/<Name>/<Name>_NNNN.jpg
    for name in ("Aaron_Eckhart", "Nobody_Here"):
        (plain / name).mkdir(parents=True)
    shutil.copy(lfw_image_path, plain / "Aaron_Eckhart")
    blank = np.full((250, 250, 3), 128, np.uint8)
    save_image(blank, plain / "Nobody_Here" / "Nobody_Here_0001.jpg")
    aligned = align_lfw(tmp_path / "data", progress=False)
    assert len(aligned.crops) == 2 and aligned.fallback == [plain / "Nobody_Here" / "Nobody_Here_0001.jpg"]
    assert aligned.describe()["fallback"] == 1
    crop = read_rgb(aligned.crops[aligned.fallback[0]])
    expected = align_face(read_rgb(aligned.fallback[0]), FALLBACK_LANDMARKS * 250, FR_SIZE, FR_TEMPLATE)
    assert np.array_equal(crop, expected)


def test_an_unreadable_file_is_a_clear_error(tmp_path, own_cache):
    person = tmp_path / "lfw" / "Broken_Person"
    person.mkdir(parents=True)
    (person / "Broken_Person_0001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="Broken_Person_0001.jpg"):
        align_lfw(tmp_path, progress=False)
