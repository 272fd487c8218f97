"""`facelab train NAME`: the command line of the trainer (`configure`, `run`); the work is `facelab.train.train`."""

from __future__ import annotations

import argparse
from pathlib import Path

from facelab.recipes import RECIPES, TrainConfig, make_config
from facelab.train import PRECISIONS, train


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of `facelab train`."""
    parser.add_argument("run", choices=tuple(RECIPES), help="which shipped model to (re)train")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--crop", type=int, default=None, help="natural phase: random crop side in pixels")
    parser.add_argument("--face-size", type=int, nargs=2, default=None, metavar=("H", "W"), help="face phase image size")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the paper's)")
    parser.add_argument("--beta1", type=float, default=None, help="Adam's first-moment decay (default: the paper's 0.99)")
    parser.add_argument("--max-images", type=int, default=None, help="use at most this many training images")
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--init", default=None, help="weights to start from (default: the recipe's)")
    parser.add_argument("--face-samples", type=int, default=None, help="faces per batch that go through FaceNet")
    parser.add_argument("--a", type=float, default=None, help="face phase: the pixel loss's weight in Eq. 2")
    parser.add_argument("--b", type=float, default=None, help="face phase: the FaceNet loss's weight in Eq. 2")
    parser.add_argument("--lmbda", type=float, default=None, help="hyperprior or learned rate: the distortion's weight against the rate")
    parser.add_argument("--latent-gain", type=float, default=None,
                        help="hyperprior: quantise the starting model's latents this many times finer (its rate moves at once)")
    parser.add_argument("--name", default=None,
                        help="the checkpoint's model name and default run folder (default: the run's); "
                             "name a run whose weights or budget differ from the shipped recipe")
    parser.add_argument("--val-images", type=int, default=None, help="validate on at most this many images")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="auto: bf16 autocast where the device computes it natively, else fp32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--run-dir", default=None, help="checkpoints and history (default: runs/<name>)")
    parser.add_argument("--output", default=None, help="final checkpoint (default: <run-dir>/<name>.pt)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if the run folder has a checkpoint")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's recipe with every option given on the command line applied."""
    return make_config(
        args.run, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, beta1=args.beta1, crop=args.crop,
        face_size=tuple(args.face_size) if args.face_size else None, max_images=args.max_images,
        steps_per_epoch=args.steps_per_epoch, init=args.init, device=args.device, data_root=args.data_root,
        face_samples=args.face_samples, val_images=args.val_images, precision=args.precision, a=args.a, b=args.b,
        lmbda=args.lmbda, latent_gain=args.latent_gain, name=args.name,
    )


def run(args: argparse.Namespace) -> int:
    """`facelab train RUN`: train and print where the checkpoint went."""
    config = config_from_args(args)
    path = train(config, args.run_dir or Path("runs") / config.name, args.output, resume=not args.no_resume)
    print(f"wrote {path}")
    return 0
