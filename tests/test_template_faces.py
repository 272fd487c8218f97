"""CelebA's aligned faces on the 112x96 template: the fixed transform, the crops, the boxes and the split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facelab.data.align import CELEBA_TEMPLATE, FR_TEMPLATE
from facelab.data.files import read_rgb
from facelab.data.template_faces import (MARGIN, TemplateFaces, canvas_size, celeba_to_template, validation_folder,
                                         validation_sample)


def test_the_fixed_transform_maps_celeba_landmarks_onto_the_template() -> None:
    matrix = celeba_to_template()
    moved = CELEBA_TEMPLATE @ matrix[:, :2].T + matrix[:, 2]
    error = np.abs(moved - (FR_TEMPLATE + MARGIN))
    assert error[:2].max() < 1.0, "the eyes land on the template's eyes"
    assert error.max() < 4.0, "nose and mouth within 4 px (the two templates' faces differ in shape)"
    assert canvas_size() == (112 + 2 * MARGIN, 96 + 2 * MARGIN)


@pytest.fixture(scope="module")
def faces(data_root):
    return TemplateFaces(data_root, split="val", max_images=12, progress=False)


def test_validation_faces_are_centred_112x96_crops_with_their_boxes(faces) -> None:
    item = faces[0]
    assert item["image"].shape == (3, 112, 96) and 0 <= float(item["image"].min()) < float(item["image"].max()) <= 1
    x1, y1, x2, y2 = item["box"].tolist()
    assert 0 < (x1 + x2) / 2 < 96 and 0 < (y1 + y2) / 2 < 112 and x2 - x1 > 40, "the box is on the face"
    assert torch.equal(faces[0]["image"], item["image"]), "validation crops are fixed"
    assert faces.describe()["candidates"] == 12 and len(faces) + faces.describe()["no_face"] == 12


def test_the_benchmarks_sample_spreads_over_every_validation_person(data_root) -> None:
    sample = validation_sample(19, data_root)
    folder = validation_folder(data_root)
    assert len(sample) == 19 == len(list(folder.iterdir())) and all(face.shape == (112, 96, 3) for face in sample)
    assert len({face.tobytes() for face in sample}) == 19
    person = {read_rgb(path).tobytes(): path.parent.name for path in folder.glob("*/*.png")}
    assert len({person[face.tobytes()] for face in sample}) >= 15, "every k-th face, not one person's run"


def where_cropped(canvas: torch.Tensor, image: torch.Tensor) -> tuple[int, int, bool]:
    """(top, left, mirrored) of the canvas crop that `image` is."""
    for top in range(2 * MARGIN + 1):
        for left in range(2 * MARGIN + 1):
            crop = canvas[:, top:top + 112, left:left + 96].float() / 255
            for mirrored in (False, True):
                if torch.equal(crop.flip(-1) if mirrored else crop, image):
                    return top, left, mirrored
    raise AssertionError("the training image is no crop of its canvas")


def test_training_crops_shift_and_mirror_with_their_box(data_root) -> None:
    train = TemplateFaces(data_root, split="train", max_images=4, progress=False)
    torch.manual_seed(0)
    x1, y1, x2, y2 = train.boxes[0].tolist()
    seen = set()
    for _ in range(12):
        item = train[0]
        top, left, mirrored = where_cropped(train.images[0], item["image"])
        shift = [MARGIN - left, MARGIN - top] * 2  # stored boxes are on the centred crop
        box = [value + offset for value, offset in zip((x1, y1, x2, y2), shift)]
        if mirrored:
            box = [96 - box[2], box[1], 96 - box[0], box[3]]
        assert item["box"].tolist() == pytest.approx(box, abs=1e-4)
        seen.add((top, left, mirrored))
    assert len(seen) > 6 and {m for _, _, m in seen} == {False, True}


def test_people_are_split_between_training_and_validation(data_root) -> None:
    train = TemplateFaces(data_root, split="train", max_images=30, progress=False)
    val = TemplateFaces(data_root, split="val", max_images=30, progress=False)
    assert not set(train.identities) & set(val.identities)
