"""Fill the rows cache stores lack, a chunk of images at a time, in this process or in worker processes.

Every per-image measurement of the evaluation (the originals' faces, a method's rows, a file size under a
second coder) goes through `fill_missing`, so each is cached chunk by chunk, resumable, shown with a progress
bar and, with `--workers`, measured side by side. One measurement can fill several stores at once (a method's
FaceNet rows and its judge rows, from one reconstruction): an image is measured for the stores that lack it only,
so a cache from before a store existed keeps its other rows and gains the new ones.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from typing import Any, Callable

from tqdm.auto import tqdm

from facelab.evaluation.context import RunContext
from facelab.evaluation.store import ShardStore
from facelab.evaluation.timing import StageTimer
from facelab.evaluation.workers import WorkerPool, pool_size, run_jobs

CACHE_CHUNK = 256
"""Images per cached shard: at most this much work is lost when a run is interrupted."""

ROWS = "rows"
"""The part name of a store filled alone (`fill_missing`)."""


def split(positions: list[int], workers: int) -> list[list[int]]:
    """`positions` in chunks of at most CACHE_CHUNK, as even as can be and as many as a multiple of `workers`: no
    worker idles while another measures a set's last chunk alone (lesson 06's 250 curve faces made one 256-image
    chunk, so of two workers one measured every method and the other waited)."""
    count = -(-len(positions) // CACHE_CHUNK)
    count = min(len(positions), -(-count // workers) * workers)
    bounds = [len(positions) * i // count for i in range(count + 1)] if count else [0]
    return [positions[start:end] for start, end in pairwise(bounds)]


def timed(measure: Callable[..., Any], *args: Any) -> tuple[Any, dict[str, float]]:
    """`measure(*args, context)` with a timer of its own (args end with the context): its result and seconds per
    stage, which the caller adds to the run's timer (a worker process cannot add to it)."""
    *inputs, context = args
    own = replace(context, timer=StageTimer())
    return measure(*inputs, own), dict(own.timer.seconds)


def single_part(measure: Callable[..., dict], *args: Any) -> dict[str, dict]:
    """`measure(*args)`'s columns as the one part of a store filled alone."""
    return {ROWS: measure(*args)}


def fill_missing(store: ShardStore, keys: list[str], job: Callable[[list[int]], tuple], description: str,
                 context: RunContext, pool: WorkerPool | None) -> None:
    """Measure and cache, a chunk at a time, the rows of `keys` that `store` lacks; `job(chunk)` is the
    (measure, *arguments, context) of a chunk's positions, its result the chunk's columns."""
    fill_parts({ROWS: store}, keys, lambda chunk, parts: (single_part, *job(chunk)), description, context, pool)


def fill_parts(stores: dict[str, ShardStore], keys: list[str], job: Callable[[list[int], tuple[str, ...]], tuple],
               description: str, context: RunContext, pool: WorkerPool | None) -> None:
    """Measure and cache the rows of `keys` that any of `stores` (by part name) lacks, a chunk at a time, each chunk
    holding images that lack the same parts; `job(chunk, parts)` is the (measure, *arguments, context) of a chunk's
    positions and the parts to measure, its result the columns of each part."""
    lacking = {part: set(store.missing(keys)) for part, store in stores.items()}
    groups: dict[tuple[str, ...], list[int]] = {}
    for position in sorted(set().union(*lacking.values())):
        groups.setdefault(tuple(part for part in stores if position in lacking[part]), []).append(position)
    work = [(parts, chunk) for parts, positions in groups.items() for chunk in split(positions, pool_size(pool))]
    total = sum(len(chunk) for _, chunk in work)
    with tqdm(total=total, desc=description, unit="img", disable=not context.progress or not total) as bar:
        for position, (columns, seconds) in run_jobs(timed, [job(chunk, parts) for parts, chunk in work], pool):
            context.timer.add(seconds)
            parts, chunk = work[position]
            for part in parts:
                stores[part].add([keys[i] for i in chunk], columns[part])
            bar.update(len(chunk))
