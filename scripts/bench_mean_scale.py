"""What a mean buys the hyperprior, at equal CPU training time: the shipped scale hyperprior against a mean-scale one.

    python scripts/bench_mean_scale.py scale --steps 400      # hp-long fine-tuned at its own lmbda, pixels only
    python scripts/bench_mean_scale.py mean --steps 400       # the same, with a mean per latent (Minnen et al. 2018)
    python scripts/bench_mean_scale.py --compare              # the two runs' histories side by side

Both variants start from `hp-long` (lmbda 6, a = 100, b = 0) and train the same steps on the same batches. The
mean-scale model is `hp-long` with two changes, after CompressAI's `MeanScaleHyperprior`: h_a reads y beside |y|
(a mean needs the sign; CompressAI's reads y alone, which here would start at four times hp-long's rate), and h_s's
last layer also predicts one mean per latent. The new weights start at zero, so the run starts from hp-long's very
function and both variants spend the same steps from the same point. Each epoch validates on 192 CelebA validation faces
(people never trained on) with rounding, not noise: bits per pixel from the entropy models, PSNR of the
reconstructions. One run per variant and one thread each, so two runs fit a 2-core machine side by side.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import Tensor, nn

from facelab.hyperprior import BLOCK, HYPER_BLOCK, HyperpriorNet, pad_to
from facelab.rate_output import RateOutput
from facelab.recipes import make_config
from facelab.train import Trainer, build_data, build_loss, cosine_factor, parameter_groups

RUNS = Path("runs/mean-scale")
LMBDA = 6.0
"""hp-long's own lmbda: neither variant has to move its rate, so the comparison is of the entropy models alone."""


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
            scales, means = self.h_s(z_hat)[..., : y.shape[-2], : y.shape[-1]].float().chunk(2, 1)
            y_hat, y_likelihoods = self.gaussian_conditional(y.float(), scales.relu(), means=means)
        x_hat = self.g_s(y_hat)[..., :height, :width]
        bits = -(torch.log2(y_likelihoods).sum() + torch.log2(z_likelihoods).sum())
        return RateOutput(x_hat, bits / (image.shape[0] * height * width), self.aux_loss())


def run(variant: str, steps: int) -> None:
    """Train one variant for `steps` steps (resumable, one epoch per 100 steps) and write its history."""
    config = make_config("hp-0-pixel", name=f"bench-{variant}", lmbda=LMBDA, epochs=steps // 100,
                         steps_per_epoch=100)
    trainer = Trainer(config, RUNS / variant)
    if variant == "mean":
        trainer.model = MeanScaleNet(trainer.model)
        trainer.optimizer = type(trainer.optimizer)(parameter_groups(trainer.model, config.lr), lr=config.lr,
                                                    betas=(config.beta1, 0.999), weight_decay=config.weight_decay)
        trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.optimizer,
                                                              lambda step: cosine_factor(step, steps))
    trainer.try_resume()
    train, val, _ = build_data(config)
    trainer.fit(train, val, build_loss(config, trainer.device), on_epoch=lambda record: print(record, flush=True))
    (RUNS / f"{variant}.json").write_text(json.dumps(trainer.history, indent=1))


def rd_loss(record: dict[str, float]) -> float:
    """A validation record's rate-distortion loss, bpp + lmbda * distortion (the auxiliary loss left out)."""
    return record["val_bpp"] + LMBDA * record["val_distortion"]


def compare() -> None:
    """Each epoch's validation bpp, PSNR and rate-distortion loss (bpp + lmbda * distortion, without the auxiliary
    loss) for both variants, and the mean's bits against the scale's."""
    scale, mean = (json.loads((RUNS / f"{variant}.json").read_text()) for variant in ("scale", "mean"))
    print("steps | scale: bpp   PSNR  R+λD  | mean: bpp   PSNR  R+λD  | mean's bits | seconds (scale, mean)")
    for one, other in zip(scale, mean):
        print(f"{one['epoch'] * 100:5d} | {one['val_bpp']:.3f} {one['val_psnr']:.2f} {rd_loss(one):.3f} | "
              f"{other['val_bpp']:.3f} {other['val_psnr']:.2f} {rd_loss(other):.3f} | "
              f"{100 * (other['val_bpp'] / one['val_bpp'] - 1):+.1f}%      | "
              f"{one['seconds']:.0f}, {other['seconds']:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", nargs="?", choices=("scale", "mean"))
    parser.add_argument("--steps", type=int, default=400, help="training steps, a multiple of 100")
    parser.add_argument("--compare", action="store_true", help="print the two finished runs side by side")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.compare:
        compare()
    elif args.variant:
        run(args.variant, args.steps)
    else:
        parser.error("name a variant (scale or mean) or --compare")


if __name__ == "__main__":
    main()
