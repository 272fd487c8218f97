"""facelab.judge: dlib's face descriptor as a second recogniser, on real LFW faces."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from PIL import Image

from facelab import judge
from facelab.data.files import read_rgb
from facelab.data.lfw import read_pairs
from facelab.errors import FacelabError, ImageError, ModelError
from facelab.evaluation.originals import FALLBACK_BOX, fallback_box
from facelab.evaluation.selection import lfw_set, select
from facelab.verification import pairs_accuracy

SUBSET = 200
"""LFW originals of the known pairs accuracy: the first 200 of the evaluation's seeded order (seed 0), 102 pairs."""

TORCH_TOLERANCE = 1e-5
"""How far a torch descriptor may be from dlib's, per value: on 300 LFW 112x96 faces (200 originals, 100 JPEG q10)
they were at most 6e-7 apart, their distance at most 1.5e-6."""

KNOWN_PAIRS_ACCURACY = 0.98091
"""The judge's 10-fold pairs accuracy on those originals with the FALLBACK_BOX centre box, measured 2026-12-04
(dlib-bin 20.0.1.post1, face-recognition-models 0.3.0): 2 of 102 pairs wrong. A pair more or fewer moves it by
about 0.01."""


def faces_in_centre_box(paths) -> tuple[list[np.ndarray], np.ndarray]:
    """The images and, for each, LFW's median face box (FALLBACK_BOX) in pixels."""
    images = [read_rgb(path) for path in paths]
    return images, np.stack([fallback_box(*image.shape[:2], FALLBACK_BOX) for image in images])


