"""How every shipped model is trained: one configuration type and one recipe per model, sizes and budgets included.

`facelab train NAME`, `scripts/train_shipped.py` and lessons 03-04 all read these recipes, and a test checks
that each shipped checkpoint records the configuration its recipe gives. Lessons shrink a run with overrides.

The chain (the shipped models, 2-core CPU budgets; a GPU runs the same steps faster):
  natural     phase 1, L1 + (1 - MS-SSIM) on 128x128 crops of natural images, from scratch (the shipped one
              saw the 30 natural images of the data set before it grew to 66)
  face-base   phase 2a, a * L2(pixels) on CelebA faces at 112x96, from natural: the long run. facelab's
              addition: FaceNet's backward pass costs ~30x the autoencoder's on a CPU, so the pixels are
              learnt first and the face loss is then studied on a common, well-trained model
  face, face-pixel, face-adamw, face-pixel-adamw
              phase 2b, the paper's Eq. 2 and hyper-parameters (a = b = 1 or b = 0; Adam or AdamW), from face-base
  face-a1, face-a10, face-a100, face-a1000, face-b0
              the loss-balance sweep: a * L2 + b * FaceNet with b = 1 (or b = 0), AdamW with a decaying rate,
              the same steps each, from face-base
  hp-natural  beyond the paper (lesson 07): the scale hyperprior, rate + lmbda * (L1 + 1 - MS-SSIM) on natural
              images, from scratch
  hp-base     rate + lmbda * 100 * L2(pixels) on the CelebA faces, from hp-natural
  hp-long     the same loss, the long run (6,000 steps, a fresh cosine schedule, gradients clipped), from hp-base:
              the shared transforms every rate starts from, which decide most of its quality
  hp-0 .. hp-4, hp-0-pixel .. hp-4-pixel
              five rates (lmbda = 0.25, 2, 4, 8, 16), each with the face loss (a = 100, b = 1, as face-a100) and without
              it (b = 0), the same steps each, from hp-long: the ablation at equal budgets
  learned-0 .. learned-4
              the paper's architecture with a learned rate (lesson 06, issue 29): face-a100 and a fresh bit model
              trained for rate + lmbda * (100 * L2 + FaceNet), lmbda = 0.5 ... 8, the same steps each
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in its checkpoints."""

    phase: str = "natural"
    name: str = "natural"
    epochs: int = 10
    steps_per_epoch: int | None = None
    batch_size: int = 16
    crop: int = 128
    face_data: str = "template"
    face_size: tuple[int, int] = (218, 178)
    lr: float = 1e-3
    schedule: str = "constant"
    beta1: float = 0.99
    weight_decay: float = 0.0
    clip_norm: float | None = None
    optimizer: str = "adam"
    a: float = 1.0
    b: float = 1.0
    face_samples: int | None = None
    family: str = "binary"
    channels: tuple[int, int] = (64, 96)
    lmbda: float = 0.0
    init: str | None = None
    latent_gain: float = 1.0
    max_images: int | None = None
    val_images: int | None = None
    precision: str = "auto"
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    workers: int = 0


CLIP_NORM = 1.0
"""The hyperpriors' gradient-norm limit (CompressAI's training default): without it, `hp-long` at a learning rate
of 4.4e-4 took one run of large steps in its 18th epoch that no skipping of non-finite ones could undo (validation
PSNR 27.0 -> 11.7 dB); None (the paper's models) leaves gradients as they are."""

SCHEDULES = ("constant", "cosine", "plateau")
"""'constant' (the paper's "static" rate), 'cosine' (decays to 0 over the run's steps), 'plateau' (halves
the rate after PLATEAU_PATIENCE epochs without a better validation loss: the paper's "dynamic" rate)."""

LEARNED_RATE = "learned-rate"

FAMILIES = ("binary", "hyperprior", LEARNED_RATE)
"""'binary': the paper's autoencoder (`facelab.model`); 'hyperprior': the scale hyperprior of `facelab.hyperprior`,
trained for rate + lmbda * distortion (the phase's loss), with `channels` = (N, M); 'learned-rate': the paper's
autoencoder with a learned bit model (`facelab.learned_rate`), trained for rate + lmbda * distortion too."""

RATE_FAMILIES = ("hyperprior", LEARNED_RATE)
"""The families whose forward pass estimates their rate, trained for rate + lmbda * distortion."""

