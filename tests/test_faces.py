"""Faces: MTCNN detection, the offline FaceNet conversion, real embeddings on LFW, and the differentiable crop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facelab import faces
from facelab.errors import ImageError, NoFaceError
from facelab.facenet_convert import CONVERTED_SHA256, cached_path, convert_graph, converted_state_dict, state_dict_digest
from facelab.faces import (
    CROP_MARGIN, Detection, FaceEmbedder, crop_faces, detect_faces, embed, face_boxes, load_facenet, standardise,
)
from facelab.image_io import load_image
from facelab.losses import FaceLoss

PAIRS_PER_KIND = 50


def lfw_path(root: Path, name: str, number: int) -> Path:
    return root / "lfw" / "lfw-deepfunneled" / name / f"{name}_{number:04d}.jpg"


def as_batch(images: list[np.ndarray]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(image).permute(2, 0, 1) for image in images]).float() / 255


@pytest.fixture(scope="module")
def lfw_pairs(data_root: Path) -> tuple[list[tuple[Path, Path]], np.ndarray]:
    """The first 50 same-person and first 50 different-person pairs of LFW View 2, fold 1."""
    lines = [line.split() for line in (data_root / "lfw" / "pairs.txt").read_text().splitlines()[1:601]]
    same = [(lfw_path(data_root, f[0], int(f[1])), lfw_path(data_root, f[0], int(f[2]))) for f in lines if len(f) == 3]
    different = [(lfw_path(data_root, f[0], int(f[1])), lfw_path(data_root, f[2], int(f[3])))
                 for f in lines if len(f) == 4]
    pairs = same[:PAIRS_PER_KIND] + different[:PAIRS_PER_KIND]
    return pairs, np.array([1] * PAIRS_PER_KIND + [0] * PAIRS_PER_KIND)


@pytest.fixture(scope="module")
def two_faces(data_root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Two real LFW photos (2, 3, 250, 250) in [0, 1] and their MTCNN boxes."""
    images = [load_image(lfw_path(data_root, "Aaron_Eckhart", 1)), load_image(lfw_path(data_root, "Abel_Pacheco", 1))]
    return as_batch(images), face_boxes(detect_faces(images))


def test_converted_weights_match_pinned_checksum_and_cache_heals(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    assert state_dict_digest(convert_graph()) == CONVERTED_SHA256
    assert state_dict_digest(converted_state_dict()) == CONVERTED_SHA256
    assert cached_path().is_file() and cached_path().is_relative_to(tmp_path)
    cached_path().write_bytes(b"truncated")
    assert state_dict_digest(converted_state_dict()) == CONVERTED_SHA256
    assert cached_path().stat().st_size > 90_000_000


def test_user_facenet_pytorch_weights_are_honoured(tmp_path: Path, monkeypatch) -> None:
    state = dict(converted_state_dict())
    state["last_bn.bias"] = state["last_bn.bias"] + 1.0
    state["logits.weight"] = torch.zeros(10575, 512)
    state["logits.bias"] = torch.zeros(10575)
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / "20180408-102900-casia-webface.pt")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(faces, "_FACENETS", {})
    facenet = load_facenet()
    assert facenet.weights_name == "20180408-102900-casia-webface"
    assert torch.equal(facenet.last_bn.bias, state["last_bn.bias"])
    assert "converted" in load_facenet(source="converted").weights_name


def test_detects_real_face_and_reports_faceless_images(data_root: Path) -> None:
    face = load_image(lfw_path(data_root, "Aaron_Eckhart", 1))
    blank = np.full((120, 160, 3), 128, np.uint8)
    tiny = np.zeros((10, 10, 3), np.uint8)
    found = detect_faces([blank, face, tiny, face[:, ::-1].copy()])
    assert found[0] is None and found[2] is None
    for detection in (found[1], found[3]):
        assert isinstance(detection, Detection) and detection.prob > 0.99
        x1, y1, x2, y2 = detection.box
        assert 40 < x1 < x2 < 210 and 40 < y1 < y2 < 210 and detection.landmarks.shape == (5, 2)
    assert found[1].box[0] == pytest.approx(250 - found[3].box[2], abs=8)  # the mirror image's box, mirrored
    with pytest.raises(NoFaceError, match="2 of 4 images .*0, 2"):
        face_boxes(found)
    with pytest.raises(ImageError):
        detect_faces([face.astype(np.float32)])


