"""Rate-distortion and rate-accuracy curves as PNG: facelab's operating points against each codec's qualities."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from facelab.evaluation.paper import PAPER_TABLE1

PANELS_DISTORTION = (("psnr", "PSNR (dB)"), ("ms_ssim", "MS-SSIM"))
PANELS_ACCURACY = (("cosine", "avg cosine similarity"), ("nn_accuracy", "1-NN accuracy (paper's)"),
                   ("nn_accuracy_strict", "1-NN accuracy (own original excluded)"),
                   ("pairs_accuracy", "LFW pairs accuracy (10-fold)"))


CODEC_COLOURS = {"jpeg": "tab:green", "webp": "tab:red", "jpeg2000": "tab:purple", "avif": "tab:brown",
                 "original": "grey"}
FACELAB_COLOURS = ("tab:blue", "tab:orange", "tab:cyan", "tab:olive", "tab:pink", "tab:gray")


def colours(points: list[dict]) -> dict[str, str]:
    """A colour per codec family and per facelab model (both coders of a model share it)."""
    models = list(dict.fromkeys(point["curve"].rsplit(" (", 1)[0] for point in points
                                if point["family"] not in CODEC_COLOURS))
    return {**CODEC_COLOURS, **{model: FACELAB_COLOURS[n % len(FACELAB_COLOURS)] for n, model in enumerate(models)}}


def _colour(row: dict, palette: dict[str, str]) -> str | None:
    """The colour of a point or curve: its codec family's, else its facelab model's."""
    return palette.get(row["family"]) or palette.get(row.get("curve", row["method"]).rsplit(" (", 1)[0])


def _value(row: dict, metric: str) -> float | None:
    """A row's average of `metric` (the mean of a summary, or the number itself)."""
    value = row.get(metric)
    return value["mean"] if isinstance(value, dict) else value


def _curves(points: list[dict]) -> dict[str, list[dict]]:
    """Points grouped by curve, each curve sorted by bpp."""
    curves: dict[str, list[dict]] = {}
    for point in points:
        curves.setdefault(point["curve"], []).append(point)
    return {name: sorted(rows, key=lambda row: row["bpp"]["mean"]) for name, rows in curves.items()}


def plot(path: Path, points: list[dict], equal_rate: list[dict], original: dict | None,
         panels: tuple[tuple[str, str], ...], title: str, paper_point: bool = False) -> Path | None:
    """One PNG with a panel per metric: a line per curve, equal-bpp results as large markers, originals dashed."""
    panels = tuple((metric, label) for metric, label in panels
                   if any(_value(row, metric) is not None for row in points + equal_rate))
    if not panels:
        return None
    palette = colours(points)
    figure = Figure(figsize=(5 * len(panels), 4))  # not pyplot: the caller's backend (a notebook's inline one) is left alone
    axes = figure.subplots(1, len(panels), squeeze=False)
    for axis, (metric, label) in zip(axes[0], panels):
        for name, rows in _curves(points).items():
            xy = [(row["bpp"]["mean"], _value(row, metric)) for row in rows if _value(row, metric) is not None]
            if xy:
                axis.plot(*zip(*xy), marker="o", linestyle="--" if "context" in name else "-", label=name,
                          color=_colour(rows[0], palette))
        for row in equal_rate:
            if _value(row, metric) is not None:
                axis.scatter(row["bpp"]["mean"], _value(row, metric), marker="*", s=160, zorder=3,
                             edgecolors="black", linewidths=0.5, color=_colour(row, palette), label=row["method"])
        if original is not None and _value(original, metric) not in (None, float("inf")) and metric != "ms_ssim":
            axis.axhline(_value(original, metric), color="grey", linestyle=":", label="originals")
        if paper_point and metric in PAPER_TABLE1:
            axis.scatter(PAPER_TABLE1["bpp"]["mean"], PAPER_TABLE1[metric]["mean"], marker="X", s=90, color="black",
                         zorder=3, label="paper (Table 1)")
        axis.set_xlabel("bits per pixel")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