FACE_DATA = ("template", "celeba")
"""Phase-2 faces: 'template' = CelebA's aligned set moved onto the 112x96 template (the paper's LFW size);
'celeba' = CelebA's 178x218 crops (or the in-the-wild images aligned by facelab) resized to `face_size`."""

_PAPER = dict(phase="face", init="face-base", lr=3e-3, schedule="constant", beta1=0.99, weight_decay=1e-3, a=1.0,
              batch_size=32, face_samples=8, epochs=5, steps_per_epoch=80, val_images=192)
"""The paper's phase 2: Adam at a static 3e-3, beta1 0.99, weight decay 1e-3, a = b = 1 (b = 0 ablation)."""

_SWEEP = dict(_PAPER, optimizer="adamw", lr=3e-4, schedule="cosine", beta1=0.9, weight_decay=0.0)
"""The loss-balance sweep: the paper's loss with pixel weight a, fine-tuned with AdamW at a decaying rate."""

RECIPES: dict[str, dict[str, Any]] = {
    "natural": dict(phase="natural", name="natural", lr=1e-3, schedule="plateau", beta1=0.99, crop=128,
                    batch_size=16, epochs=200),
    "face-base": dict(phase="face", name="face-base", init="natural", a=1.0, b=0.0, optimizer="adamw", lr=1e-3,
                      schedule="cosine", beta1=0.9, batch_size=32, epochs=25, steps_per_epoch=800),
    "face-b0": dict(_SWEEP, name="face-b0", b=0.0),
    **{f"face-a{a:g}": dict(_SWEEP, name=f"face-a{a:g}", a=float(a), b=1.0) for a in (1, 10, 100, 1000)},
    "face": dict(_PAPER, name="face", b=1.0),
    "face-pixel": dict(_PAPER, name="face-pixel", b=0.0),
    "face-adamw": dict(_PAPER, name="face-adamw", b=1.0, optimizer="adamw"),
    "face-pixel-adamw": dict(_PAPER, name="face-pixel-adamw", b=0.0, optimizer="adamw"),
}
"""Each shipped model's recipe. Phase 1's lr is 1e-3, not the paper's 1e-4, which learnt ten times slower
here (val PSNR 14.6 against 20.6 dB after the same 280 steps)."""

_HP = dict(phase="face", family="hyperprior", init="hp-long", optimizer="adamw", lr=3e-4, schedule="cosine",
           clip_norm=CLIP_NORM, beta1=0.9, a=100.0, batch_size=32, face_samples=8, epochs=4, steps_per_epoch=100,
           val_images=192)
"""The hyperprior's fine-tuning at one rate: Eq. 2 with a = 100 (the shipped face model's balance) inside the rate loss."""

HP_LAMBDAS = {0: 0.25, 1: 2.0, 2: 4.0, 3: 8.0, 4: 16.0}
"""The hyperprior's rates: quality index -> lmbda. With a = 100, rates 1-4 match CompressAI's MSE qualities 2-5;
rate 0 is below its lowest (quality 1 is lmbda 1.2 here), for the 0.25 bpp point of lesson 07."""

RECIPES.update({
    "hp-natural": dict(phase="natural", name="hp-natural", family="hyperprior", lmbda=16.0, lr=1e-3,
                       schedule="cosine", beta1=0.9, optimizer="adamw", crop=128, batch_size=16, epochs=6,
                       steps_per_epoch=100),
    "hp-base": dict(phase="face", name="hp-base", family="hyperprior", init="hp-natural", lmbda=6.0, a=100.0,
                    b=0.0, optimizer="adamw", lr=5e-4, schedule="cosine", beta1=0.9, batch_size=32, epochs=15,
                    steps_per_epoch=100, val_images=192),
    "hp-long": dict(phase="face", name="hp-long", family="hyperprior", init="hp-base", lmbda=6.0, a=100.0, b=0.0,
                    optimizer="adamw", lr=5e-4, schedule="cosine", clip_norm=CLIP_NORM, beta1=0.9, batch_size=32,
                    epochs=60, steps_per_epoch=100, val_images=192),
    **{f"hp-{q}": dict(_HP, name=f"hp-{q}", lmbda=lmbda, b=1.0) for q, lmbda in HP_LAMBDAS.items()},
    **{f"hp-{q}-pixel": dict(_HP, name=f"hp-{q}-pixel", lmbda=lmbda, b=0.0) for q, lmbda in HP_LAMBDAS.items()},
})