def test_same_person_pairs_are_closer_than_different_person_pairs(lfw_pairs) -> None:
    pairs, same = lfw_pairs
    paths = sorted({path for pair in pairs for path in pair})
    images = [load_image(path) for path in paths]
    embedder = FaceEmbedder()
    boxes = face_boxes(embedder.detect(images))
    with torch.no_grad():
        embeddings = torch.cat([embedder.embed_images(as_batch(images[i:i + 64]), boxes[i:i + 64])
                                for i in range(0, len(images), 64)]).numpy()
    index = {path: i for i, path in enumerate(paths)}
    a = embeddings[[index[p] for p, _ in pairs]]
    b = embeddings[[index[q] for _, q in pairs]]
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    distance = np.linalg.norm(a - b, axis=1)
    assert distance[same == 1].mean() < distance[same == 0].mean() - 0.4
    cosine = (a * b).sum(axis=1)
    auc = (cosine[same == 1][:, None] > cosine[same == 0][None, :]).mean()
    assert auc > 0.93
    best_accuracy = max(((cosine >= threshold) == same).mean() for threshold in cosine)
    assert best_accuracy > 0.92


def test_crop_of_whole_image_is_the_image_and_margin_widens_the_box() -> None:
    images = torch.rand(2, 3, 12, 20)
    boxes = torch.tensor([[0.0, 0.0, 20.0, 12.0]] * 2)
    assert crop_faces(images, boxes, size=12, margin=0).shape == (2, 3, 12, 12)
    square = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(crop_faces(square, torch.tensor([[0.0, 0.0, 16.0, 16.0]]), size=16, margin=0), square)
    scene = torch.rand(1, 3, 100, 100)
    torch.testing.assert_close(crop_faces(scene, torch.tensor([[30.0, 30.0, 70.0, 70.0]]), size=40, margin=8),
                               crop_faces(scene, torch.tensor([[25.0, 25.0, 75.0, 75.0]]), size=40, margin=0))
    with pytest.raises(ImageError, match="boxes"):
        crop_faces(images, boxes[:1])
    with pytest.raises(ImageError, match="empty"):
        crop_faces(images, torch.tensor([[30.0, 0.0, 40.0, 5.0]] * 2))
    with pytest.raises(ValueError, match="margin"):
        crop_faces(images, boxes, size=12, margin=12)


def test_standardisations() -> None:
    crops = torch.rand(3, 3, 160, 160)
    torch.testing.assert_close(standardise(crops, "fixed"), (crops * 255 - 127.5) / 128)
    whitened = standardise(crops, "prewhiten").flatten(1)
    torch.testing.assert_close(whitened.mean(1), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(whitened.std(1, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    with pytest.raises(ImageError, match="160"):
        embed(load_facenet(), torch.rand(1, 3, 128, 128))


def test_face_loss_gradient_reaches_reconstruction_only(two_faces) -> None:
    x, boxes = two_faces
    loss = FaceLoss(a=0.0, b=1.0)
    loss.train()
    facenet = load_facenet()
    facenet.train()
    assert not facenet.training and not any(module.training for module in facenet.modules())
    x_hat = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    x_hat.requires_grad_(True)
    parts = loss(x_hat, x, boxes)
    parts["total"].backward()
    assert parts["feature"].item() > 0
    grad = x_hat.grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(parameter.grad is None and not parameter.requires_grad for parameter in facenet.parameters())
    x1, y1, x2, y2 = boxes[0].tolist()
    pad_x, pad_y = (x2 - x1) * CROP_MARGIN / (160 - CROP_MARGIN) / 2, (y2 - y1) * CROP_MARGIN / (160 - CROP_MARGIN) / 2
    x1, y1, x2, y2 = max(x1 - pad_x, 0), max(y1 - pad_y, 0), min(x2 + pad_x, 250), min(y2 + pad_y, 250)
    inside = grad[0, :, int(y1) + 2:int(y2) - 2, int(x1) + 2:int(x2) - 2]
    assert inside.abs().mean() > 0
    assert x1 > 3 and y2 < 247
    assert grad[0, :, :, : int(x1) - 2].abs().max() == 0 and grad[0, :, int(y2) + 2:, :].abs().max() == 0
