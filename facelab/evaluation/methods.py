"""What is evaluated: an image in, the real compressed sizes and the reconstruction out.

- `FacelabMethod`: a facelab model. The paper's models are fixed-rate (128 bits per 8x8 block before entropy
  coding), so their operating points come from coding a smaller copy: downscale by `scale` (Pillow bicubic,
  antialiased), compress, decompress, upscale back (bicubic) to the original size; bpp is always counted over
  the ORIGINAL pixel count. Both of their entropy coders give the same reconstruction, so the method reconstructs
  through the model's first coder (the paper's `.xz`) and `size(image, 'context')` gives the size under
  facelab's arithmetic coder. A hyperprior model (lesson 07) codes with its own range coder at one rate per model.
- `CodecMethod`: a classic codec (JPEG, WebP, JPEG 2000, AVIF) at one quality setting.
- `EqualRateMethod`: a classic codec at each image's own target bpp (`baselines.find_close`): the largest
  file at or under the target, e.g. that image's facelab bpp.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from facelab import baselines, codec
from facelab.bitstream import CODERS, coders_for
from facelab.model import FaceCodecNet
from facelab.weights import model_id


@dataclass
class MethodOutput:
    """One image through a method: the compressed size in bytes per coder, the reconstruction, the quality used."""

    sizes: dict[str, int]
    reconstruction: np.ndarray
    quality: float = float("nan")


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of an (H, W, 3) uint8 image (Pillow antialiases when shrinking)."""
    if image.shape[:2] == (height, width):
        return image
    return np.array(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC))


class Method:
    """Base of every evaluated method: a display name, a family for plots, a cache key and the coders it reports."""

    name: str
    family: str
    coders: tuple[str, ...]

    @property
    def cache_key(self) -> dict:
        """What its cached results depend on (the cache folder is a hash of this)."""
        raise NotImplementedError

    def sizes_key(self, coder: str) -> dict | None:
        """What its file sizes under `coder` depend on, when they are cached apart from its other results; None
        (a classic codec's) keeps them with the rest."""
        return None

    def code(self, image: np.ndarray, key: str) -> MethodOutput:
        """Compress and reconstruct one image (`key` identifies the image, for per-image targets)."""
        raise NotImplementedError


@dataclass
class FacelabMethod(Method):
    """A facelab model at one scale; its reconstruction and size under its first coder, and the size under others."""

    model: FaceCodecNet
    scale: float = 1.0
    label: str = ""
    family: str = "facelab"
    coders: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {self.scale}")
        self.label = self.label or getattr(self.model, "name", "untrained")
        self.coders = coders_for(getattr(self.model, "family", "binary"))[:1]
        self.name = self.label if self.scale == 1 else f"{self.label} @{self.scale:g}"

    @property
    def cache_key(self) -> dict:
        return {"method": "facelab", "model": model_id(self.model), "scale": self.scale}

    def sizes_key(self, coder: str) -> dict:
        """Its reconstruction's key and the coder's file format: format 4 made every .flh 30-40 bytes shorter and
        left its image as it was."""
        return {**self.cache_key, "coder": coder, "format": CODERS[coder].version}

    def shrink(self, image: np.ndarray) -> np.ndarray:
        """The copy of `image` that is actually coded: downscaled by `scale` (itself at scale 1)."""
        height, width = image.shape[:2]
        return resize(image, max(1, round(height * self.scale)), max(1, round(width * self.scale)))

    def code(self, image: np.ndarray, key: str) -> MethodOutput:
        data = codec.compress(self.shrink(image), self.model, coder=self.coders[0])
        reconstruction = codec.decompress(data, self.model)
        return MethodOutput({self.coders[0]: len(data)}, resize(reconstruction, *image.shape[:2]), self.scale)

    def size(self, image: np.ndarray, coder: str) -> int:
        """Bytes of `image` coded with another of its coders ('context'): the reconstruction is the same."""
        return len(codec.compress(self.shrink(image), self.model, coder=coder))


@dataclass
class CodecMethod(Method):
    """A classic codec at one quality setting (see facelab.baselines for each codec's knob)."""

    family: str
    quality: float

    def __post_init__(self) -> None:
        self.coders = (self.family,)
        self.name = f"{self.family} q{self.quality:g}"

    @property
    def cache_key(self) -> dict:
        return {"method": "codec", "codec": self.family, "quality": self.quality,
                "settings": baselines.settings(self.family)}

    def code(self, image: np.ndarray, key: str) -> MethodOutput:
        encoded = baselines.at_quality(image, self.family, self.quality)
        return MethodOutput({self.family: len(encoded.data)}, baselines.decode(encoded.data, self.family), encoded.quality)


@dataclass
class EqualRateMethod(Method):
    """A classic codec coding each image at its own target bpp (from `targets`, keyed by image key)."""

    family: str
    targets: dict[str, float] = field(repr=False)
    reference: str = ""
    reference_key: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.coders = (self.family,)
        self.name = f"{self.family} @ {self.reference} bpp"

    @property
    def cache_key(self) -> dict:
        return {"method": "equal-rate", "codec": self.family, "reference": self.reference_key,
                "settings": baselines.settings(self.family)}

    def code(self, image: np.ndarray, key: str) -> MethodOutput:
        encoded = baselines.find_close(image, self.family, self.targets[key])
        return MethodOutput({self.family: len(encoded.data)}, baselines.decode(encoded.data, self.family), encoded.quality)
