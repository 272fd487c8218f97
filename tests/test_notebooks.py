"""The course: every notebook runs headless in smoke mode, and the values it records are right.

The structural checks (clean committed notebooks, a literal-only `parameters` cell first, badges,
the guarded install) are fast; executing the notebooks is marked `notebooks`.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Callable

import nbformat
import pytest

from facelab import course

NOTEBOOKS = course.find_notebooks()
LESSONS = ["00", "01", "02", "03", "04", "05", "06"]


def by_number(number: str) -> Path:
    return next(p for p in NOTEBOOKS if p.stem.startswith(number))


def test_every_lesson_is_there_and_numbered() -> None:
    assert [p.stem[:2] for p in NOTEBOOKS] == LESSONS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(path: Path) -> None:
    assert course.is_clean(path), f"{path.name} has outputs: run python -m facelab.course --strip"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_parameters_badges_and_guarded_install(path: Path) -> None:
    cells = nbformat.read(path, as_version=4).cells
    first, title, install = cells[:3]
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


def test_report_lists_every_notebook_with_its_time_and_values(tmp_path: Path) -> None:
    runs = [course.Run("01_binarizer", 12.3, True, {"samples": 400, "mean": 0.49871, "curve": [1.0, 2.5]}),
            course.Run("02_architecture_and_codec", 4.0, False, {}, "CellExecutionError: boom")]
    text = course.write_report(runs, tmp_path, smoke=True).read_text()
    assert "| 01_binarizer | 12.3 | ok |" in text and "| 02_architecture_and_codec | 4.0 | FAILED |" in text
    assert "| `mean` | 0.4987 |" in text and "| `curve` | [1, 2.5] |" in text and "boom" in text
    assert (tmp_path / "results.json").is_file()


@pytest.fixture(scope="session")
def executed(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Callable[[str], dict[str, Any]]:
    """Execute a lesson once per session in smoke mode; return the values it glued."""
    output = tmp_path_factory.mktemp("executed")
    runs_dir = tmp_path_factory.mktemp("runs")
    cache: dict[str, dict[str, Any]] = {}

    def run(number: str) -> dict[str, Any]:
        if number not in cache:
            path = by_number(number)
            parameters = {"SMOKE": True, "INTERACTIVE": False, "DATA_ROOT": str(data_root)}
            if "RUN_DIR" in nbformat.read(path, as_version=4).cells[0].source:
                parameters["RUN_DIR"] = str(runs_dir / number)
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
    assert values["paper_table1"]["bpp"]["Average"] == 0.761
    assert 0.05 < values["bpp"] < 2.2
    assert values["psnr"] > 20


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
    assert 0.0 <= values["saturated_share"] <= 1.0


@pytest.mark.notebooks
def test_02_architecture_and_codec(executed) -> None:
    values = executed("02")
    assert values["code_shape"] == [128, 32, 32]
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
