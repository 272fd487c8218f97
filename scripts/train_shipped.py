"""Train the models facelab ships, in order, from their recipes (`facelab.recipes`), into facelab/weights/.

    python scripts/train_shipped.py                        # every shipped model, the recipes' CPU budgets
    python scripts/train_shipped.py --only face-a100       # one model (it starts from the installed face-base)
    python scripts/train_shipped.py --device cuda --scale 4   # a GPU: four times the steps of every run

The chain: natural -> face-base -> the paper's phase 2 (face, face-pixel and their -adamw twins) and the
loss-balance sweep (face-b0, face-a1 ... face-a1000); then lesson 07's scale hyperprior: hp-natural -> hp-base ->
hp-long -> hp-0 ... hp-4 and their pixels-only twins hp-0-pixel ... hp-4-pixel (these need CompressAI, a dependency).
Each run resumes from its run folder (runs/shipped/<name>/) when interrupted, and each installed checkpoint
records its configuration, data, history, device and time.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from facelab.recipes import RECIPES, make_config
from facelab.train import train
from facelab.weights import SHIPPED_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every run's steps per epoch by this")
    parser.add_argument("--runs", type=Path, default=Path("runs/shipped"), help="run folders (checkpoints, history)")
    parser.add_argument("--only", nargs="+", choices=tuple(RECIPES), default=None, help="train only these")
    args = parser.parse_args()
    SHIPPED_DIR.mkdir(exist_ok=True)
    for name, recipe in RECIPES.items():
        if args.only and name not in args.only:
            continue
        scaled = ({"steps_per_epoch": round(recipe["steps_per_epoch"] * args.scale)} if "steps_per_epoch" in recipe
                  else {"epochs": round(recipe["epochs"] * args.scale)})  # `natural` runs whole passes over its data
        config = make_config(name, device=args.device, data_root=args.data_root, **scaled)
        checkpoint = train(config, args.runs / name)
        shutil.copyfile(checkpoint, SHIPPED_DIR / f"{name}.pt")
        print(f"installed {SHIPPED_DIR / f'{name}.pt'}")


if __name__ == "__main__":
    main()