LADDER_LAMBDAS = {1: 0.1, 2: 0.35, 3: 1.2, 4: 3.5, 5: 10.0, 6: 30.0, 7: 120.0, 8: 400.0, 9: 1200.0}
"""The rate ladder (lesson 07): rung -> lmbda, about 3x apart, for <= 0.15 to >= 1.5 bpp at 112x96. hp-0 .. hp-4
crowded into 0.24-0.53 bpp because 400 steps from hp-long (lmbda 6) could not move a rate far; each rung here starts
from its neighbour nearer lmbda 6 (rung 4 from hp-long), so no run has to move the rate more than one step."""

LADDER_PARENT = {4: None, 5: 4, 6: 5, 7: 6, 3: 4, 2: 3, 1: 2, 8: 7, 9: 8}
"""Each rung's starting point (None: hp-long), in the order they train: outwards from lmbda 6 in both directions."""

LADDER_GAIN = {4: 1.0, 5: 2.0, 6: 2.0, 7: 3.0, 3: 0.5, 2: 0.5, 1: 0.35, 8: 2.0, 9: 2.0}
"""Each rung's latent gain over its parent (`HyperpriorNet.scale_latents`): fine-tuning at a new lmbda alone moved
the rate by 0.05 bpp in 400 steps (0.47 -> 0.52 bpp from lmbda 3.5 to 10), while a quantisation step twice as
fine moves it at once (0.53 -> 0.78 bpp); the steps then spend those bits. sqrt(4): lmbda grows about 4x a rung,
and the best step of a rate-distortion loss in MSE shrinks as 1 / sqrt(lmbda). The end rungs take a larger step
(3 and 0.35): rungs 3-6 landed 1.4x apart in rate on the validation faces (0.33, 0.47, 0.67, 0.95 bpp), which would
leave the ends short of 1.5 and 0.15 bpp. Rung 8 still ended at 1.44 bpp on the CelebA validation faces and 1.35 on
LFW, so rung 9 (gain 2, lmbda 1200) was added above it: 1.67 bpp on 32 CelebA validation faces."""

LADDER_ORDER = (4, 5, 3, 6, 2, 7, 1, 8, 9)
"""Training order: alternately up and down, so an interrupted run still spans a range; the face-loss rungs first,
then their pixels-only twins."""


LADDER_FACE_WEIGHT = {rung: min(1.0, math.sqrt(LADDER_LAMBDAS[5] / lmbda)) for rung, lmbda in LADDER_LAMBDAS.items()}
"""Each face-loss rung's b: 1 up to rung 5, then falling as 1 / sqrt(lmbda) (0.58, 0.29, 0.16, 0.09). With b = 1
the first ladder's upper rungs flattened near 30 dB on CelebA validation faces (29.70, 29.87, 29.70 dB at 0.73,
0.97, 1.35 bpp) while their pixels-only twins kept climbing (to 32.2 dB): the FaceNet term (0.10-0.12 at those rungs)
outweighed the pixel term (100 * MSE, 0.11), so a larger lmbda bought FaceNet features as much as pixels. The MSE
at the best step of a rate-distortion loss shrinks as 1 / lmbda; a face weight shrinking as 1 / sqrt(lmbda) lets
the pixels take the larger share of the extra bits while the face term still counts."""

LADDER_EPOCHS = {rung: 4 if rung in (4, 5) else 8 for rung in LADDER_LAMBDAS}
"""Each rung's training, in epochs of 100 steps: the upper rungs' larger gain and lmbda left the first ladder still
gaining 0.3-0.4 dB in its fourth epoch (val PSNR of `ladder-7` 27.5, 28.8, 29.8, 30.2 dB), so they train twice as
long; so do the lower ones, since `ladder-2` with 8 epochs instead of 4 (from the same parent) had gained 0.16 dB
and 7% of its FaceNet distance at the same 0.196 bpp after 6 (192 CelebA validation faces). Rungs 4 and 5 keep
4: every other rung descends from them, so longer runs there would mean training the whole ladder again."""


def ladder_name(rung: int, face_loss: bool) -> str:
    """The shipped name of a rung: 'ladder-3' (with the face loss) or 'ladder-3-pixel' (without)."""
    return f"ladder-{rung}" if face_loss else f"ladder-{rung}-pixel"


