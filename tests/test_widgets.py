"""The course's drawing functions: each returns a figure and the numbers it plots, and the numbers are right."""

from __future__ import annotations


import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure

from facelab import codec, faces, widgets
from facelab.bitstream import unpack_header
from facelab.metrics import psnr
from facelab.weights import load_model


@pytest.fixture(scope="module")
def model():
    return load_model("untrained")


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """A 40x48 smooth RGB image with some structure: a cheap stand-in for a face."""
    y, x = np.mgrid[0:40, 0:48]
    return np.stack([x * 5, y * 6, 128 + 100 * np.sin((x + y) / 5)], axis=2).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("x", [-0.8, 0.0, 0.5])
def test_binarizer_histogram_means_are_x_and_minus_x(x: float) -> None:
    drawing = widgets.binarizer_histogram(x, samples=20000, seed=1)
    assert isinstance(drawing.figure, Figure)
    values = drawing.values
    tolerance = 4 / np.sqrt(20000)
    assert values["mean_unbiased"] == pytest.approx(x, abs=tolerance)
    assert values["mean_printed"] == pytest.approx(-x, abs=tolerance)
    assert values["p_plus_unbiased"] == pytest.approx((1 + x) / 2, abs=tolerance)
    assert values["mean_unbiased"] == pytest.approx(2 * values["p_plus_unbiased"] - 1)


def test_binarizer_histogram_is_reproducible_and_checks_its_input() -> None:
    a = widgets.binarizer_histogram(0.3, samples=50, seed=7).values
    b = widgets.binarizer_histogram(0.3, samples=50, seed=7).values
    assert a == b
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        widgets.binarizer_histogram(1.5)
    with pytest.raises(ValueError, match="samples"):
        widgets.binarizer_histogram(0.1, samples=0)


def test_quality_vs_bits_with_every_channel_is_the_codec(model, face) -> None:
    values = widgets.quality_vs_bits(face, model, kept=128, order=list(range(128))).values
    data = codec.compress(face, model)
    assert values["xz_bytes"] == len(data)
    assert values["xz_bpp"] == pytest.approx(codec.bits_per_pixel(data, 40, 48))
    assert values["psnr"] == pytest.approx(psnr(face, codec.decompress(data, model)))
    assert values["raw_bpp"] == pytest.approx(128 * 5 * 6 / (40 * 48))


def test_quality_vs_bits_file_holds_only_the_kept_channels(model, face) -> None:
    few = widgets.quality_vs_bits(face, model, kept=16).values
    many = widgets.quality_vs_bits(face, model, kept=128).values
    assert few["raw_bpp"] == pytest.approx(16 * 5 * 6 / (40 * 48))
    assert few["xz_bytes"] < many["xz_bytes"]
    with pytest.raises(ValueError, match="kept"):
        widgets.quality_vs_bits(face, model, kept=0)


def test_quality_vs_bits_file_is_a_facelab_header_plus_kept_bits(model, face, monkeypatch) -> None:
    written = {}
    real = codec.xz_compress
    monkeypatch.setattr(codec, "xz_compress", lambda data: written.setdefault("data", data) and real(data))
    widgets.quality_vs_bits(face, model, kept=10, order=list(range(128)))
    header, payload = unpack_header(written["data"])
    assert header.code_channels == 10 and (header.height, header.width) == (40, 48)
    assert len(payload) == header.code_bytes == 10 * 5 * 6 // 8 + (1 if 10 * 5 * 6 % 8 else 0)


def test_channel_order_is_a_permutation_led_by_the_most_damaging_channel(model, face) -> None:
    order = widgets.channel_order(model, face)
    assert sorted(order) == list(range(128))
    first, last = order[0], order[-1]
    code = codec.encode_code(model, face)
    reference = codec.decode_code(model, code, (40, 48)).astype(float)

    def damage(channel: int) -> float:
        dropped = code.copy()
        dropped[channel] = 0
        return float(((codec.decode_code(model, dropped, (40, 48)) - reference) ** 2).mean())

    assert damage(first) >= damage(last)


def test_loss_balance_picks_the_trained_model_of_the_sliders(face) -> None:
    from facelab.balance import BalancePoint

    names = ["face-b0", "face-a1", "face-a10", "face-a100", "face-a1000"]
    points = [BalancePoint(n, 10.0 ** max(i - 1, 0), float(i > 0), 25.0 + i, 0.9, 0.5 + i / 10, 1.8, 1.2, 8)
              for i, n in enumerate(names)]
    reconstructions = {n: np.clip(face.astype(int) + i, 0, 255).astype(np.uint8) for i, n in enumerate(names)}
    chosen = widgets.loss_balance(2, 1, points, face, reconstructions).values
    assert chosen == {"model": "face-a100", "psnr": 28.0, "cosine": 0.8, "bpp_context": 1.2}
    assert widgets.loss_balance(3, 0, points, face, reconstructions).values["model"] == "face-b0"
    with pytest.raises(ValueError, match="no measured sweep model 'face-a1000'"):
        widgets.loss_balance(3, 1, points[:2], face, reconstructions)


def test_training_curves_report_first_and_last() -> None:
    history = [{"epoch": 1, "total": 0.5, "val_psnr": 20.0}, {"epoch": 2, "total": 0.3, "val_psnr": 23.5}]
    values = widgets.training_curves(history, ["total", "val_psnr"]).values
    assert values == {"total_first": 0.5, "total_last": 0.3, "val_psnr_first": 20.0, "val_psnr_last": 23.5}


