"""Write the manifests facelab checks unpacked archives against, from a trusted copy of the data.

    python scripts/make_manifest.py --data ../shared/data

The LFW project publishes no hash of `lfw-deepfunneled.zip`, so `facelab data download lfw` checks what
it unpacks to: every file name and SHA-256 of the course's own copy (which came from LFW's site),
written to facelab/data/manifests/<name>.txt.gz.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facelab.data.manifest import write_manifest

MANIFESTS = {"lfw-deepfunneled": ("lfw/lfw-deepfunneled", (".jpg",))}
"""Manifest name -> (folder under the data root, file suffixes listed)."""

TARGET = Path(__file__).resolve().parent.parent / "facelab" / "data" / "manifests"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the trusted data root, e.g. ../shared/data")
    args = parser.parse_args()
    for name, (folder, suffixes) in MANIFESTS.items():
        target = TARGET / f"{name}.txt.gz"
        count = write_manifest(args.data / folder, target, suffixes)
        print(f"{target}: {count} files, {target.stat().st_size} bytes")


if __name__ == "__main__":
    main()
