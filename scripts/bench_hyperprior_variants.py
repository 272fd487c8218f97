"""What a mean and a context buy the hyperprior, at equal CPU training time: three entropy models for the same latents.

    python scripts/bench_hyperprior_variants.py scale --steps 1000    # hp-long fine-tuned at its own lmbda
    python scripts/bench_hyperprior_variants.py mean --steps 1000     # with a mean per latent (Minnen et al. 2018)
    python scripts/bench_hyperprior_variants.py context --steps 1000  # and a checkerboard context (He et al. 2021)
    python scripts/bench_hyperprior_variants.py --compare             # the finished runs side by side

Every variant starts from `hp-long` (lmbda 6, a = 100, b = 0) and trains the same steps on the same batches, pixels
only. The mean-scale model is `hp-long` with two changes, after CompressAI's `MeanScaleHyperprior`: h_a reads y
beside |y| (a mean needs the sign; CompressAI's reads y alone, which here would start at four times hp-long's
rate), and h_s's last layer also predicts one mean per latent. The checkerboard model adds CompressAI's
`CheckerboardMaskedConv2d` over the decoded latents: half of them (the anchors) are coded from the side information
alone, the other half also from their anchor neighbours, through a small network whose correction to the
Gaussian's scale and mean starts at zero. New weights start at zero, so every run starts from hp-long's very
function. Each epoch validates on 192 CelebA validation faces (people never trained on) with rounding, not noise:
bits per pixel from the entropy models, PSNR of the reconstructions. One thread per run.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from compressai.layers import CheckerboardMaskedConv2d

from facelab.hyperprior import BLOCK, HYPER_BLOCK, HyperpriorNet, pad_to
from facelab.rate_output import RateOutput
from facelab.recipes import make_config
from facelab.train import Trainer, build_data, build_loss, build_model

RUNS = Path("runs/hyperprior-variants")
LMBDA = 6.0
"""hp-long's own lmbda: no variant has to move its rate, so the comparison is of the entropy models alone."""


