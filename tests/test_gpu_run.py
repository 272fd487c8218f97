"""The GPU run prepared before a GPU comes: stage_gpu.py's folders fit a device call, and gpu_run.py runs end to end.

The smoke run goes through the staged payload exactly as the GPU machine would (data, FaceNet in half precision,
an empty cache), on the CPU at toy sizes; the wheels are placeholders, since the packages are installed here.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

from facelab.recipes import LADDER_LAMBDAS

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
MiB = 1 << 20


def script(name: str) -> ModuleType:
    """A module of scripts/ imported by path (scripts/ is not a package)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


stage_gpu = script("stage_gpu")
gpu_run = script("gpu_run")


def run(args: list[str], env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """A script of scripts/ in a subprocess with this interpreter, output captured as text."""
    return subprocess.run([sys.executable, *args], cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)


def build_stage(root: Path, data_root: Path, *options: str) -> str:
    """`stage_gpu.py build` into `root`, with placeholder wheels (the packages are installed here); its plan."""
    wheels = root / "wheels-in"
    wheels.mkdir()
    for requirement in stage_gpu.WHEELS:
        name, version = requirement.split("==")
        (wheels / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").write_bytes(b"placeholder")
    done = run(["scripts/stage_gpu.py", "build", "--root", str(root / "stage"), "--wheels", str(wheels),
                "--data-root", str(data_root), *options])
    assert done.returncode == 0, done.stderr
    return done.stdout


PART_MIB = 17
"""The room a device call left beside the 46 MiB working tree of 2026-12-04 (`stage_gpu.part_limit`): the test packs
for that room, so that it checks the packing whatever the tree holds today; `stage_gpu.py build` measures the tree."""


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> tuple[Path, str]:
    """The stage folders cut for PART_MIB of room per call, and the printed plan."""
    root = tmp_path_factory.mktemp("gpu")
    return root / "stage", build_stage(root, data_root, "--part-mib", str(PART_MIB))


def numbered(folders: list[Path]) -> list[Path]:
    """Stage folders in call order: stage1, stage2, ..., stage10."""
    return sorted(folders, key=lambda folder: int(folder.name.removeprefix("stage")))


@pytest.fixture(scope="module")
def unpacked(staged: tuple[Path, str]) -> Path:
    """The staged parts gathered into one folder, as the device calls do, and unpacked."""
    parts = staged[0].parent / "parts"
    parts.mkdir()
    for folder in numbered(list(staged[0].glob("stage*"))):
        for path in folder.iterdir():
            shutil.copy(path, parts / path.name)
    done = run(["scripts/stage_gpu.py", "unpack", str(parts), str(staged[0].parent / "unpacked")])
    assert done.returncode == 0, done.stderr
    assert "each checked" in done.stdout
    return staged[0].parent / "unpacked"


@pytest.mark.data
def test_each_stage_folder_fits_the_room_of_one_device_call(staged: tuple[Path, str]) -> None:
    root, plan = staged
    folders = numbered(list(root.glob("stage*")))
    sizes = [stage_gpu.folder_bytes(folder) for folder in folders]
    assert all(size <= PART_MIB * MiB for size in sizes), sizes
    assert sum(sizes) > 80 * MiB  # FaceNet in fp16 (45 MiB) and CelebA's aligned faces (41 MiB) are in it
    assert all(size > (PART_MIB * MiB) - 128 * 1024 for size in sizes[:-1])  # as few calls as fit
    calls = re.findall(r"^\d+\. run\(carry=\[\"(.+?)\"\]", plan, flags=re.MULTILINE)
    assert calls == [str(folder) for folder in folders]
    assert plan.count("gpu_run.py --device cuda --stage /tmp/facelab-stage") == 1
    assert f"--minutes {stage_gpu.run_minutes(len(folders)):g} " in plan


def test_room_per_call_is_what_the_working_tree_leaves() -> None:
    assert stage_gpu.part_limit(46 * MiB) == 17 * MiB
    assert stage_gpu.part_limit(1 * MiB) == 60 * MiB  # no folder above 60 MiB
    with pytest.raises(stage_gpu.StageError, match="make the tree smaller"):
        stage_gpu.part_limit(62 * MiB)


@pytest.mark.data
def test_unpacked_payload_holds_what_gpu_run_reads(unpacked: Path, data_root: Path) -> None:
    faces = list((unpacked / "data/celeba/img_align_celeba").glob("*.jpg"))
    assert len(faces) == len(list((data_root / "celeba/img_align_celeba").glob("*.jpg")))
    assert (unpacked / "data/celeba/identity_CelebA.txt").read_bytes() == (
        data_root / "celeba/identity_CelebA.txt").read_bytes()
    assert len(list((unpacked / "wheels").glob("*.whl"))) == len(stage_gpu.WHEELS)
    assert 40 * MiB < (unpacked / stage_gpu.FACENET_FILE).stat().st_size < 50 * MiB


@pytest.mark.data
def test_a_missing_part_is_refused_in_one_line(staged: tuple[Path, str], tmp_path: Path) -> None:
    for path in (staged[0] / "stage1").iterdir():
        shutil.copy(path, tmp_path / path.name)
    done = run(["scripts/stage_gpu.py", "unpack", str(tmp_path), str(tmp_path / "out")])
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "missing" in done.stderr and "start again from call 1" in done.stderr


def table_rows(output: str, title: str) -> list[dict[str, str]]:
    """The rows of a table gpu_run.py printed, as {column: cell}."""
    lines = output.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(f"== {title}"))
    header = lines[start + 1].split()
    rows = []
    for line in lines[start + 2:]:
        cells = re.split(r"\s{2,}", line.strip())
        if line.startswith(("==", "ladder:", "gpu_run:", "epoch=", "  ", "{")) or len(cells) != len(header):
            break
        rows.append(dict(zip(header, cells)))
    return rows


@pytest.mark.data
def test_smoke_run_on_the_cpu_through_the_stage(unpacked: Path, tmp_path: Path) -> None:
    done = run(["scripts/gpu_run.py", "--device", "cpu", "--smoke", "--stage", str(unpacked), "--output",
                str(tmp_path / "out"), "--bundle", str(tmp_path / "bundle"), "--minutes", "5"],
               env={"TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"})  # one thread: 22 s beside other jobs, not 6 min
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    training = {row["family"]: row for row in table_rows(done.stdout, "training throughput")}
    assert set(training) == {"binary", "hyperprior"}
    for row in training.values():
        assert float(row["images_per_s"]) > 0 and float(row["steps_per_s"]) > 0
        assert 0 < float(row["bpp"]) < 3 and 0 < float(row["cosine"]) <= 1
    assert float(training["binary"]["psnr"]) > 25  # two small steps from face-base keep its ~28.7 dB
    assert float(training["hyperprior"]["psnr"]) > 20
    coding = table_rows(done.stdout, "cross-device decoding")
    assert {row["family"] for row in coding} == {"binary", "hyperprior", "learned-rate"}  # every coder's family
    for row in coding:
        assert (row["files"], row["failed"], row["max_diff"], row["same_files"]) == ("2", "0", "0", "1"), row
    ladder = table_rows(done.stdout, "ladder")
    assert [row["name"] for row in ladder] == ["ladder-4", "ladder-5"]
    assert all(row["device"].startswith("cpu") for row in ladder)
    from facelab.weights import load_model

    assert load_model(tmp_path / "out/ladder-5.pt").checkpoint["config"]["init"] == str(tmp_path / "out/ladder-4.pt")
    assert "20180408-102900-casia-webface" in os.listdir(unpacked / "torch/checkpoints")[0]
    with tarfile.open(tmp_path / "bundle/checkpoints-1.tar") as archive:
        assert archive.getnames() == ["ladder-4.pt", "ladder-5.pt"]
    assert (tmp_path / "bundle/report.json").is_file()


def test_a_failed_or_differing_decode_fails_the_run() -> None:
    row = gpu_run.CodingRow
    assert gpu_run.coding_failures([row("hp-1", "hyperprior", files=8, max_diff=2)], "cuda") == []
    differing = gpu_run.coding_failures([row("hp-1", "hyperprior", files=8, max_diff=3)], "cuda")
    assert len(differing) == 1 and "hp-1" in differing[0] and "3 levels" in differing[0]
    raised = gpu_run.coding_failures([row("face", "binary", files=8, failed=1), row("hp-2", "hyperprior", files=8,
                                                                                    failed=2)], "cuda")
    assert raised == ["coding: 3 decodes raised (face 1, hp-2 2)"]


def test_ladder_runs_start_from_a_rung_trained_before_them() -> None:
    runs = gpu_run.ladder_runs(None)
    assert len(runs) == 2 * len(LADDER_LAMBDAS) and runs[:2] == [("ladder-4", None), ("ladder-4-pixel", None)]
    names = [name for name, _ in runs]
    assert all(parent is None or names.index(parent) < names.index(name) for name, parent in runs)
    assert all(parent is None or parent.endswith("-pixel") == name.endswith("-pixel") for name, parent in runs)


def test_fewer_staging_calls_leave_the_run_more_minutes() -> None:
    assert stage_gpu.run_minutes(6) == pytest.approx(8.5)  # capped: the last call must end inside 600 s
    assert stage_gpu.run_minutes(14) == pytest.approx(6.0)  # 900 - 120 - 13 x 25 - 90 = 365 s
    assert stage_gpu.run_minutes(40) == pytest.approx(0.0)


def test_ladder_scale_is_the_largest_that_fits() -> None:
    runs = gpu_run.ladder_runs(None)  # 18 runs: 4 of 400 steps, 14 of 800
    assert gpu_run.choose_scale(1700, steps_per_s=10, overhead_s=5, runs=runs) == pytest.approx(1.0)  # 1,370 s
    assert gpu_run.choose_scale(1600, steps_per_s=10, overhead_s=5, runs=runs) == pytest.approx(0.5)  # 0.85 x 1,600 < 1,370
    assert gpu_run.choose_scale(3200, steps_per_s=10, overhead_s=5, runs=runs) == pytest.approx(2.0)  # 2,650 s
    assert gpu_run.choose_scale(60, steps_per_s=10, overhead_s=5, runs=runs) == pytest.approx(0.25)  # the smallest


def test_park_moves_unneeded_weights_out_and_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights, parked = tmp_path / "weights", tmp_path / "parked"
    weights.mkdir()
    for name in ("hp-long", "ladder-7", "face-b0"):
        (weights / f"{name}.pt").write_bytes(name.encode())
    monkeypatch.setattr(stage_gpu, "WEIGHTS", weights)
    monkeypatch.setattr(stage_gpu, "PARKED", parked)
    assert {path.name for path in stage_gpu.park()} == {"ladder-7.pt", "face-b0.pt"}
    assert [path.name for path in weights.iterdir()] == ["hp-long.pt"]
    (weights / "face-b0.pt").write_bytes(b"other")
    with pytest.raises(stage_gpu.StageError, match="beside its parked copy"):
        stage_gpu.unpark()
    (weights / "face-b0.pt").unlink()
    stage_gpu.unpark()
    assert {path.name for path in weights.iterdir()} == {"hp-long.pt", "ladder-7.pt", "face-b0.pt"}
    assert (weights / "ladder-7.pt").read_bytes() == b"ladder-7"
