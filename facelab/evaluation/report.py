"""The evaluation's tables as Markdown and CSV, next to the paper's numbers, and everything in results.json."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from facelab.bitstream import CODERS
from facelab.evaluation.paper import LFW_IMAGES, PAPER_TABLE1, PAPER_TABLE2
from facelab.evaluation.rows import Score, Summary
from facelab.image_io import atomic_write
from facelab.recipes import LEARNED

PROTOCOL = """## How these numbers are made

- **bpp** = 8 x bytes of the real compressed file / pixels of the ORIGINAL image (facelab: the file
  `facelab.codec.compress` writes, `.xz` for the paper's models and `.flh` for a hyperprior; codecs: Pillow's file). **MB** = total bytes / 10^6 (the paper does not say
  whether its MB are 10^6 or 2^20 bytes).
- **Compression ratio**: the paper's 5.89 at 0.76 bpp matches neither 24 / bpp nor the LFW JPEG files, so both
  are given: raw 24-bit RGB size / file size, and original JPEG file size / file size.
- **Crops**: MTCNN's most probable face box on the ORIGINAL crops both the original and the reconstruction
  (RoIAlign to 160x160) before FaceNet; where MTCNN finds no face in an original a fixed median box is used.
- **Average cosine**: between FaceNet embeddings of each original and its reconstruction.
- **1-NN acc. (paper's)**: gallery = embeddings of all originals of the set, probe = each reconstruction; correct
  when the most cosine-similar original shows the probe's identity (its own original is in the gallery).
  **Own original excluded**: the same without the probe's own original (probes whose identity has a single
  image in the set are not scored).
- **Faces not detected**: reconstructions in which MTCNN finds no face; the originals row counts originals.
- **Pairs acc.**: LFW View-2 protocol on the reconstructions of both images of each pair, cosine similarity,
  threshold chosen on 9 folds and applied to the 10th, mean over folds (only the pairs complete in the set).
- **Judge**: the same face scores by a second recogniser that no facelab model trains against, dlib's ResNet
  face descriptor (`facelab.judge`): its 5-point landmarks found in the original's box align the original and every
  reconstruction of it (150x150 chips). **Judge similarity** = 1 - the Euclidean distance of the two descriptors,
  dlib's own measure: dlib calls two faces the same person above 0.4; different LFW people sit at about 0.17, the
  same person at about 0.55. The judge's 1-NN and pairs rank its descriptors by cosine, as FaceNet's do. A codec
  that pleases FaceNet without keeping what identifies a face loses here.
- **Equal bpp**: each image coded by the codec at the largest file at or under that image's facelab bpp.
- **Facelab operating points** (curves): the image is coded at a fraction of its size and upscaled back
  (bicubic); bpp still counts the original pixels. Both entropy coders give the same reconstruction.
- **BD-rate**: Bjøntegaard delta rate against the JPEG curve (negative = fewer bits at equal quality), at equal
  PSNR, MS-SSIM, FaceNet cosine and judge similarity.
- **± values**: one standard error, the sampling error of an average at this many images: the images' standard
  deviation over sqrt(images) for bpp, PSNR, MS-SSIM, cosine and judge similarity; sqrt(p (1 - p) / probes) for
  1-NN accuracy; the folds' sample standard deviation over sqrt(folds) for pairs accuracy. Two rows whose
  difference is within about twice these may not differ on all of LFW.
