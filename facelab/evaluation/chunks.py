"""Fill the rows a cache store lacks, a chunk of images at a time, in this process or in worker processes.

Every per-image measurement of the evaluation (the originals' faces, a method's rows, a file size under a
second coder) goes through `fill_missing`, so each is cached chunk by chunk, resumable, shown with a progress
bar and, with `--workers`, measured side by side.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any, Callable

from tqdm.auto import tqdm

from facelab.evaluation.context import RunContext
from facelab.evaluation.store import ShardStore
from facelab.evaluation.timing import StageTimer
from facelab.evaluation.workers import run_jobs

CACHE_CHUNK = 256
"""Images per cached shard: at most this much work is lost when a run is interrupted."""


def timed(measure: Callable[..., Any], *args: Any) -> tuple[Any, dict[str, float]]:
    """`measure(*args, context)` with a timer of its own (args end with the context): its result and seconds per
    stage, which the caller adds to the run's timer (a worker process cannot add to it)."""
    *inputs, context = args
    own = replace(context, timer=StageTimer())
    return measure(*inputs, own), dict(own.timer.seconds)


def fill_missing(store: ShardStore, keys: list[str], job: Callable[[list[int]], tuple], description: str,
                 context: RunContext, pool: ProcessPoolExecutor | None) -> None:
    """Measure and cache, a chunk at a time, the rows of `keys` that `store` lacks; `job(chunk)` is the
    (measure, *arguments, context) of a chunk's positions, its result the chunk's columns."""
    missing = store.missing(keys)
    chunks = [missing[start:start + CACHE_CHUNK] for start in range(0, len(missing), CACHE_CHUNK)]
    with tqdm(total=len(missing), desc=description, unit="img", disable=not context.progress or not missing) as bar:
        for position, (columns, seconds) in run_jobs(timed, [job(chunk) for chunk in chunks], pool):
            context.timer.add(seconds)
            store.add([keys[i] for i in chunks[position]], columns)
            bar.update(len(chunks[position]))
