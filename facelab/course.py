"""Runs the course: executes the numbered notebooks with papermill and writes a results report.

    python -m facelab.course --output executed --results results   # every lesson at its defaults
    python -m facelab.course --full                                  # the evaluation lessons on all of LFW
    python -m facelab.course --smoke --only 02                       # one lesson, shrunk to seconds
    python -m facelab.course --strip                                 # clean the committed notebooks

Each executed copy goes to the output folder; `results/REPORT.md` lists per notebook its wall time,
the sizes it ran at and the values it recorded with scrapbook (`sb.glue`), and `results/results.json`
the same as data.
A lesson that writes files (its `OUTPUT` parameter) writes them to `results/<lesson>/`, and training
runs (`RUN_DIR`) go to `runs/` beside the results folder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = "python3"
DEFAULT_TIMEOUT = 1800
TIMEOUTS = {"05": 4 * 3600, "06": 2 * 3600, "07": 2 * 3600}
"""Per-cell limits in seconds at default sizes: the evaluation lessons code thousands of LFW faces per method."""
SMOKE_TIMEOUT = 900
PER_CORE = {"WORKERS": os.cpu_count() or 1}
"""Every run but a smoke one measures the evaluation lessons' images with a worker process per core (a lesson opened
by hand keeps its default of one): on two cores lesson 05 took 235 s instead of 392 s."""
FULL = {"LIMIT": None, "CURVE_IMAGES": None}
"""`--full`: the evaluation lessons on all 13,233 LFW images and every curve on all of them (hours on a CPU)."""
HOUSEKEEPING = ("DATA_ROOT", "OUTPUT", "RUN_DIR", "INTERACTIVE")
"""Parameters that say where files go, not how big a lesson runs: left out of the report's sizes."""
VOLATILE_METADATA = ("execution", "papermill", "collapsed", "scrolled", "jupyter")


@dataclass
class Run:
    """The outcome of executing one notebook."""

    notebook: str
    seconds: float
    ok: bool
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    sizes: dict[str, str] = field(default_factory=dict)


def find_notebooks(folder: Path = NOTEBOOK_DIR, only: list[str] | None = None) -> list[Path]:
    """The lessons `NN_name.ipynb` in order; `only` keeps those whose number or name is listed."""
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = set(only)
        paths = [p for p in paths if p.stem[:2] in wanted or p.stem in wanted or p.name in wanted]
        if not paths:
            raise SystemExit(f"no notebook in {folder} matches {', '.join(only)}")
    return paths


def timeout_for(path: Path, smoke: bool) -> int:
    """The per-cell time limit for a notebook: short in smoke mode, the lesson's budget otherwise."""
    return SMOKE_TIMEOUT if smoke else TIMEOUTS.get(path.stem[:2], DEFAULT_TIMEOUT)


def read_values(path: Path) -> dict[str, Any]:
    """The values an executed notebook recorded with `scrapbook.glue`."""
    import scrapbook

    return {name: scrap.data for name, scrap in scrapbook.read_notebook(str(path)).scraps.items()}


def effective_sizes(declared: dict[str, dict], parameters: dict[str, Any]) -> dict[str, str]:
    """What a lesson ran at: each declared parameter's value as passed, else its default as written."""
    return {name: repr(parameters[name]) if name in parameters else str(info["default"])
            for name, info in declared.items() if name not in HOUSEKEEPING}


def execute(path: Path, output_dir: Path, parameters: dict[str, Any], timeout: int, progress: bool = False) -> Run:
    """Execute one notebook with papermill into `output_dir` (in the notebook's folder); never raises.

    Only the parameters the notebook declares are passed (INTERACTIVE, RUN_DIR... are per lesson);
    `progress` shows a bar over the notebook's cells.
    """
    import papermill

    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / path.name
    declared = papermill.inspect_notebook(str(path))
    parameters = {k: v for k, v in parameters.items() if k in declared}
    start = time.perf_counter()
    error = None
    try:
        papermill.execute_notebook(
            str(path), str(target), parameters=parameters, kernel_name=KERNEL,
            execution_timeout=timeout, cwd=str(path.parent), progress_bar=progress,
        )
    except Exception as exc:  # a failed lesson is reported and the others still run
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    seconds = time.perf_counter() - start
    values = read_values(target) if target.is_file() else {}
    return Run(path.stem, round(seconds, 1), error is None, values, error, effective_sizes(declared, parameters))


