"""Training losses: pixel (L1/L2), MS-SSIM, FaceNet feature loss, the paper's Eq. 2 custom loss, and the rate loss.

The MS-SSIM loss picks its Gaussian window as the metric does (`facelab.metrics.ms_ssim_window`: 11 px from
161 px up, smaller below, an ImageError under 33 px), so a loss and the score it is judged by agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim
from torch import Tensor, nn

from facelab.errors import ImageError
from facelab.faces import FaceEmbedder
from facelab.metrics import ms_ssim_window

if TYPE_CHECKING:
    from facelab.rate_output import RateOutput

def _check_pair(x_hat: Tensor, x: Tensor) -> None:
    """Raise ImageError unless both are (B, 3, H, W) tensors of one shape."""
    if not (torch.is_tensor(x_hat) and torch.is_tensor(x)) or x_hat.shape != x.shape or x.dim() != 4:
        raise ImageError(f"loss inputs must be two (B, C, H, W) tensors of one shape, got "
                         f"{tuple(getattr(x_hat, 'shape', ()))} and {tuple(getattr(x, 'shape', ()))}")


def pixel_loss(x_hat: Tensor, x: Tensor, kind: str = "l1") -> Tensor:
    """Mean absolute ('l1') or mean squared ('l2') pixel error."""
    _check_pair(x_hat, x)
    if kind == "l1":
        return F.l1_loss(x_hat, x)
    if kind == "l2":
        return F.mse_loss(x_hat, x)
    raise ValueError(f"unknown pixel loss {kind!r}: use 'l1' or 'l2'")


def msssim_loss(x_hat: Tensor, x: Tensor) -> Tensor:
    """1 - MS-SSIM for images in [0, 1] (data range 1), with the window `ms_ssim_window` picks."""
    _check_pair(x_hat, x)
    window = ms_ssim_window(*x.shape[-2:])
    return 1.0 - ms_ssim(x_hat, x, data_range=1.0, size_average=True, win_size=window)


def feature_loss(emb_hat: Tensor, emb: Tensor) -> Tensor:
    """Mean over the batch of the squared L2 distance between embeddings."""
    if emb_hat.shape != emb.shape or emb.dim() != 2:
        raise ValueError(f"embeddings must be two (B, D) tensors of one shape, got {tuple(emb_hat.shape)} "
                         f"and {tuple(emb.shape)}")
    return (emb_hat - emb).pow(2).sum(dim=1).mean()


class CompressionLoss(nn.Module):
    """Phase-1 loss on natural images: L1 + (1 - MS-SSIM); returns the total and both terms."""

    def __init__(self, l1_weight: float = 1.0, msssim_weight: float = 1.0) -> None:
        super().__init__()
        self.l1_weight = l1_weight
        self.msssim_weight = msssim_weight

    def forward(self, x_hat: Tensor, x: Tensor) -> dict[str, Tensor]:
        """dict(total, l1, msssim) where msssim is the loss term 1 - MS-SSIM."""
        l1 = pixel_loss(x_hat, x, "l1")
        msssim = msssim_loss(x_hat, x)
        return {"total": self.l1_weight * l1 + self.msssim_weight * msssim, "l1": l1, "msssim": msssim}


class FaceLoss(nn.Module):
    """The paper's Eq. 2: a * pixel loss + b * feature loss between FaceNet embeddings of the same face boxes.

    The boxes come from MTCNN on the ground truth and crop both images; b = 0 never touches FaceNet.
    The embedder is held outside the module's parameters and made on the input's device on first use.
    `face_samples` = k estimates the feature loss on the batch's first k images only (an unbiased estimate
    when batches are shuffled): FaceNet's backward pass costs about 30 times the autoencoder's on a CPU.
    """

    def __init__(self, a: float = 1.0, b: float = 1.0, pixel: str = "l2", embedder: FaceEmbedder | None = None,
                 face_samples: int | None = None) -> None:
        super().__init__()
        if pixel not in ("l1", "l2"):
            raise ValueError(f"unknown pixel loss {pixel!r}: use 'l1' or 'l2'")
        if face_samples is not None and face_samples < 1:
            raise ValueError(f"face_samples must be a positive number of images, not {face_samples}")
        self.a = a
        self.b = b
        self.pixel = pixel
        self.embedder = embedder
        self.face_samples = face_samples

    def _embedder_for(self, device: torch.device) -> FaceEmbedder:
        """The given embedder, else one on `device` made now."""
        if self.embedder is None:
            self.embedder = FaceEmbedder(device)
        return self.embedder

    def forward(self, x_hat: Tensor, x: Tensor, boxes: Tensor) -> dict[str, Tensor]:
        """dict(total, pixel, feature) for reconstructions x_hat, originals x (B, 3, H, W) and face boxes (B, 4)."""
        pixel = pixel_loss(x_hat, x, self.pixel)
        if self.b == 0:
            feature = pixel.new_zeros(())
        else:
            if not torch.is_tensor(boxes) or not bool(torch.isfinite(boxes).all()):
                raise ImageError("face boxes must be finite: drop images without a face first (see faces.face_boxes)")
            embedder = self._embedder_for(x.device)
            k = self.face_samples or len(x)
            with torch.no_grad():
                emb = embedder.embed_images(x[:k], boxes[:k])
            feature = feature_loss(embedder.embed_images(x_hat[:k], boxes[:k]).float(), emb.float())
        return {"total": self.a * pixel + self.b * feature, "pixel": pixel, "feature": feature}


class RateDistortionLoss(nn.Module):
    """Rate + lmbda * distortion for a learned-entropy codec (`facelab.hyperprior`), plus CompressAI's auxiliary loss.

    `distortion` is either loss above; its parts are reported beside the rate ('bpp', estimated from the entropy
    models' likelihoods) and the auxiliary loss, which only moves the entropy bottleneck's quantiles.
    """

    def __init__(self, distortion: nn.Module, lmbda: float) -> None:
        super().__init__()
        if not lmbda > 0:
            raise ValueError(f"lmbda must be positive, not {lmbda}: it weighs distortion against rate")
        self.distortion = distortion
        self.lmbda = lmbda

    def forward(self, output: RateOutput, x: Tensor, *boxes: Tensor) -> dict[str, Tensor]:
        """dict(total, bpp, aux, distortion and its parts) for a hyperprior's `RateOutput` and the originals."""
        parts = self.distortion(output.x_hat, x, *boxes)
        total = output.bpp + self.lmbda * parts["total"] + output.aux
        return {"total": total, "bpp": output.bpp, "aux": output.aux, "distortion": parts.pop("total"), **parts}