_LADDER = dict(_HP)
"""A rung: the hyperprior's fine-tuning (`_HP`) from its parent rung."""

for _face in (True, False):
    for _rung in LADDER_ORDER:
        _parent = LADDER_PARENT[_rung]
        RECIPES[ladder_name(_rung, _face)] = dict(
            _LADDER, name=ladder_name(_rung, _face), lmbda=LADDER_LAMBDAS[_rung],
            b=LADDER_FACE_WEIGHT[_rung] if _face else 0.0, epochs=LADDER_EPOCHS[_rung],
            init="hp-long" if _parent is None else ladder_name(_parent, _face), latent_gain=LADDER_GAIN[_rung])

LADDER = tuple(ladder_name(rung, True) for rung in sorted(LADDER_LAMBDAS))
"""The rate ladder with the face loss, from the lowest rate to the highest."""

LADDER_PIXEL = tuple(ladder_name(rung, False) for rung in sorted(LADDER_LAMBDAS))
"""Its twins trained without the face loss (b = 0), each from the pixels-only parent: the ablation."""

HYPERPRIOR = tuple(f"hp-{q}" for q in HP_LAMBDAS)
"""The shipped hyperprior codecs with the face loss, from the lowest rate to the highest."""

HYPERPRIOR_PIXEL = tuple(f"hp-{q}-pixel" for q in HP_LAMBDAS)
"""Their twins trained without it (b = 0): the ablation."""

SWEEP = ("face-b0", "face-a1", "face-a10", "face-a100", "face-a1000")
"""The loss-balance sweep, in order of growing pixel weight (b = 0 last in effect: pixels only)."""


def make_config(run: str, /, **overrides: Any) -> TrainConfig:
    """The recipe of a shipped model `run`, with `overrides` (those not None, a new `name` among them) applied."""
    if run not in RECIPES:
        raise ValueError(f"unknown run '{run}': choose from {', '.join(RECIPES)}")
    settings = {**RECIPES[run], **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(**settings)


LEARNED_LAMBDAS = {0: 0.5, 1: 1.0, 2: 2.0, 3: 4.0, 4: 8.0}
"""The paper's architecture with a learned rate (issue 29): rate -> lmbda of rate + lmbda * (100 * L2 + FaceNet).
Near face-a100's 1.2 bpp a bit buys about 0.25 of that distortion (4 dB a bit per pixel at 28.6 dB), so lmbda 4
should leave the rate near where it is and each halving ask for a lower one. Measured: lmbda 2 landed at 0.886 bpp
on the CelebA validation faces (face-a100's code: 1.273 bpp with the context coder), so rate 0 (lmbda 0.5) was
added below the first four for the low end of the curve."""

_LEARNED = dict(phase="face", family=LEARNED_RATE, init="face-a100", optimizer="adamw", lr=1e-3, schedule="cosine",
                beta1=0.9, a=100.0, b=1.0, batch_size=32, face_samples=8, epochs=6, steps_per_epoch=100, val_images=192)
"""Fine-tuning face-a100 (its loss, a = 100, b = 1) inside the rate loss, with its fresh bit model, at face-base's
1e-3 decaying: at the sweep's 3e-4 the hyperprior's rates barely moved in 400 steps (lesson 07), and here the encoder
must move its binarizer's pre-activations far enough to make bits predictable."""


def learned_name(rate: int) -> str:
    """The shipped name of the paper's architecture with a learned rate: 'learned-2'."""
    return f"learned-{rate}"


RECIPES.update({learned_name(rate): dict(_LEARNED, name=learned_name(rate), lmbda=lmbda)
                for rate, lmbda in LEARNED_LAMBDAS.items()})

LEARNED = tuple(learned_name(rate) for rate in LEARNED_LAMBDAS)
"""The paper's architecture with a learned rate, from the lowest rate to the highest."""

LEARNED_LONG = "learned-2-long"
RECIPES[LEARNED_LONG] = dict(RECIPES[learned_name(2)], name=LEARNED_LONG, epochs=18)
"""learned-2's recipe three times as long: the rate still fell when the 600-step runs ended, and 1,800 steps took
learned-2 from 0.886 to 0.775 bpp on the validation faces at the same PSNR (28.43 -> 28.55 dB)."""
