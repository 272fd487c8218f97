"""The evaluation's curve plots: which points share a colour, which are dashed, and the PNG they make."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from facelab.evaluation import plots
from facelab.evaluation.rows import Score, Summary


def point(method: str, family: str, coder: str, bpp: float, psnr: float, model: str | None = None,
          curve: str | None = None) -> Score:
    """A curve point with just the numbers a plot reads."""
    one = Summary(bpp, bpp, bpp, 0.01)
    return Score(method, family, coder, 10, 100, 1e-4, one, one, one, Summary(psnr, psnr, psnr, 0.1),
                 Summary(0.9, 0.9, 0.9, 0.01), None, 0.8, 0.01, 0, 0.9, 0.8, 10, 0.9, 0.02, 0.01, 5,
                 model=model, curve=curve or method)


@pytest.fixture
def points() -> list[Score]:
    return [
        point("hp-0", "facelab", "hyperprior", 0.24, 27.5, "hp-0", "hyperprior + face loss"),
        point("hp-1", "facelab", "hyperprior", 0.46, 32.0, "hp-1", "hyperprior + face loss"),
        point("hp-0-pixel", "facelab", "hyperprior", 0.13, 24.8, "hp-0-pixel", "hyperprior, pixels only"),
        point("face @0.5 (xz)", "facelab", "xz", 0.78, 25.0, "face", "face (xz)"),
        point("face @0.5 (context)", "facelab", "context", 0.62, 25.0, "face", "face (context)"),
        point("webp q5", "webp", "webp", 0.36, 28.0, curve="webp"),
        point("webp q40", "webp", "webp", 0.66, 32.0, curve="webp"),
    ]


def test_a_hyperprior_curve_is_one_colour_and_a_binary_model_one_across_its_coders(points):
    palette = plots.colours(points)
    colour = {row.method: palette[plots.series(row)] for row in points}
    assert colour["hp-0"] == colour["hp-1"] != colour["hp-0-pixel"]
    assert colour["face @0.5 (xz)"] == colour["face @0.5 (context)"] not in (colour["hp-0"], colour["hp-0-pixel"])
    assert colour["webp q5"] == colour["webp q40"] == plots.CODEC_COLOURS["webp"]
    assert [plots.alternative_coder(row) for row in points] == [False, False, False, False, True, False, False]


def test_plot_writes_a_png_with_a_panel_per_metric(points, tmp_path):
    path = plots.plot(tmp_path / "rd.png", points, [], None, plots.PANELS_DISTORTION, "rate-distortion")
    with Image.open(path) as image:
        width, height = image.size
    assert width == pytest.approx(2 * 5 * 110, abs=2) and height == pytest.approx(4 * 110, abs=2)
    assert np.asarray(Image.open(path).convert("L")).std() > 10, "something is drawn"
    assert plots.plot(tmp_path / "none.png", points, [], None, (("quality", "quality"),), "t") is None, \
        "a metric no point has draws no panel"
    assert not (tmp_path / "none.png").exists()


def test_a_metric_without_data_keeps_its_place_so_each_row_keeps_its_recogniser(points, tmp_path):
    """On a set without pairs the judge's panels stay on the second row, under FaceNet's, not shifted into the first."""
    without_pairs = [replace(row, pairs_accuracy=None, pairs_se=None, judge_similarity=0.7) for row in points]
    path = plots.plot(tmp_path / "ra.png", without_pairs, [], None, plots.PANELS_ACCURACY, "t",
                      columns=plots.ACCURACY_COLUMNS)
    with Image.open(path) as image:
        width, height = image.size
    assert width == pytest.approx(4 * 5 * 110, abs=2) and height == pytest.approx(2 * 4 * 110, abs=2)
