"""The models facelab ships, by name, and the default: a list without torch, so the command line starts fast."""

from __future__ import annotations

from pathlib import Path

from facelab.recipes import HP_LAMBDAS, LADDER_FACE_WEIGHT, LADDER_LAMBDAS, LEARNED_LAMBDAS, LEARNED_LONG, ladder_name, learned_name

SHIPPED_DIR = Path(__file__).parent / "weights"
SHIPPED = {
    "natural": "phase 1: natural-image pretraining, L1 + (1 - MS-SSIM)",
    "face-base": "phase 2a: pixel-only (L2) training on CelebA faces at 112x96, the start of every face model",
    "face": "phase 2b, the paper's recipe: a*L2(pixels) + b*L2(FaceNet embeddings), a = b = 1, Adam with weight decay",
    "face-pixel": "the paper's ablation: the same fine-tuning without the face loss (b = 0)",
    "face-adamw": "'face' with the weight decay decoupled from Adam's gradient (AdamW)",
    "face-pixel-adamw": "'face-pixel' with the weight decay decoupled (AdamW)",
    "face-b0": "loss-balance sweep: pixels only (b = 0), AdamW with a decaying rate",
    "face-a1": "loss-balance sweep: 1 * L2(pixels) + 1 * L2(FaceNet embeddings)",
    "face-a10": "loss-balance sweep: 10 * L2(pixels) + 1 * L2(FaceNet embeddings)",
    "face-a100": "loss-balance sweep: 100 * L2(pixels) + 1 * L2(FaceNet embeddings)",
    "face-a1000": "loss-balance sweep: 1000 * L2(pixels) + 1 * L2(FaceNet embeddings)",
    "hp-natural": "beyond the paper: scale hyperprior, rate + 16 * (L1 + 1 - MS-SSIM) on natural images (lesson 07)",
    "hp-base": "beyond the paper: scale hyperprior, rate + 6 * 100 * L2(pixels) on CelebA faces (lesson 07)",
    "hp-long": "beyond the paper: hp-base trained 6,000 steps more, the start of every hyperprior rate (lesson 07)",
    **{f"hp-{q}": f"scale hyperprior, rate {q} (lmbda {lmbda:g}), with the face loss, a = 100, b = 1"
       for q, lmbda in HP_LAMBDAS.items()},
    **{f"hp-{q}-pixel": f"scale hyperprior, rate {q} (lmbda {lmbda:g}), without the face loss (b = 0)"
       for q, lmbda in HP_LAMBDAS.items()},
    **{ladder_name(rung, face): f"rate ladder, rung {rung} (lmbda {lmbda:g}), scale hyperprior "
       + (f"with the face loss, a = 100, b = {LADDER_FACE_WEIGHT[rung]:.2g}" if face else "without the face loss (b = 0)")
       for rung, lmbda in LADDER_LAMBDAS.items() for face in (True, False)},
    **{learned_name(rate): f"the paper's architecture with a learned rate, rate {rate}: face-a100 and a bit model "
       f"fine-tuned for rate + {lmbda:g} * (100 * L2(pixels) + L2(FaceNet embeddings)), coder 'learned'"
       for rate, lmbda in LEARNED_LAMBDAS.items()},
    LEARNED_LONG: "learned-2's recipe trained three times as long (1,800 steps): face-a100's quality at 0.81 bpp on LFW",
}
DEFAULT_MODEL = "face-a100"
"""The model `compress` uses unless told otherwise, chosen from the loss-balance sweep (lesson 04): with the
pixel loss weighted 100 times, the face loss keeps 80% of the paper's a = b = 1 gain in FaceNet similarity
over pixels-only training (cosine 0.910 against 0.912 and 0.900 on held-out faces) for 0.18 dB of PSNR
instead of 0.76 dB (facelab/weights/sweep.json)."""