"""
"""The protocol notes appended to results.md (followed by the LFW view's note, VIEW_NOTES)."""

VIEW_NOTES = {
    "250x250": """- **LFW view 250x250**: LFW's own files, as they are. **JPEG on LFW re-encodes JPEGs**: those files
  are JPEGs already, and JPEG coding them again on the same 8x8 grid loses little, so its PSNR here flatters
  it; the other codecs and facelab get no such help. `--lfw-size 112x96` gives the paper's aligned view.
""",
    "112x96": """- **LFW view 112x96** (the paper's): each face aligned the way face-recognition work aligns it,
  MTCNN's five landmarks mapped by a similarity transform onto the standard 112x96 template
  (`facelab.data.lfw_aligned`; where MTCNN finds no face, the median LFW landmarks place the crop, counted
  above). The originals are these crops, stored losslessly (PNG): Table 1's second ratio is against the PNG
  crop, not the JPEG file. Aligning resamples the pixels, so JPEG no longer re-encodes the LFW files' own 8x8
  grid (at 250x250 that flatters JPEG). MS-SSIM uses a 5-px window at this size (an 11-px one needs a short
  side over 160 px).
""",
}
"""Each LFW view's note: which images were evaluated, and what that means for the JPEG baseline."""

ORIGINALS = {None: ("original files", "original file"), "250x250": ("original JPEG files", "original JPEG file"),
             "112x96": ("original aligned crops (lossless PNG)", "lossless PNG crop")}
"""Per view (None: an image folder), the originals' Table 2 row name and what Table 1's file ratio compares with."""

Table = tuple[list[str], list[list[Any]]]
"""A table: its header and its rows of cells."""


@dataclass(frozen=True)
class Estimate:
    """A table cell that is an average with its sampling error: 'value ± se' in Markdown, two columns in CSV."""

    value: float | None
    se: float | None


def cell(value: Any, digits: int = 3) -> str:
    """A value as table text: numbers to `digits` decimals, None / nan as an em dash, inf as 'inf'."""
    if isinstance(value, Estimate):
        shown = cell(value.value, digits)
        return shown if value.se is None or value.value is None else f"{shown} ± {value.se:.{digits}f}"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.{digits}f}"
    return str(value)


def estimate(row: Score, metric: str) -> Estimate:
    """A row's average of `metric` with its sampling error, as one cell."""
    return Estimate(row.value(metric), row.error(metric))


