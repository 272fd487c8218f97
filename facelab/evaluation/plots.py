"""Rate-distortion and rate-accuracy curves as PNG: facelab's operating points against each codec's qualities."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from facelab.bitstream import CODERS, coders_for
from facelab.evaluation.paper import PAPER_TABLE1
from facelab.evaluation.rows import Score

PANELS_DISTORTION = (("psnr", "PSNR (dB)"), ("ms_ssim", "MS-SSIM"))
PANELS_ACCURACY = (("cosine", "avg cosine similarity"), ("nn_accuracy", "1-NN accuracy (paper's)"),
                   ("nn_accuracy_strict", "1-NN accuracy (own original excluded)"),
                   ("pairs_accuracy", "LFW pairs accuracy (10-fold)"),
                   ("judge_similarity", "judge: avg similarity (1 - distance)"),
                   ("judge_nn_accuracy", "judge: 1-NN accuracy (paper's)"),
                   ("judge_nn_accuracy_strict", "judge: 1-NN accuracy (own original excluded)"),
                   ("judge_pairs_accuracy", "judge: LFW pairs accuracy (10-fold)"))
ACCURACY_COLUMNS = 4
"""Panels per row of the rate-accuracy plot: FaceNet's four scores above, the judge's four (`facelab.judge`) below."""


CODEC_COLOURS = {"jpeg": "tab:green", "webp": "tab:red", "jpeg2000": "tab:purple", "avif": "tab:brown",
                 "heic": "goldenrod", "jxl": "black", "original": "grey"}
FACELAB_COLOURS = ("tab:blue", "tab:orange", "tab:cyan", "tab:olive", "tab:pink", "tab:gray")


def series(row: Score) -> str:
    """What a point shares its colour with: its codec family, else its facelab model when the model has several
    coders of one reconstruction (binary codes: .xz and context), else its curve (a hyperprior's rates)."""
    if row.family in CODEC_COLOURS:
        return row.family
    coder = CODERS.get(row.coder)
    several = coder is not None and len(coders_for(coder.family)) > 1
    return row.model if several and row.model else row.curve or row.method


def alternative_coder(row: Score) -> bool:
    """True for a point coded by a second coder of the same reconstruction (context beside .xz): drawn dashed."""
    coder = CODERS.get(row.coder)
    return coder is not None and coders_for(coder.family)[0] != row.coder


def colours(points: list[Score]) -> dict[str, str]:
    """A colour per codec family and per facelab series (see `series`)."""
    names = list(dict.fromkeys(series(point) for point in points if point.family not in CODEC_COLOURS))
    return {**CODEC_COLOURS, **{name: FACELAB_COLOURS[n % len(FACELAB_COLOURS)] for n, name in enumerate(names)}}


def _curves(points: list[Score]) -> dict[str, list[Score]]:
    """Points grouped by curve, each curve sorted by bpp."""
    curves: dict[str, list[Score]] = {}
    for point in points:
        curves.setdefault(point.curve, []).append(point)
    return {name: sorted(rows, key=lambda row: row.bpp.mean) for name, rows in curves.items()}


def plot(path: Path, points: list[Score], equal_rate: list[Score], original: Score | None,
         panels: tuple[tuple[str, str], ...], title: str, paper_point: bool = False,
         columns: int | None = None) -> Path | None:
    """One PNG with a panel per metric, `columns` to a row (default all in one): a line per curve (error bars: one
    standard error), equal-bpp results as large markers, originals dotted. A metric no row has (pairs on a set
    without pairs) leaves its place empty, so each row keeps its recogniser."""
    filled = [any(row.value(metric) is not None for row in points + equal_rate) for metric, _ in panels]
    if not any(filled):
        return None
    palette = colours(points)
    columns = min(columns or len(panels), len(panels))
    rows = -(-len(panels) // columns)
    # not pyplot: the caller's backend (a notebook's inline one) is left alone
    figure = Figure(figsize=(5 * columns, 4 * rows))
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, has_data in zip(axes, [*filled, *[False] * (len(axes) - len(panels))]):
        axis.set_visible(has_data)
    axes, panels = [axis for axis, has_data in zip(axes, filled) if has_data], [
        panel for panel, has_data in zip(panels, filled) if has_data]
    for axis, (metric, label) in zip(axes, panels):
        for name, rows in _curves(points).items():
            shown = [row for row in rows if row.value(metric) is not None]
            if shown:
                axis.errorbar([row.bpp.mean for row in shown], [row.value(metric) for row in shown],
                              yerr=[row.error(metric) or 0.0 for row in shown], marker="o", capsize=2,
                              linestyle="--" if alternative_coder(shown[0]) else "-", label=name,
                              color=palette[series(shown[0])])
        for row in equal_rate:
            if row.value(metric) is not None:
                axis.scatter(row.bpp.mean, row.value(metric), marker="*", s=160, zorder=3,
                             edgecolors="black", linewidths=0.5, color=palette[series(row)], label=row.method)
        if original is not None and original.value(metric) not in (None, float("inf")) and metric != "ms_ssim":
            axis.axhline(original.value(metric), color="grey", linestyle=":", label="originals")
        if paper_point and metric in PAPER_TABLE1:
            axis.scatter(PAPER_TABLE1["bpp"]["mean"], PAPER_TABLE1[metric]["mean"], marker="X", s=90, color="black",
                         zorder=3, label="paper (Table 1)")
        axis.set_xlabel("bits per pixel")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[len(panels) - 1].legend(fontsize=7, loc="lower right")
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
