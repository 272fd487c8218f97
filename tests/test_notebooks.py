"""The course: every notebook runs headless in smoke mode, and the values it records are right.

The structural checks (clean committed notebooks, the title then a literal-only `parameters` cell, badges,
the guarded install) are fast; executing the notebooks is marked `notebooks`.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any, Callable

import nbformat
import numpy as np
import papermill
import pytest

from facelab import course
from facelab.weights import DEFAULT_MODEL, SHIPPED

NOTEBOOKS = course.find_notebooks()
LESSONS = ["00", "01", "02", "03", "04", "05", "06", "07"]


def by_number(number: str) -> Path:
    return next(p for p in NOTEBOOKS if p.stem.startswith(number))


def test_every_lesson_is_there_and_numbered() -> None:
    assert [p.stem[:2] for p in NOTEBOOKS] == LESSONS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(path: Path) -> None:
    assert course.is_clean(path), f"{path.name} has outputs: run python -m facelab.course --strip"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_title_parameters_and_guarded_install(path: Path) -> None:
    cells = nbformat.read(path, as_version=4).cells
    title, first, install = cells[:3]
    assert first.cell_type == "code" and "parameters" in first.metadata.get("tags", [])
    names = []
    for node in ast.parse(first.source).body:
        assert isinstance(node, ast.Assign), f"{path.name}: parameters cell holds only assignments"
        ast.literal_eval(node.value)
        names += [target.id for target in node.targets]
    assert {"SMOKE", "DATA_ROOT", "DEVICE"} <= set(names)
    assert title.cell_type == "markdown" and title.source.startswith(f"# {path.stem[:2]} ")
    assert f"colab.research.google.com/github/facelab-course/facelab/blob/main/notebooks/{path.name}" in title.source
    assert "mybinder.org" in title.source
    assert install.cell_type == "code" and 'if "google.colab" in sys.modules:' in install.source


def test_strip_removes_outputs_and_execution_metadata(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    notebook.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    notebook.cells[0].execution_count = 1
    notebook.cells[0].metadata["papermill"] = {"duration": 0.1}
    notebook.metadata["papermill"] = {"parameters": {}}
    path = tmp_path / "00_x.ipynb"
    nbformat.write(notebook, path)
    assert not course.is_clean(path)
    assert course.strip(path) is True
    assert course.is_clean(path) and course.strip(path) is False
    cell = nbformat.read(path, as_version=4).cells[0]
    assert cell.outputs == [] and cell.execution_count is None and "papermill" not in cell.metadata


def test_report_lists_every_notebook_with_its_time_sizes_and_values(tmp_path: Path) -> None:
    declared = papermill.inspect_notebook(str(by_number("06")))
    sizes = course.effective_sizes(declared, {"LIMIT": None, "OUTPUT": "x"})
    assert sizes["LIMIT"] == "None" and sizes["CURVE_IMAGES"] == declared["CURVE_IMAGES"]["default"]
    assert "OUTPUT" not in sizes and "DATA_ROOT" not in sizes
    runs = [course.Run("01_binarizer", 12.3, True, {"samples": 400, "mean": 0.49871, "curve": [1.0, 2.5]},
                       sizes={"SAMPLES": "4000"}),
            course.Run("02_architecture_and_codec", 4.0, False, {}, "CellExecutionError: boom")]
    text = course.write_report(runs, tmp_path, smoke=True).read_text()
    assert "| 01_binarizer | 12.3 | ok |" in text and "| 02_architecture_and_codec | 4.0 | FAILED |" in text
    assert "| `mean` | 0.4987 |" in text and "| `curve` | [1, 2.5] |" in text and "boom" in text
    assert "Ran at: `SAMPLES = 4000`" in text
    assert (tmp_path / "results.json").is_file()


def test_full_reaches_every_evaluation_lesson_and_defaults_stay_subsets() -> None:
    for number in ("05", "06", "07"):
        declared = papermill.inspect_notebook(str(by_number(number)))
        assert "LIMIT" in declared and declared["LIMIT"]["default"] != "None", f"{number} must default to a subset"
        assert declared["WORKERS"]["default"] == "1", f"{number}: one process when opened by hand"
    assert set(course.FULL) | set(course.PER_CORE) <= set(papermill.inspect_notebook(str(by_number("06"))))
    parser = course.build_parser()
    assert parser.parse_args(["--full"]).full
    cores = os.cpu_count() or 1
    assert course.run_parameters(parser.parse_args([]))["WORKERS"] == cores
    assert course.run_parameters(parser.parse_args(["--full"]))["WORKERS"] == cores
    smoke = course.run_parameters(parser.parse_args(["--smoke"]))
    assert smoke["SMOKE"] is True and "WORKERS" not in smoke and "LIMIT" not in smoke


def test_only_selects_lessons_by_number_or_name() -> None:
    assert [p.stem for p in course.find_notebooks(only=["02", "05_lfw_evaluation"])] == [
        "02_architecture_and_codec", "05_lfw_evaluation"]
    with pytest.raises(SystemExit, match="99"):
        course.find_notebooks(only=["99"])
    assert course.timeout_for(by_number("05"), smoke=True) == course.SMOKE_TIMEOUT
    assert course.timeout_for(by_number("05"), smoke=False) > course.timeout_for(by_number("01"), smoke=False)


def test_check_exits_1_on_a_notebook_with_outputs(tmp_path: Path, capsys) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    notebook.cells[0].execution_count = 3
    nbformat.write(notebook, tmp_path / "00_x.ipynb")
    assert course.main(["--notebooks", str(tmp_path), "--check"]) == 1
    assert course.main(["--notebooks", str(tmp_path), "--strip"]) == 0
    assert course.main(["--notebooks", str(tmp_path), "--check"]) == 0


@pytest.fixture(scope="session")
def executed(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Callable[[str], dict[str, Any]]:
    """Execute a lesson once per session in smoke mode, writing only under tmp; return the values it glued."""
    output = tmp_path_factory.mktemp("executed")
    work = tmp_path_factory.mktemp("work")
    cache: dict[str, dict[str, Any]] = {}

    def run(number: str) -> dict[str, Any]:
        if number not in cache:
            path = by_number(number)
            parameters = {"SMOKE": True, "INTERACTIVE": False, "DATA_ROOT": str(data_root),
                          "RUN_DIR": str(work / number / "runs"), "OUTPUT": str(work / number / "results")}
            result = course.execute(path, output, parameters, course.SMOKE_TIMEOUT)
            assert result.ok, f"{path.name} failed in smoke mode: {result.error}"
            cache[number] = result.values
        return cache[number]

    return run


@pytest.mark.notebooks
def test_00_overview(executed) -> None:
    values = executed("00")
    assert values["device"] in ("cpu", "cuda")
    assert values["lfw_images"] == 13233 and values["lfw_pairs"] == 6000
    assert 0.05 < values["bpp"] < 2.2
    assert values["psnr"] > 20
    assert values["model"] == DEFAULT_MODEL and values["shipped"] == list(SHIPPED)


@pytest.mark.notebooks
def test_01_binarizer(executed) -> None:
    values = executed("01")
    noise = 5 / values["samples"] ** 0.5
    assert values["max_err_unbiased"] < noise
    assert values["max_err_printed_vs_minus_x"] < noise
    assert values["max_err_printed_vs_x"] > 1.5
    slider = values["slider_values"]
    assert slider["mean_unbiased"] == pytest.approx(slider["x"], abs=noise)
    assert slider["mean_printed"] == pytest.approx(-slider["x"], abs=noise)
    assert values["ste_gradient"] == [1.0, 1.0, 1.0, 1.0]
    assert values["ste_fit_unbiased"] == pytest.approx(0.6, abs=0.1)
    assert abs(values["ste_fit_printed"] - 0.6) > 0.5
    assert values["model"] == DEFAULT_MODEL
    assert values["saturated_share"] > values["saturated_share_untrained"] + 0.1, "training must push tanh to +-1"


@pytest.mark.notebooks
def test_02_architecture_and_codec(executed) -> None:
    values = executed("02")
    assert values["padded_input"] == [3, 256, 256] and values["output_shape"] == [3, 250, 250]
    assert values["layer_shapes"] == {
        "encoder.layers.0.0": [32, 64, 64], "encoder.layers.0.1": [32, 64, 64], "encoder.layers.0.2": [32, 64, 64],
        "encoder.layers.1.0": [64, 32, 32], "encoder.layers.1.1": [64, 32, 32], "encoder.layers.1.2": [64, 32, 32],
        "binarizer.conv": [128, 32, 32], "binarizer": [128, 32, 32],
        "decoder.layers.0.0": [32, 128, 128], "decoder.layers.0.1": [32, 128, 128],
        "decoder.layers.0.2": [32, 128, 128], "decoder.layers.1": [3, 256, 256], "decoder.layers.2": [3, 256, 256]}
    assert values["code_shape"] == [128, 32, 32]
    assert values["parameters"] == 285_571
    assert values["raw_bpp"] == pytest.approx(128 * 32 * 32 / 250**2)
    assert values["magic"] == "FLAB"
    assert values["bpp"] == pytest.approx(8 * values["xz_bytes"] / 250**2)
    assert 0.05 < values["bpp"] < values["raw_bpp"]
    assert values["round_trip_exact"] is True
    assert values["psnr"] > 20
    curve = values["kept_curve"]
    assert [c["kept"] for c in curve] == sorted(c["kept"] for c in curve)
    assert curve[-1]["kept"] == 128 and curve[-1]["psnr"] == pytest.approx(values["psnr"])
    assert curve[0]["xz_bpp"] < curve[-1]["xz_bpp"]


@pytest.mark.notebooks
def test_03_pretraining_natural(executed) -> None:
    values = executed("03")
    short_run = values["short_run"]
    assert all(np.isfinite(v) for v in short_run.values())
    assert 0 < short_run["total_last"] < 2 and short_run["val_psnr_last"] > 5
    kodak = values["kodak"]
    shipped = kodak["shipped natural"]
    assert 0.05 < shipped["bpp"] < 2.2
    assert shipped["psnr"] > 22 and shipped["psnr"] > kodak["untrained"]["psnr"] + 5
    assert values["face_psnr"]["shipped natural"] > values["face_psnr"]["untrained"]


@pytest.mark.notebooks
def test_04_face_finetuning(executed) -> None:
    values = executed("04")
    curve = values["base_curve"]
    assert curve["last"] > curve["first"] + 1, "face-base's validation PSNR rises over its run"
    assert abs(curve["second_half_gain"]) < 1, "and flattens in its second half"
    path = values["crop_path"]
    x1, y1, x2, y2 = path["box"]
    assert path["crop_side"] == 160 and x1 < 96 and y1 < 112 and x2 > 0 and y2 > 0 and x2 - x1 > 40
    assert 0.5 < values["crop_cosine"] <= 1, "the face model's reconstruction must stay recognisable"
    losses = values["measured_losses"]
    assert all(0 < pixel < 0.05 and 0 <= feature <= 4 for pixel, feature in losses.values())
    assert losses["face"][1] < losses["face-pixel"][1], "the face loss must lower the feature distance"
    sweep, live = values["sweep"], values["sweep_live"]
    assert set(sweep) == {"face-b0", "face-a1", "face-a10", "face-a100", "face-a1000"} == set(live)
    assert sweep["face-a1"]["cosine"] > sweep["face-b0"]["cosine"], "the face loss must raise the cosine"
    assert sweep["face-a1000"]["psnr"] > sweep["face-a1"]["psnr"], "a larger pixel weight must raise PSNR"
    chosen = values["balance_at_a_b"]
    assert chosen["model"] == "face-a100" and chosen["psnr"] == sweep["face-a100"]["psnr"]
    assert all(np.isfinite(v) for v in values["short_run"].values())
    scales = values["gradient_scales"]
    assert scales["pixel"] < scales["weight decay"] < scales["feature"], "the decay must outweigh the pixel gradient"
    runs = values["phase2_runs"]
    assert runs["face-pixel"]["val_psnr"] < runs["face-pixel-adamw"]["val_psnr"] - 1
    assert runs["face-adamw"]["val_feature"] < runs["face"]["val_feature"] + 0.05
    lfw = values["lfw_comparison"]
    face, pixel_only = lfw["face (a = b = 1)"], lfw["face-pixel (b = 0)"]
    assert 0.05 < face["bpp"] < 2.0 and face["psnr"] > 18
    assert face["cosine"] > pixel_only["cosine"]
    assert face["judge"] > pixel_only["judge"] + 0.05, "the wrecked b = 0 model must lose the judge too"


@pytest.mark.notebooks
def test_05_lfw_evaluation(executed) -> None:
    values = executed("05")
    example = values["example_file"]
    assert 0.3 < example["bpp"] < 2.2 and example["bpp"] == pytest.approx(8 * example["bytes"] / 250**2)
    assert values["images"] > 0 and values["pairs"] > 0
    table1 = values["table1"]
    assert 0.05 < table1["bpp"]["mean"] < 2.2 and table1["bpp"]["min"] <= table1["bpp"]["mean"] <= table1["bpp"]["max"]
    assert table1["psnr"]["mean"] > 20 and 0 < table1["ms_ssim"]["mean"] <= 1
    assert table1["ratio_raw"]["mean"] == pytest.approx(24 / table1["bpp"]["mean"], rel=0.2)
    assert values["paper_table1"]["bpp"]["mean"] == 0.761
    table2 = values["table2"]
    assert {"face-a100", "face", "face-pixel", "face-b0", "jpeg q70", "jpeg q80", "jpeg q90"} <= set(table2)
    assert table2["jpeg q70"]["bpp"]["mean"] < table2["jpeg q80"]["bpp"]["mean"] < table2["jpeg q90"]["bpp"]["mean"]
    assert table2["face-a100"]["bpp"]["mean"] == pytest.approx(table1["bpp"]["mean"])
    assert table2["face"]["cosine"] > table2["face-pixel"]["cosine"]
    assert table2["face-a100"]["cosine"] > table2["face-b0"]["cosine"], "the face loss must raise the cosine"
    assert table2["face-a100"]["cosine"] > 0.8 and table2["face-pixel"]["cosine"] < 0.5, "the paper's Adam wrecks b = 0"
    for name in ("face-a100", "jpeg q80"):
        row = table2[name]
        assert row["nn_accuracy"] >= row["nn_accuracy_strict"], "leaving the own original out can only lower 1-NN"
        assert row["nn_accuracy"] > 0.9, f"{name}: the paper's 1-NN finds a faithful copy's own original"
    assert table2["jpeg q90"]["cosine"] > table2["face-a100"]["cosine"], "JPEG q90 is nearly lossless"
    for person, figure in values["figure3"].items():
        names = list(figure)
        assert figure[names[1]]["bpp"] <= figure["facelab"]["bpp"] or names[1].startswith("JPEG q1 ")
        assert figure["facelab"]["psnr"] > 20


@pytest.mark.notebooks
def test_06_beyond_the_paper(executed) -> None:
    values = executed("06")
    for name, row in values["codecs_at_rate"].items():
        assert row["bpp"] == pytest.approx(8 * row["bytes"] / (112 * 96)) and row["psnr"] > 15
    equal = values["equal_bpp"]
    reference = next(row for name, row in equal.items() if "@" not in name)
    for name, row in equal.items():
        if "@" in name:
            assert row["bpp"] <= reference["bpp"] * 1.05, f"{name} is not at facelab's rate"
    assert values["curve_points"] and all(0 < p["bpp"] < 8 for p in values["curve_points"])
    assert values["context_saving_one_face"] > 0
    example = values["context_example"]
    assert example["first_cost"] == pytest.approx(1.0, abs=1e-9), "the first bit is coded with nothing known: p = 1/2"
    assert abs(example["trace_bytes"] - example["payload_bytes"]) < 8, "the costs must add up to the payload"
    assert example["payload_bytes"] < 0.8 * example["lzma_bytes"]
    assert example["cost_last_channels"] < 0.8 * example["cost_first_channels"]
    assert values["context_saving"] and all(0 < s < 1 for s in values["context_saving"].values())
    assert values["pairs"] > 0
    protocol = values["pairs_protocol"]
    assert protocol["jpeg q90"]["pairs_accuracy"] > 0.75, "FaceNet must verify pairs of nearly lossless faces"
    for row in protocol.values():
        assert (row["pairs_accuracy"] is None) == (row["pairs_std"] is None)


@pytest.mark.notebooks
def test_07_modern_codec(executed) -> None:
    values = executed("07")
    assert 0 < values["shipped_mb"] < 16 * 3, "16 models of about 2.6 MB (half precision)"
    one = values["one_face"]
    for name, row in one.items():
        assert row["bpp"] == pytest.approx(8 * row["bytes"] / (112 * 96))
        assert row["estimate"] < row["bpp"] < row["estimate"] + 0.2, f"{name}: file far from the model's estimate"
    for rung in range(1, 8):  # on this face: 0.095 ... 1.253 bpp, 24.7 ... 37.2 dB
        assert one[f"ladder-{rung}"]["bytes"] < one[f"ladder-{rung + 1}"]["bytes"], "a higher rung must write more"
        assert one[f"ladder-{rung}"]["psnr"] < one[f"ladder-{rung + 1}"]["psnr"], "a higher rung must look better"
    at_rate = values["hyperprior_at_rate"]
    chosen = next(name for name in at_rate if name.startswith("ladder-"))
    assert set(at_rate) == {chosen, "jpeg", "webp", "avif", "heic", "jxl"}
    assert at_rate["webp"]["bytes"] <= at_rate[chosen]["bytes"], "WebP's smallest file is far below any rate here"
    curves = {point["curve"] for point in values["curve_points"]}
    assert {"hyperprior + face loss", "hyperprior, pixels only", "jpeg", "webp", "jpeg2000", "avif"} <= curves
    bd = values["bd_rate"]
    assert set(bd["hyperprior + face loss"]) == {"jpeg", "webp", "jpeg2000", "avif"}
    assert set(values["face_loss_bd_rate"]) == {"PSNR", "MS-SSIM dB", "cosine", "judge similarity"}
    ceiling = values["ceiling"]
    assert set(ceiling) == {f"ladder-{rung}{twin}" for rung in range(1, 10) for twin in ("", "-pixel")}
    # all 569 CelebA validation faces: rungs 1-4 1.1-2.2 dB under their ceilings, rungs 8-9 0.04-0.12 dB
    assert ceiling["ladder-2"]["ceiling"] - ceiling["ladder-2"]["psnr"] > 0.8, "rounding costs the low rungs dBs"
    for name in ("ladder-9", "ladder-9-pixel"):
        assert abs(ceiling[name]["ceiling"] - ceiling[name]["psnr"]) < 0.3, f"{name} decodes at its ceiling"
    assert ceiling["ladder-9-pixel"]["ceiling"] > ceiling["ladder-1-pixel"]["ceiling"] + 5
    webp = values["ceiling_classic"]["webp"]
    assert webp[-1][1] > ceiling["ladder-9-pixel"]["ceiling"], "WebP's best file beats the top rung's ceiling"
    equal = values["equal_bpp"]
    reference = next(row for name, row in equal.items() if name.startswith("ladder-"))
    for name, row in equal.items():
        if "@" in name:
            # JPEG's, AVIF's and HEIC's smallest 112x96 files (about 0.62, 0.31 and 0.33 bpp) are above ladder-2's rate
            # (0.20-0.21 bpp); JPEG XL's (about 0.2 bpp) on some faces
            limit = 0.25 if name.startswith("jxl") else reference["bpp"] * 1.05
            assert row["bpp"] <= limit or name.startswith(("jpeg", "avif", "heic")), f"{name} over the rate"