def markdown(table: Table) -> str:
    """A GitHub Markdown table."""
    header, rows = table
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_text(table: Table) -> str:
    """The table as CSV, numbers at full precision, missing values empty; an Estimate column is followed by
    its standard error's column ('<name> SE')."""
    header, rows = table
    split = [any(isinstance(row[i], Estimate) for row in rows) for i in range(len(header))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([name for name, two in zip(header, split) for name in ((name, f"{name} SE") if two else (name,))])
    for row in rows:
        cells = []
        for value, two in zip(row, split):
            parts = (value.value, value.se) if isinstance(value, Estimate) else (value, None) if two else (value,)
            cells += ["" if part is None else part for part in parts]
        writer.writerow(cells)
    return buffer.getvalue()


def protocol(view: str | None) -> str:
    """results.md's protocol notes, with the LFW view's note (none for an image folder)."""
    return PROTOCOL + VIEW_NOTES.get(view or "", "")


def originals_name(view: str | None) -> str:
    """The originals' row name in Table 2 for this view (see ORIGINALS)."""
    return ORIGINALS.get(view, ORIGINALS[None])[0]


def table1(model: str, row: Score, view: str | None = "250x250") -> Table:
    """Table 1 for one model: bpp, both compression ratios, PSNR, MS-SSIM as average / max / min, and the paper's
    beside the paper's recipe and beside the paper's architecture with a learned rate."""
    paper = PAPER_TABLE1 if model == "face" or model in LEARNED else {}
    lines = [(f"bpp ({CODERS[row.coder].suffix} files)", "bpp", "bpp"),
             ("compression ratio vs raw 24-bit RGB", "ratio_raw", None),
             (f"compression ratio vs {ORIGINALS.get(view, ORIGINALS[None])[1]}", "ratio_file", None),
             ("compression ratio (paper's, definition not given)", None, "compression_ratio"),
             ("PSNR (dB)", "psnr", "psnr"),
             ("MS-SSIM", "ms_ssim", "ms_ssim")]
    rows = []
    for label, ours, theirs in lines:
        summary: Summary | None = getattr(row, ours) if ours else None
        values = [Estimate(summary.mean, summary.se), summary.max, summary.min] if summary else [None] * 3
        published = [paper[theirs][key] if theirs and paper else None for key in ("mean", "max", "min")]
        rows.append([label, *values, *published])
    return ["metric", "average", "maximum", "minimum", "paper average", "paper maximum", "paper minimum"], rows


def paper_row_name(row: Score) -> str | None:
    """The paper's Table 2 row matching one of ours ('face', 'face-pixel', 'jpeg-q70', ...), if any."""
    if row.family == "facelab":
        return row.model
    if row.family == "jpeg" and row.quality is not None:
        return f"jpeg-q{row.quality.mean:g}"
    return None


JUDGE_COLUMNS = {"judge similarity": "judge_similarity", "judge 1-NN acc. (paper's)": "judge_nn_accuracy",
                 "judge 1-NN acc. (own original excluded)": "judge_nn_accuracy_strict",
                 "judge pairs acc. (10-fold)": "judge_pairs_accuracy"}
"""The judge's columns of every table of rows (header -> Score field), after FaceNet's."""


def table2(rows: list[Score], lfw: bool) -> Table:
    """Table 2: dataset size, bpp, cosine, both 1-NN accuracies, misses, pairs accuracy, the judge's scores, and the
    paper's row."""
    header = ["method", "images", "MB"] + ([f"MB for {LFW_IMAGES:,}"] if lfw else []) + [
        "bpp", "avg cosine", "1-NN acc. (paper's)", "1-NN acc. (own original excluded)", "faces not detected",
        "pairs acc. (10-fold)", *JUDGE_COLUMNS, "paper MB", "paper cosine", "paper acc.", "paper not detected"]
    out = []
    for row in rows:
        paper = PAPER_TABLE2.get(paper_row_name(row) or "", {})
        scaled = [row.bytes / row.images * LFW_IMAGES / 1e6] if lfw else []
        out.append([row.method, row.images, row.mb, *scaled, estimate(row, "bpp"), estimate(row, "cosine"),
                    estimate(row, "nn_accuracy"), estimate(row, "nn_accuracy_strict"), row.not_detected,
                    estimate(row, "pairs_accuracy"), *[estimate(row, metric) for metric in JUDGE_COLUMNS.values()],
                    paper.get("mb"), paper.get("cosine"), paper.get("accuracy"), paper.get("not_detected")])
    return header, out


def points_table(rows: list[Score]) -> Table:
    """Rate-distortion and rate-accuracy points (also the equal-bpp table): averages per method, ± sampling error,
    FaceNet's face scores, then the judge's."""
    header = ["method", "images", "bpp", "PSNR (dB)", "MS-SSIM", "avg cosine", "1-NN acc. (paper's)",
              "1-NN acc. (own original excluded)", "faces not detected", "pairs acc. (10-fold)", *JUDGE_COLUMNS]
    metrics = ("bpp", "psnr", "ms_ssim", "cosine", "nn_accuracy", "nn_accuracy_strict")
    return header, [[row.method, row.images, *[estimate(row, metric) for metric in metrics], row.not_detected,
                     estimate(row, "pairs_accuracy"), *[estimate(row, metric) for metric in JUDGE_COLUMNS.values()]]
                    for row in rows]


def bd_table(entries: list[dict]) -> Table:
    """BD-rate (%) of each curve against JPEG, per quality metric; negative = fewer bits at equal quality."""
    metrics = sorted({metric for entry in entries for metric in entry["bd_rate"]})
    return ["curve", *[f"BD-rate vs JPEG, {metric} (%)" for metric in metrics]], [
        [entry["curve"], *[entry["bd_rate"].get(metric) for metric in metrics]] for entry in entries]


def timings_table(timings: dict[str, float]) -> Table:
    """Seconds per stage."""
    return ["stage", "seconds"], [[stage, seconds] for stage, seconds in timings.items()]


def write_table(folder: Path, name: str, table: Table) -> None:
    """<name>.md and <name>.csv under `folder`."""
    atomic_write(folder / f"{name}.md", markdown(table).encode(), overwrite=True)
    atomic_write(folder / f"{name}.csv", csv_text(table).encode(), overwrite=True)


def _json_safe(value: Any) -> Any:
    """Rows as dicts, nan / inf floats as None, recursively, so results.json is valid JSON."""
    if isinstance(value, Score):
        return _json_safe(value.to_dict())
    if isinstance(value, Summary):
        return _json_safe(asdict(value))
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: Path, results: dict) -> None:
    """results.json, atomically."""
    atomic_write(path, (json.dumps(_json_safe(results), indent=1) + "\n").encode(), overwrite=True)
