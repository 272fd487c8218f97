"""CelebA-style alignment: a similarity transform that puts five face landmarks where CelebA's aligned crops have them.

CelebA's aligned set (`img_align_celeba`, 178x218) was made by a similarity transform on the eye positions.
`CELEBA_TEMPLATE` is the mean of `list_landmarks_align_celeba.txt` over the 202,599 aligned images
(eyes at (69, 111) and (108, 111), nose (88, 136), mouth corners (72, 152) and (105, 152)); fitting all
five MTCNN landmarks to it in the least-squares sense reproduces CelebA's placement and scale.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from facelab.image_io import to_tensor

CELEBA_SIZE = (218, 178)
"""(height, width) of CelebA's aligned crops."""

CELEBA_TEMPLATE = np.array([[69, 111], [108, 111], [88, 136], [72, 152], [105, 152]], dtype=np.float64)
"""Mean landmark positions (x, y) of CelebA's aligned crops: eyes, nose, mouth corners (image left first)."""

FR_SIZE = (112, 96)
"""(height, width) of the aligned faces face-recognition work evaluates on, and the paper's LFW size."""

FR_TEMPLATE = np.array([[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366],
                        [33.5493, 92.3655], [62.7299, 92.2041]], dtype=np.float64)
"""The standard five-point template (x, y) of 112x96 aligned faces (SphereFace, CosFace, ArcFace)."""


def fit_similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (scale, rotation, shift; no reflection) that best maps `source` points onto `target` (Umeyama)."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    mean_s, mean_t = source.mean(0), target.mean(0)
    centred_s, centred_t = source - mean_s, target - mean_t
    u, singular, vt = np.linalg.svd(centred_t.T @ centred_s / len(source))
    flip = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ flip @ vt
    scale = float(np.trace(np.diag(singular) @ flip) / (centred_s**2).sum(1).mean())
    shift = mean_t - scale * rotation @ mean_s
    return np.hstack([scale * rotation, shift[:, None]])


def similarity_scale(matrix: np.ndarray) -> float:
    """The scale factor of a 2x3 similarity matrix."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample (H, W, 3) uint8 `image` through the 2x3 `matrix` (source -> output pixels) into size=(h, w).

    Bicubic, with reflection outside the image; the caller pre-shrinks so that `matrix` does not downscale much.
    """
    height, width = size
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    x = inverse[0, 0] * u + inverse[0, 1] * v + inverse[0, 2]
    y = inverse[1, 0] * u + inverse[1, 1] * v + inverse[1, 2]
    source_h, source_w = image.shape[:2]
    grid = np.stack([(2 * x + 1) / source_w - 1, (2 * y + 1) / source_h - 1], axis=-1)
    pixels = to_tensor(image, unit=False)
    out = F.grid_sample(pixels, torch.from_numpy(grid)[None].float(), mode="bicubic",
                        padding_mode="reflection", align_corners=False)
    return out[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


def align_face(image: np.ndarray, landmarks: np.ndarray, size: tuple[int, int] = CELEBA_SIZE,
               template: np.ndarray = CELEBA_TEMPLATE) -> np.ndarray:
    """Crop (H, W, 3) uint8 `image` to a CelebA-aligned (h, w) face from its five (5, 2) landmarks.

    Large faces are first shrunk with Pillow's antialiased resize, so the final warp never aliases.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    scale = similarity_scale(fit_similarity(landmarks, template))
    if scale < 1.0:
        height, width = image.shape[:2]
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BICUBIC))
        landmarks = (landmarks + 0.5) * [new_w / width, new_h / height] - 0.5
    return warp(image, fit_similarity(landmarks, template), size)