def test_compare_runs_draws_a_line_per_run_and_reports_last_values() -> None:
    runs = {"adam": [{"epoch": 1, "val_psnr": 20.0}, {"epoch": 2, "val_psnr": 14.0}],
            "adamw": [{"epoch": 1, "val_psnr": 24.0}, {"epoch": 2, "val_psnr": 27.5}]}
    drawing = widgets.compare_runs(runs, ["val_psnr"])
    assert drawing.values == {"adam": {"val_psnr": 14.0}, "adamw": {"val_psnr": 27.5}}
    assert len(drawing.figure.axes[0].lines) == 2


def test_show_without_widgets_calls_once_with_the_slider_values(capsys) -> None:
    calls = []

    def draw(x: float, label: str) -> widgets.Drawing:
        calls.append((x, label))
        return widgets.binarizer_histogram(x, samples=10)

    values = widgets.show(draw, interactive=False, x=widgets.slider(0.25, -1.0, 1.0, 0.05), label="fixed")
    assert calls == [(0.25, "fixed")]
    assert values["x"] == 0.25


def test_show_with_widgets_builds_sliders_for_slider_parameters_only() -> None:
    import ipywidgets

    panel = widgets.show(widgets.binarizer_histogram, interactive=True,
                         x=widgets.slider(0.5, -1.0, 1.0, 0.05), samples=widgets.slider(100, 10, 1000, 10), seed=3)
    controls = {c.description: c for c in panel.children if hasattr(c, "description") and c.description}
    assert isinstance(controls["x"], ipywidgets.FloatSlider) and controls["x"].value == 0.5
    assert isinstance(controls["samples"], ipywidgets.IntSlider) and controls["samples"].max == 1000
    assert "seed" not in controls
    assert panel.result is None


def test_slider_rejects_a_start_outside_its_range() -> None:
    with pytest.raises(ValueError, match="outside"):
        widgets.slider(2.0, 0.0, 1.0)


def test_crop_path_cuts_the_same_box_from_both_images(face) -> None:
    original = np.zeros((60, 80, 3), np.uint8)
    original[10:40, 20:50] = 200
    reconstruction = original.copy()
    reconstruction[10:40, 20:50] = 150
    values = widgets.crop_path(original, reconstruction, (20, 10, 50, 40)).values
    assert values["box"] == [20.0, 10.0, 50.0, 40.0] and values["crop_side"] == 160
    # the crop adds CROP_MARGIN px of 160 around the box, so the 50-level box fills (128/160)^2 of it
    inner = (1 - faces.CROP_MARGIN / faces.FACENET_SIZE) ** 2
    assert values["crop_mean_abs_diff"] == pytest.approx(50 * inner, abs=1.5)
    assert widgets.crop_path(original, original, (20, 10, 50, 40)).values["crop_mean_abs_diff"] == 0


def test_codecs_at_rate_meets_the_rate_with_real_files(face) -> None:
    from facelab import baselines

    values = widgets.codecs_at_rate(face, 1.5, ["jpeg", "webp"]).values
    assert set(values) == {"jpeg", "webp"}
    for name, row in values.items():
        assert row["bpp"] == pytest.approx(8 * row["bytes"] / (40 * 48))
        encoded = baselines.at_quality(face, name, row["quality"])
        assert row["bpp"] == pytest.approx(encoded.bpp)
        assert row["psnr"] == pytest.approx(psnr(face, baselines.decode(encoded.data, name)))


def test_paper_figure3_compares_real_files_at_equal_rate(model, face) -> None:
    values = widgets.paper_figure3(face, model, jpeg_quality=80).values
    names = list(values)
    assert names[0] == "facelab" and names[2] == "JPEG q80 (paper's)"
    data = codec.compress(face, model)
    assert values["facelab"]["bpp"] == pytest.approx(codec.bits_per_pixel(data, 40, 48))
    assert values["facelab"]["psnr"] == pytest.approx(psnr(face, codec.decompress(data, model)))
    equal = values[names[1]]
    assert names[1].startswith("JPEG q") and "equal bpp" in names[1]
    assert equal["bpp"] <= values["facelab"]["bpp"] or names[1] == "JPEG q1 (equal bpp)"


def test_hyperprior_at_rate_shows_the_chosen_model_and_codecs_at_its_size(face) -> None:
    from facelab.hyperprior import HyperpriorNet

    coded = {}
    for name in ("ladder-1", "ladder-1-pixel"):
        model = HyperpriorNet((16, 24))
        model.name = name
        model.round_to_half()
        data = codec.compress(face, model.eval())
        coded[name] = (len(data), codec.decompress(data, model))
    values = widgets.hyperprior_at_rate(1, 0, face, coded, codecs=("webp", "avif")).values
    assert list(values) == ["ladder-1-pixel", "webp", "avif"]
    size, reconstruction = coded["ladder-1-pixel"]
    assert values["ladder-1-pixel"]["bpp"] == pytest.approx(8 * size / (40 * 48))
    assert values["ladder-1-pixel"]["psnr"] == pytest.approx(psnr(face, reconstruction))
    for name in ("webp", "avif"):
        assert values[name]["bytes"] <= size or values[name]["bytes"] == min_size(face, name)
    with pytest.raises(ValueError, match="no coded face"):
        widgets.hyperprior_at_rate(3, 1, face, coded)


def min_size(image: np.ndarray, name: str) -> int:
    """The smallest file a codec makes of `image` (find_close returns it when the target is below it)."""
    from facelab import baselines

    return len(baselines.find_close(image, name, 1e-6).data)
