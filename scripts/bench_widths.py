"""What wider networks buy the top rung, at equal training steps: more latent channels, or wider transforms.

    python scripts/bench_widths.py as-is --steps 800         # ladder-9-pixel fine-tuned on at its lmbda
    python scripts/bench_widths.py latents --steps 800       # with 192 latent channels instead of 96
    python scripts/bench_widths.py transforms --steps 800    # with g_a and g_s 128 channels wide instead of 64
    python scripts/bench_widths.py --compare                 # the finished runs side by side

`ladder-9-pixel` decodes at its ceiling (`facelab.ceiling`: its files are 0.07 dB under its unrounded latents on
the CelebA validation faces), so only the networks can lift it. Every variant starts from its very function: the
new channels start silent (zero weights and bias into them), so they cost no bits and change no pixel until
training gives them a use. The hyper networks keep their widths. Each epoch validates on 192 CelebA validation
faces (people never trained on) with rounding: bits per pixel from the entropy models, PSNR of the reconstructions.
One thread per run, bf16 as the shipped runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from bench_hyperprior_variants import variant_command
from facelab.hyperprior import HyperpriorNet
from facelab.recipes import make_config
from facelab.train import Trainer, build_data, build_loss
from facelab.weights import load_model

RUNS = Path("runs/widths")
START = "ladder-9-pixel"
"""The top pixels-only rung: the furthest behind the classic codecs (5.9 dB under AVIF at its rate on the CelebA
validation faces)."""

LATENTS = 192
TRANSFORMS = 128

NEW_SCALE = 0.11
"""h_s's output for a new latent channel: CompressAI's smallest scale, under which a latent of 0 costs no bits."""


@torch.no_grad()
def silence_new_channels(layers: nn.Sequential, old: int, new: int) -> None:
    """Zero the weights and biases into every output channel past `old` of the layers that make `new` channels."""
    for layer in layers:
        if isinstance(layer, nn.ConvTranspose2d) and layer.out_channels == new:
            layer.weight[:, old:] = 0
            layer.bias[old:] = 0
        elif isinstance(layer, nn.Conv2d) and layer.out_channels == new:
            layer.weight[old:] = 0
            layer.bias[old:] = 0


@torch.no_grad()
def widened(model: HyperpriorNet, transforms: int, latents: int) -> HyperpriorNet:
    """`model` with g_a, g_s `transforms` channels wide and `latents` latent channels, computing the same function:
    every old weight copied into the leading slice, every new channel silent; the hyper networks keep their width,
    read nothing from a new latent and give it the smallest scale (`NEW_SCALE`), so it costs no bits until it
    carries something."""
    wide = HyperpriorNet((transforms, latents))
    hyper = HyperpriorNet((model.N, latents))
    wide.h_a, wide.h_s, wide.entropy_bottleneck = hyper.h_a, hyper.h_s, hyper.entropy_bottleneck
    state = wide.state_dict()
    for key, old in model.state_dict().items():
        if not key.startswith(("g_a.", "g_s.", "h_a.0.", "h_s.4.")):
            state[key] = old
            continue
        new = state[key].clone()
        if key in ("h_a.0.weight", "h_s.4.weight"):
            new.zero_()
        elif key == "h_s.4.bias":
            new.fill_(NEW_SCALE)
        new[tuple(slice(0, size) for size in old.shape)] = old
        state[key] = new
    wide.load_state_dict(state)
    silence_new_channels(wide.g_a, model.N, transforms)
    silence_new_channels(wide.g_s, model.N, transforms)
    silence_new_channels(wide.g_a, model.M, latents)
    wide.restore_likelihood_floor()
    return wide


VARIANTS = {"as-is": (64, 96), "latents": (64, LATENTS), "transforms": (TRANSFORMS, 96)}
"""Each variant's (transform width, latent channels)."""


def run(variant: str, steps: int) -> None:
    """Fine-tune one variant for `steps` steps (resumable, one epoch per 100 steps) and write its history."""
    transforms, latents = VARIANTS[variant]
    config = make_config(START, name=f"widths-{variant}", epochs=steps // 100, steps_per_epoch=100,
                         channels=(transforms, latents))
    start = load_model(START)
    start.restore_likelihood_floor()
    trainer = Trainer(config, RUNS / variant, model=widened(start, transforms, latents))
    trainer.try_resume()
    train, val, _ = build_data(config)
    trainer.fit(train, val, build_loss(config, trainer.device), on_epoch=lambda record: print(record, flush=True))
    (RUNS / f"{variant}.json").write_text(json.dumps(trainer.history, indent=1))


def compare() -> None:
    """Each epoch's validation bpp and PSNR for every finished variant, and the seconds each took."""
    runs = {variant: json.loads((RUNS / f"{variant}.json").read_text())
            for variant in VARIANTS if (RUNS / f"{variant}.json").is_file()}
    print("steps | " + " | ".join(f"{variant}: bpp PSNR" for variant in runs))
    for records in zip(*runs.values()):
        print(f"{records[0]['epoch'] * 100:5d} | " + " | ".join(f"{r['val_bpp']:.3f} {r['val_psnr']:.2f}"
                                                            for r in records))
    print("seconds: " + ", ".join(f"{variant} {records[-1]['seconds']:.0f}" for variant, records in runs.items()))


def main() -> None:
    variant_command(__doc__.splitlines()[0], tuple(VARIANTS), run, compare, steps=800)


if __name__ == "__main__":
    main()