def format_value(value: Any) -> str:
    """A glued value for the report: numbers to 4 significant digits, the rest as compact JSON."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return json.dumps(value, default=str)


def write_report(runs: list[Run], results_dir: Path, smoke: bool) -> Path:
    """results/REPORT.md (per notebook: wall time, status, glued values) and results/results.json."""
    results_dir.mkdir(parents=True, exist_ok=True)
    mode = "smoke (SMOKE=True)" if smoke else "default parameters"
    lines = [
        "# facelab course report", "",
        f"Executed with papermill, kernel `{KERNEL}`, {mode}, on {time.strftime('%Y-%m-%d %H:%M')}.", "",
        "| notebook | wall time (s) | status |", "|---|---:|---|",
    ]
    lines += [f"| {r.notebook} | {r.seconds:.1f} | {'ok' if r.ok else 'FAILED'} |" for r in runs]
    lines.append(f"| total | {sum(r.seconds for r in runs):.1f} | |")
    for run in runs:
        lines += ["", f"## {run.notebook}", ""]
        if run.sizes:
            lines += ["Ran at: " + ", ".join(f"`{name} = {value}`" for name, value in run.sizes.items()), ""]
        if run.error:
            lines += [f"**Failed:** `{run.error}`", ""]
        if run.values:
            lines += ["| value | |", "|---|---|"]
            lines += [f"| `{k}` | {format_value(v).replace('|', '/')} |" for k, v in run.values.items()]
        else:
            lines.append("(no recorded values)")
    report = results_dir / "REPORT.md"
    report.write_text("\n".join(lines) + "\n")
    (results_dir / "results.json").write_text(json.dumps([asdict(r) for r in runs], indent=1, default=str))
    return report


def clean(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook without outputs, execution counts, papermill/execution metadata or widget state."""
    for key in ("papermill", "widgets"):
        notebook.metadata.pop(key, None)
    for cell in notebook.cells:
        for key in VOLATILE_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return notebook


def strip(path: Path) -> bool:
    """Strip a committed notebook in place; True when it changed."""
    text = path.read_text()
    cleaned = nbformat.writes(clean(nbformat.reads(text, as_version=4))) + "\n"
    if cleaned != text:
        path.write_text(cleaned)
        return True
    return False


def is_clean(path: Path) -> bool:
    """True when a notebook is in its committed form (what `strip` would leave unchanged)."""
    text = path.read_text()
    return nbformat.writes(clean(nbformat.reads(text, as_version=4))) + "\n" == text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m facelab.course", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("executed"), help="folder for the executed notebooks")
    parser.add_argument("--results", type=Path, default=Path("results"), help="folder for REPORT.md and results.json")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOK_DIR, help="folder of the lessons")
    parser.add_argument("--only", nargs="+", default=None, metavar="NN", help="run only these lessons (e.g. 02 03)")
    parser.add_argument("--smoke", action="store_true", help="SMOKE=True: every lesson shrunk to run in about a minute")
    parser.add_argument("--full", action="store_true",
                        help="the evaluation lessons on all of LFW (LIMIT = CURVE_IMAGES = None, a worker process per core): "
                             "hours on a CPU")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar over each notebook's cells")
    parser.add_argument("--data-root", default=None, help="data root passed as DATA_ROOT (default: $FACELAB_DATA)")
    parser.add_argument("--strip", action="store_true", help="strip outputs from the committed notebooks in place")
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed notebook has outputs")
    return parser


def run_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """What every lesson of this run is given: headless sliders, training runs beside the results, its sizes."""
    parameters: dict[str, Any] = {"INTERACTIVE": False, "RUN_DIR": str(args.results.resolve().parent / "runs")}
    parameters.update({"SMOKE": True} if args.smoke else PER_CORE)
    if args.full:
        parameters.update(FULL)
    if args.data_root:
        parameters["DATA_ROOT"] = str(Path(args.data_root).resolve())
    return parameters


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    paths = find_notebooks(args.notebooks, args.only)
    if args.strip:
        for path in paths:
            print(f"{'stripped' if strip(path) else 'clean   '} {path}")
        return 0
    if args.check:
        dirty = [p for p in paths if not is_clean(p)]
        for path in dirty:
            print(f"{path} has outputs or execution metadata: run python -m facelab.course --strip")
        return 1 if dirty else 0
    results = args.results.resolve()
    parameters = run_parameters(args)
    output = args.output.resolve()
    runs = []
    for path in paths:
        print(f"{path.name} ...", flush=True)
        lesson = {**parameters, "OUTPUT": str(results / path.stem)}
        run = execute(path, output, lesson, timeout_for(path, args.smoke), progress=not args.no_progress)
        print(f"{path.name}: {'ok' if run.ok else 'FAILED'} in {run.seconds:.1f} s" + (f" ({run.error})" if run.error else ""), flush=True)
        runs.append(run)
    report = write_report(runs, args.results, args.smoke)
    print(f"wrote {report} and {len(runs)} executed notebooks in {output}")
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

