"""Writing an evaluation's results folder: tables (.md, .csv), per_image.csv, plots, results.md, results.json."""

from __future__ import annotations

import time
from pathlib import Path

from facelab.evaluation import plots, report
from facelab.evaluation.originals import Originals
from facelab.evaluation.runner import MethodResult
from facelab.evaluation.selection import EvalSet
from facelab.evaluation.timing import StageTimer
from facelab.image_io import atomic_write
from facelab.rate import bpp


def per_image_table(evalset: EvalSet, originals: Originals,
                    methods: list[tuple[str, MethodResult, str, list[int]]]) -> report.Table:
    """One row per evaluated image: its file and face, then bytes, bpp, PSNR, MS-SSIM, cosine, face found and the
    judge's similarity per method.

    `methods` holds (name, result, coder, indices of the images the result covers); other cells stay empty.
    """
    header = ["path", "identity", "file_bytes", "face_detected"]
    columns = [[str(image.source or image.path) for image in evalset.images],
               [image.identity for image in evalset.images],
               originals.file_bytes.tolist(), originals.detected.tolist()]
    heights, widths = originals.heights, originals.widths
    for name, result, coder, indices in methods:
        values = {"bytes": result.sizes[coder], "bpp": bpp(result.sizes[coder], heights[indices], widths[indices]),
                  "psnr": result.psnr, "ms_ssim": result.ms_ssim, "cosine": result.cosine,
                  "face_detected": result.detected, "judge_similarity": result.judge_similarity}
        for field_name, array in values.items():
            column: list = [None] * len(evalset.images)
            for position, value in zip(indices, array.tolist()):
                column[position] = value
            header.append(f"{name}: {field_name}")
            columns.append(column)
    return header, [list(row) for row in zip(*columns)]


def write_results(folder: Path, results: dict, timer: StageTimer, per_image: report.Table) -> None:
    """Write every table (.md and .csv), per_image.csv, the plots, results.md and results.json into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "per_image.csv", report.csv_text(per_image).encode(), overwrite=True)
    lfw = results["dataset"]["name"] == "lfw"
    sections = [_heading(results)]
    view = results["dataset"].get("view")
    tables = {f"table1_{label}": (f"Table 1: {label}", report.table1(label, row, view))
              for label, row in results["table1"].items()}
    tables["table2"] = ("Table 2", report.table2(results["table2"], lfw))
    if results["equal_bpp"]:
        tables["equal_bpp"] = (f"Equal bpp (each image at its {results['equal_bpp'][0].method} bpp)",
                               report.points_table(results["equal_bpp"]))
    if results["curves"]:
        tables["curves"] = ("Rate-distortion and rate-accuracy points", report.points_table(results["curves"]))
    if results["bd_rate"]:
        tables["bd_rate"] = ("BD-rate against JPEG", report.bd_table(results["bd_rate"]))
    for name, (title, table) in tables.items():
        report.write_table(folder, name, table)
        sections.append(f"## {title}\n\n{report.markdown(table)}")
    with timer("plots"):
        made = [plots.plot(folder / "rate_distortion.png", results["curves"], results["equal_bpp"][1:], None,
                           plots.PANELS_DISTORTION, "Rate-distortion", paper_point=lfw),
                plots.plot(folder / "rate_accuracy.png", results["curves"], results["equal_bpp"][1:],
                           results["curve_original"], plots.PANELS_ACCURACY,
                           "Rate-accuracy: FaceNet (top), the judge (bottom)", columns=plots.ACCURACY_COLUMNS)]
    results["files"] = sorted([f"{name}.md" for name in tables] + [f"{name}.csv" for name in tables] +
                              [path.name for path in made if path] + ["per_image.csv", "results.md", "results.json"])
    results["timings"] = timer.report()
    sections.append(f"## Timings\n\n{report.markdown(report.timings_table(results['timings']))}")
    sections.append(report.protocol(view))
    atomic_write(folder / "results.md", "\n".join(sections).encode(), overwrite=True)
    report.write_json(folder / "results.json", results)


def _heading(results: dict) -> str:
    """results.md's opening: what was evaluated, how, and when."""
    data, settings = results["dataset"], results["settings"]
    view = ""
    if data.get("view"):
        fallback = data.get("aligned_by_fallback")
        placed = "" if fallback is None else f"; MTCNN found no face in {fallback} LFW files, aligned by the fallback"
        view = f"- LFW view: {data['view']} (see the last note below){placed}\n"
    return (f"# facelab evaluation: {data['name']}\n\n"
            f"- {data['images']} of {data['available']} images ({data['selection']}); {data['source']}\n"
            f"{view}"
            f"- {data['pairs']} View-2 pairs complete in the set; curves and equal-bpp on {data['curve_images']} "
            f"images ({data['curve_pairs']} pairs)\n"
            f"- MTCNN found no face in {data['originals_without_face']} originals (their crops use the fallback box)\n"
            f"- face scores by FaceNet and by the judge, dlib's ResNet face descriptor (columns 'judge ...'; see the "
            f"notes below)\n"
            f"- models {', '.join(settings['models'])}; {settings['threads_used']} torch threads on "
            f"{settings['device_used']} ({settings['machine']}), FaceNet in {settings['facenet_precision_used']}; "
            f"{time.strftime('%Y-%m-%d %H:%M')}\n")
