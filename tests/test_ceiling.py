"""facelab.ceiling: each rung's real files beside its unrounded latents, and classic curves on the same faces."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("compressai")

from facelab import codec
from facelab.ceiling import ceiling_faces, classic_curve, plot_ceiling, transform_ceiling
from facelab.data.template_faces import validation_sample
from facelab.hyperprior import BLOCK, pad_to
from facelab.image_io import to_tensor
from facelab.rate import bpp
from facelab.weights import load_model


@pytest.fixture(scope="module")
def faces(data_root):
    return validation_sample(6, data_root)


@pytest.fixture(scope="module")
def points(faces):
    return {p.model: p for p in transform_ceiling({name: load_model(name) for name in ("ladder-1", "ladder-9-pixel")},
                                                  faces)}


def test_the_files_are_real_and_the_ceiling_is_the_unrounded_decoder(faces, points) -> None:
    model = load_model("ladder-1")
    sizes = [len(codec.compress(face, model)) for face in faces]
    assert points["ladder-1"].bpp == pytest.approx(sum(bpp(size, 112, 96) for size in sizes) / len(sizes))
    with torch.no_grad():
        x = to_tensor(faces[0])
        latents = model.g_a(pad_to(x, BLOCK))
        rounded = model.g_s(torch.round(latents))[..., :112, :96]
        unrounded = model.unrounded(x)
    assert torch.equal(unrounded, model.g_s(latents)[..., :112, :96])
    assert (unrounded - x).square().mean() < (rounded - x).square().mean(), "rounding is what the rate pays for"


def test_rounding_costs_the_low_rung_dbs_and_the_top_rung_almost_nothing(points) -> None:
    # all 569 CelebA validation faces: ladder-1 1.70 dB, ladder-9-pixel 0.07 dB under its ceiling
    assert points["ladder-1"].headroom > 1.0
    assert abs(points["ladder-9-pixel"].headroom) < 0.25
    assert points["ladder-9-pixel"].ceiling > points["ladder-1"].ceiling + 5, "each rung's transforms fit its rate"


def test_a_classic_curve_climbs_with_quality_and_the_plot_reports_the_headroom(faces, points) -> None:
    curve = classic_curve(faces, "webp", (90, 5, 40))
    assert [rate for rate, _ in curve] == sorted(rate for rate, _ in curve)
    assert curve[0][1] < curve[1][1] < curve[2][1] and curve[2][1] > 35, "WebP at quality 90 is over 35 dB here"
    drawing = plot_ceiling({"pixels only": [points["ladder-9-pixel"]], "face loss": [points["ladder-1"]]},
                           {"webp": curve}, "test")
    assert drawing.values == {"pixels only": round(points["ladder-9-pixel"].headroom, 2),
                              "face loss": round(points["ladder-1"].headroom, 2)}


def test_without_celeba_the_ceiling_is_measured_on_lfw_faces(data_root, tmp_path) -> None:
    (tmp_path / "lfw").symlink_to(data_root / "lfw")
    faces, name = ceiling_faces(3, tmp_path)
    assert name.startswith("LFW") and len(faces) == 3 and all(face.shape == (112, 96, 3) for face in faces)
    faces, name = ceiling_faces(3, data_root)
    assert name == "CelebA validation faces" and [f.tobytes() for f in faces] == [
        f.tobytes() for f in validation_sample(3, data_root)]