@pytest.fixture(scope="module")
def first_pairs(data_root) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The judge's descriptors of both images of View 2's first 4 same and first 4 different pairs, and `same`."""
    pairs = read_pairs(data_root)
    chosen = [pair for pair in pairs if pair.same][:4] + [pair for pair in pairs if not pair.same][:4]
    images, boxes = faces_in_centre_box([pair.path1 for pair in chosen] + [pair.path2 for pair in chosen])
    descriptors = judge.load_judge().embed(images, boxes)
    return descriptors[:8], descriptors[8:], np.asarray([pair.same for pair in chosen])


def test_same_person_is_near_and_different_people_far(first_pairs):
    first, second, same = first_pairs
    assert first.shape == (8, judge.DESCRIPTOR_SIZE) and first.dtype == np.float32
    distance = np.linalg.norm(first - second, axis=1)
    assert distance[same].max() < 0.6 < distance[~same].min()  # dlib's own same-person threshold
    similarity = judge.similarity(first, second)
    assert similarity[same].min() > similarity[~same].max()
    assert judge.similarity(first, first) == pytest.approx(np.ones(8), abs=1e-6)


def test_landmarks_then_descriptors_is_embed(lfw_image_path):
    images, boxes = faces_in_centre_box([lfw_image_path])
    model = judge.load_judge()
    landmarks = model.landmarks(images, boxes)
    assert landmarks.shape == (1, judge.LANDMARKS, 2)
    x1, y1, x2, y2 = boxes[0]
    assert ((landmarks[0, :, 0] > x1) & (landmarks[0, :, 0] < x2) & (landmarks[0, :, 1] > y1)
            & (landmarks[0, :, 1] < y2)).all(), "the eyes and nose lie inside the face box"
    np.testing.assert_allclose(model.descriptors(images, landmarks), model.embed(images, boxes), atol=1e-6)
    shifted = model.descriptors(images, landmarks + 6.0)  # the same pixels aligned 6 px off: a different chip
    assert 0.6 < judge.similarity(shifted, model.embed(images, boxes))[0] < 0.95  # identical at 1, strangers near 0.17


@pytest.mark.slow
def test_pairs_accuracy_of_the_originals_of_a_small_lfw_subset(data_root):
    evalset, _ = select(lfw_set(data_root), SUBSET, seed=0)
    images, boxes = faces_in_centre_box([image.path for image in evalset.images])
    descriptors = judge.load_judge().embed(images, boxes)
    pairs = evalset.pairs
    assert len(pairs) == 102
    scored = pairs_accuracy(descriptors[[pair.first for pair in pairs]], descriptors[[pair.second for pair in pairs]],
                            np.asarray([pair.same for pair in pairs]), np.asarray([pair.fold for pair in pairs]))
    assert scored.mean == pytest.approx(KNOWN_PAIRS_ACCURACY, abs=0.011)


def test_torch_descriptors_are_dlibs(data_root):
    pair = next(pair for pair in read_pairs(data_root) if pair.same)
    images, boxes = faces_in_centre_box([pair.path1, pair.path2])
    buffer = io.BytesIO()
    Image.fromarray(images[1]).save(buffer, "JPEG", quality=10)
    images.append(np.asarray(Image.open(buffer).convert("RGB")))  # a codec's reconstruction, aligned as its original
    model = judge.load_judge()
    landmarks = model.landmarks(images[:2], boxes[:2])
    landmarks = np.concatenate([landmarks, landmarks[1:]])
    torch_descriptors = model.descriptors(images, landmarks)
    dlib_descriptors = model.descriptors(images, landmarks, backend="dlib")
    assert torch_descriptors.dtype == dlib_descriptors.dtype == np.float32
    np.testing.assert_allclose(torch_descriptors, dlib_descriptors, rtol=0, atol=TORCH_TOLERANCE)
    assert judge.similarity(torch_descriptors, dlib_descriptors) == pytest.approx(np.ones(3), abs=1e-4)
    with pytest.raises(FacelabError, match="backend"):
        model.descriptors(images, landmarks, backend="onnx")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "trailing bytes"])
def test_a_damaged_descriptor_file_is_a_model_error(tmp_path, monkeypatch, damage):
    wheel = judge.models_folder()
    (tmp_path / judge.MODEL_FILES["landmarks"]).symlink_to(wheel / judge.MODEL_FILES["landmarks"])
    data = (wheel / judge.MODEL_FILES["descriptor"]).read_bytes()
    damaged = {"truncated": data[:len(data) // 3], "garbage": bytes(range(256)) * 64, "empty": b"",
               "trailing bytes": data + b"\0"}[damage]
    (tmp_path / judge.MODEL_FILES["descriptor"]).write_bytes(damaged)
    monkeypatch.setattr(judge, "_JUDGES", {})
    with pytest.raises(ModelError, match=f"{judge.MODEL_FILES['descriptor']}: cannot read dlib's face recognition"):
        judge.load_judge(tmp_path)


def test_bad_input_is_a_clear_error(lfw_image_path):
    model = judge.load_judge()
    image = read_rgb(lfw_image_path)
    with pytest.raises(ImageError, match="boxes"):
        model.landmarks([image], np.zeros((2, 4)))
    with pytest.raises(ImageError, match="uint8"):
        model.landmarks([image.astype(np.float32)], np.asarray([[60, 60, 190, 190]]))
    with pytest.raises(ImageError, match="landmarks"):
        model.descriptors([image], np.zeros((1, 68, 2)))
    assert model.descriptors([], np.zeros((0, judge.LANDMARKS, 2))).shape == (0, judge.DESCRIPTOR_SIZE)


def test_models_from_a_local_folder(tmp_path, monkeypatch):
    wheel = judge.models_folder()
    for name in judge.MODEL_FILES.values():
        (tmp_path / name).symlink_to(wheel / name)
    monkeypatch.setenv(judge.MODELS_ENV, str(tmp_path))
    monkeypatch.setattr(judge, "_JUDGES", {})
    assert judge.models_folder() == tmp_path
    assert judge.load_judge().folder == tmp_path.resolve()
    (tmp_path / judge.MODEL_FILES["landmarks"]).unlink()
    with pytest.raises(ModelError, match="shape_predictor_5_face_landmarks.dat"):
        judge.models_folder()


def test_missing_dlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib now raises ImportError
    monkeypatch.setattr(judge, "_JUDGES", {})
    with pytest.raises(FacelabError, match=r'pip install "facelab\[judge\]"'):
        judge.load_judge()