class MeanScaleNet(HyperpriorNet):
    """The scale hyperprior with a Gaussian mean per latent: y is coded as round(y - mean) (an experiment, not a
    shipped codec: the exact decoder of `facelab.exact` covers the scales only)."""

    def __init__(self, scale_model: HyperpriorNet) -> None:
        super().__init__(scale_model.channels)
        self.load_state_dict(scale_model.state_dict())
        last = self.h_s[-2]
        both = nn.Conv2d(last.in_channels, 2 * last.out_channels, last.kernel_size, padding=last.padding)
        with torch.no_grad():
            both.weight.zero_()
            both.bias.zero_()
            both.weight[: last.out_channels] = last.weight
            both.bias[: last.out_channels] = last.bias
        self.h_s = nn.Sequential(*self.h_s[:-2], both)
        first = self.h_a[0]
        signed = nn.Conv2d(2 * first.in_channels, first.out_channels, first.kernel_size, first.stride, first.padding)
        with torch.no_grad():
            signed.weight.zero_()
            signed.weight[:, : first.in_channels] = first.weight
            signed.bias.copy_(first.bias)
        self.h_a = nn.Sequential(signed, *self.h_a[1:])

    def forward(self, image: Tensor) -> RateOutput:
        height, width = image.shape[-2:]
        y = self.g_a(pad_to(image, BLOCK))
        z = self.h_a(pad_to(torch.cat([y.abs(), y], 1), HYPER_BLOCK, mode="constant"))
        with torch.autocast(image.device.type, enabled=False):
            z_hat, z_likelihoods = self.entropy_bottleneck(z.float())
            hyper = self.h_s(z_hat)[..., : y.shape[-2], : y.shape[-1]].float()
            y_hat, scales, means = self.code_latents(y.float(), hyper)
            y_likelihoods = self.gaussian_conditional.likelihood_lower_bound(
                self.gaussian_conditional._likelihood(y_hat, scales, means))
        x_hat = self.g_s(y_hat)[..., :height, :width]
        bits = -(torch.log2(y_likelihoods).sum() + torch.log2(z_likelihoods).sum())
        return RateOutput(x_hat, bits / (image.shape[0] * height * width), self.aux_loss())

    def code_latents(self, y: Tensor, hyper: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(y with noise in training, else rounded around its mean; the Gaussians' scales; their means)."""
        scales, means = hyper.chunk(2, 1)
        return self.gaussian_conditional.quantize(y, "noise" if self.training else "dequantize", means), \
            scales.relu(), means


class CheckerboardNet(MeanScaleNet):
    """The mean-scale model with a checkerboard context: the anchors ((row + column) even) are coded first from the
    side information alone, then each other latent from it and its decoded anchor neighbours (5x5)."""

    def __init__(self, scale_model: HyperpriorNet) -> None:
        super().__init__(scale_model)
        params = 2 * self.M
        self.context = CheckerboardMaskedConv2d(self.M, params, kernel_size=5, padding=2)
        last = nn.Conv2d(3 * self.M, params, 1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.entropy_parameters = nn.Sequential(nn.Conv2d(2 * params, 3 * self.M, 1), nn.LeakyReLU(inplace=True), last)

    def code_latents(self, y: Tensor, hyper: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        rows, columns = torch.meshgrid(torch.arange(y.shape[-2]), torch.arange(y.shape[-1]), indexing="ij")
        others = ((rows + columns) % 2).to(y)
        if self.training:
            y_hat = self.gaussian_conditional.quantize(y, "noise")
        else:
            y_hat = self.gaussian_conditional.quantize(y, "dequantize", hyper.chunk(2, 1)[1]) * (1 - others)
        correction = self.entropy_parameters(torch.cat([hyper, self.context(y_hat) * others], 1)) * others
        scales, means = (hyper + correction).chunk(2, 1)
        if not self.training:
            y_hat = self.gaussian_conditional.quantize(y, "dequantize", means)
        return y_hat, scales.relu(), means


VARIANTS = {"scale": None, "mean": MeanScaleNet, "context": CheckerboardNet}
"""Each variant's model made from hp-long (None: hp-long itself, trained on as the scale hyperprior it is)."""


def run(variant: str, steps: int) -> None:
    """Train one variant for `steps` steps (resumable, one epoch per 100 steps) and write its history."""
    config = make_config("hp-0-pixel", name=f"bench-{variant}", lmbda=LMBDA, epochs=steps // 100,
                         steps_per_epoch=100)
    make = VARIANTS[variant]
    trainer = Trainer(config, RUNS / variant, model=None if make is None else make(build_model(config)))
    trainer.try_resume()
    train, val, _ = build_data(config)
    trainer.fit(train, val, build_loss(config, trainer.device), on_epoch=lambda record: print(record, flush=True))
    (RUNS / f"{variant}.json").write_text(json.dumps(trainer.history, indent=1))


def rd_loss(record: dict[str, float]) -> float:
    """A validation record's rate-distortion loss, bpp + lmbda * distortion (the auxiliary loss left out)."""
    return record["val_bpp"] + LMBDA * record["val_distortion"]


def compare() -> None:
    """Each epoch's validation bpp, PSNR and rate-distortion loss (bpp + lmbda * distortion, without the auxiliary
    loss) for every finished variant, and each one's bits against the scale hyperprior's."""
    runs = {variant: json.loads((RUNS / f"{variant}.json").read_text())
            for variant in VARIANTS if (RUNS / f"{variant}.json").is_file()}
    print("steps | " + " | ".join(f"{variant}: bpp PSNR R+λD (bits vs scale)" for variant in runs))
    for records in zip(*runs.values()):
        scale = records[0]["val_bpp"]
        print(f"{records[0]['epoch'] * 100:5d} | " + " | ".join(
            f"{r['val_bpp']:.3f} {r['val_psnr']:.2f} {rd_loss(r):.3f} ({100 * (r['val_bpp'] / scale - 1):+.1f}%)"
            for r in records))
    print("seconds: " + ", ".join(f"{variant} {records[-1]['seconds']:.0f}" for variant, records in runs.items()))


def variant_command(description: str, variants: Sequence[str], run: Callable[[str, int], None],
                    compare: Callable[[], None], steps: int) -> None:
    """The command line of a benchmark of variants: train one for --steps (one thread), or --compare them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("variant", nargs="?", choices=tuple(variants))
    parser.add_argument("--steps", type=int, default=steps, help="training steps, a multiple of 100")
    parser.add_argument("--compare", action="store_true", help="print the finished runs side by side")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.compare:
        compare()
    elif args.variant:
        run(args.variant, args.steps)
    else:
        parser.error(f"name a variant ({', '.join(variants)}) or --compare")


def main() -> None:
    variant_command(__doc__.splitlines()[0], tuple(VARIANTS), run, compare, steps=400)


if __name__ == "__main__":
    main()
