"""The `facelab` command: compress, decompress, inspect, and the course's data, train and evaluate jobs.

Every problem with the user's input ends in one line `facelab: error: ...` and exit status 1;
outputs are written atomically and never replace an existing file unless --overwrite is given.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from facelab.bitstream import CODERS
from facelab.catalog import DEFAULT_MODEL, SHIPPED
from facelab.errors import BitstreamError, FacelabError, FacelabWarning, job_failure
from facelab.rate import bpp

PLUGINS = {
    "train": ("facelab.train_command", "train a phase of the paper (natural pretraining, face fine-tuning)"),
    "evaluate": ("facelab.evaluation.command", "evaluate models and baselines on LFW or an image folder"),
}
"""Subcommands whose arguments and work live in their own module: `configure(parser)` and `run(args) -> int`.
Their modules (the training and evaluation stacks) are imported only when their command runs."""


def output_for(source: Path, src_root: Path, dst_root: Path, suffix: str) -> Path:
    """Where a file of a folder job goes: the same relative path under dst_root, with a new suffix."""
    return (dst_root / source.relative_to(src_root)).with_suffix(suffix)


def plan(src: Path, dst: Path, pattern: Callable[[Path], bool], suffix: str) -> list[tuple[Path, Path]]:
    """Pairs of (input, output) for a file or a whole folder; refuses to write over an input."""
    if not src.exists():
        raise FacelabError(f"{src} does not exist")
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.is_file() and pattern(p))
        if not files:
            raise FacelabError(f"{src} holds no files to process")
        if dst.exists() and not dst.is_dir():
            raise FacelabError(f"{dst} must be a folder when the input is a folder")
        pairs = [(f, output_for(f, src, dst, suffix)) for f in files]
    else:
        pairs = [(src, dst / (src.stem + suffix) if dst.is_dir() else dst)]
    for source, target in pairs:
        if source.resolve() == target.resolve():
            raise FacelabError(f"refusing to write over the input {source}")
    return pairs


def run_jobs(pairs: list[tuple[Path, Path]], work: Callable[[Path, Path], str], verb: str) -> int:
    """Run `work` on each pair; a failing file is reported and the rest go on. 0 when all succeeded."""
    failed = 0
    bar = tqdm(pairs, desc=verb, unit="file", disable=len(pairs) == 1)
    for source, target in bar:
        try:
            line = work(source, target)
        except Exception as exc:
            message = job_failure(exc)
            if message is None:
                raise
            failed += 1
            tqdm.write(f"facelab: error: {message if str(source) in message else f'{source}: {message}'}", file=sys.stderr)
            continue
        tqdm.write(line)
    if failed and len(pairs) > 1:
        print(f"facelab: {failed} of {len(pairs)} files failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_compress(args: argparse.Namespace) -> int:
    from facelab.codec import SUFFIXES, check_coder, compress, default_coder
    from facelab.image_io import IMAGE_SUFFIXES, atomic_write, load_image
    from facelab.weights import load_model

    model = load_model(args.model)
    coder = args.coder or default_coder(model)
    check_coder(coder, model)
    pairs = plan(Path(args.input), Path(args.output), lambda p: p.suffix.lower() in IMAGE_SUFFIXES, SUFFIXES[coder])

    def work(source: Path, target: Path) -> str:
        if target.exists() and not args.overwrite:
            raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
        image = load_image(source)
        start = time.perf_counter()
        data = compress(image, model, coder=coder)
        seconds = time.perf_counter() - start
        atomic_write(target, data, overwrite=args.overwrite)
        h, w = image.shape[:2]
        return f"{source} -> {target}: {w}x{h}, {len(data)} bytes, {bpp(len(data), h, w):.3f} bpp, {seconds:.2f} s"

    return run_jobs(pairs, work, "compress")


def cmd_decompress(args: argparse.Namespace) -> int:
    from facelab.codec import SUFFIXES, decompress
    from facelab.container import read_file, read_header
    from facelab.image_io import save_image
    from facelab.weights import load_model, named_model

    models: dict[str, object] = {}
    pairs = plan(Path(args.input), Path(args.output), lambda p: p.suffix.lower() in SUFFIXES.values(), ".png")

    def work(source: Path, target: Path) -> str:
        if target.exists() and not args.overwrite:
            raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
        data = read_file(source)
        header = read_header(data)[0]
        spec = args.model or header.model_name
        if spec not in models:
            models[spec] = load_model(spec) if args.model else named_model(spec)
        start = time.perf_counter()
        image = decompress(data, models[spec])
        seconds = time.perf_counter() - start
        save_image(image, target, overwrite=args.overwrite)
        return f"{source} -> {target}: {header.width}x{header.height}, {seconds:.2f} s"

    return run_jobs(pairs, work, "decompress")


def cmd_info(args: argparse.Namespace) -> int:
    from facelab.container import file_header

    path = Path(args.input)
    if path.is_dir():
        raise FacelabError(f"{path} is a folder; `facelab info` reads one .xz, .flc, .flh or .flr file")
    if not path.is_file():
        raise FacelabError(f"{path} does not exist")
    try:
        header = file_header(path)
    except BitstreamError as exc:
        raise BitstreamError(f"{path}: {exc}") from None
    size = path.stat().st_size
    rate = bpp(size, header.height, header.width)
    print(f"{path}: facelab {header.coder} file, {header.width}x{header.height} pixels, "
          f"code {header.code_channels}x{header.code_h}x{header.code_w}, model {header.model_id}, "
          f"{size} bytes, {rate:.3f} bpp")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from facelab.data import check, format_check

    statuses = check(args.root)
    print(format_check(statuses))
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    from facelab.data.downloads import download_many

    report = download_many(args.names, args.root)
    for name, line in report.skipped.items():
        print(f"facelab: {line}; the course goes on without {name} (lesson 04 uses the shipped face models)",
              file=sys.stderr)
    for line in report.failed.values():
        print(f"facelab: error: {line}", file=sys.stderr)
    print(report.summary())
    return 1 if report.failed else 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of every subcommand; a plugin's own arguments only when it is `command` (or None: all)."""
    parser = argparse.ArgumentParser(prog="facelab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compress", help="image (or folder of images) -> .xz / .flc / .flh")
    p.add_argument("input")
    p.add_argument("output", help="output file, or folder when the input is a folder")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"shipped model ({', '.join(SHIPPED)}; default {DEFAULT_MODEL}) or a .pt checkpoint path")
    p.add_argument("--coder", default=None, choices=tuple(CODERS),
                   help="; ".join(f"{c.name}: {c.help}" for c in CODERS.values()) + " (default: the model's first)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help=".xz / .flc / .flh (or folder of them) -> PNG")
    p.add_argument("input")
    p.add_argument("output", help="output PNG, or folder when the input is a folder")
    p.add_argument("--model", default=None, help="model to decode with (default: the one named in the file)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_decompress)

    p = sub.add_parser("info", help="print the header of a compressed file")
    p.add_argument("input")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("data", help="inspect or download the datasets under the data root")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("check", help="where each dataset was found, its counts, and what is missing")
    p.add_argument("--root", default=None, help="data root (default: $FACELAB_DATA, else the facelab cache)")
    p.set_defaults(func=cmd_data_check)
    p = data_sub.add_parser("download", help="fetch datasets from their official sources (or $FACELAB_MIRROR), checked")
    p.add_argument("names", nargs="+", metavar="NAME", help="lfw, kodak, celeba, clic2020, or course (the first three)")
    p.add_argument("--root", default=None, help="data root (default: $FACELAB_DATA, else the facelab cache)")
    p.set_defaults(func=cmd_data_download)

    for name, (module_name, help_text) in PLUGINS.items():
        p = sub.add_parser(name, help=help_text)
        if command in (None, name):
            module = importlib.import_module(module_name)
            module.configure(p)
            p.set_defaults(func=module.run)
    return parser


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: object = None, line: str | None = None) -> None:
    """Print facelab's own warnings as one `facelab: warning: ...` line, and others as Python does."""
    if issubclass(category, FacelabWarning):
        tqdm.write(f"facelab: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `facelab` command."""
    words = sys.argv[1:] if argv is None else argv
    command = next((word for word in words if not word.startswith("-")), "")
    args = build_parser(command).parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", FacelabWarning)
            warnings.showwarning = show_warning
            return args.func(args)
    except Exception as exc:
        message = job_failure(exc)
        if message is None:
            raise
        print(f"facelab: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("facelab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
