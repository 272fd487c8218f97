"""Worker processes that measure chunks of images side by side, one torch thread each (`facelab evaluate --workers`).

Much of an evaluation is work on one image at a time (a codec's encoder and decoder, the range coder, MTCNN's
per-image steps) that a second torch thread barely speeds up and a second process does. Workers are forked where
the system can (Linux), so they start with the parent's FaceNet and MTCNN already loaded; each chunk's rows go
back to the parent, which alone writes the cache.
"""

from __future__ import annotations

import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterator

import torch

from facelab.errors import FacelabError


def _one_thread() -> None:
    """Each worker computes with one torch thread: the processes, not the threads, share the cores."""
    torch.set_num_threads(1)


class WorkerPool(ProcessPoolExecutor):
    """A pool of worker processes that knows its size, so the work can be cut into as many chunks as it has workers."""

    def __init__(self, size: int, **options: Any) -> None:
        super().__init__(size, **options)
        self.size = size


def pool_size(pool: WorkerPool | None) -> int:
    """How many chunks are measured side by side: the pool's workers, or one in this process."""
    return 1 if pool is None else pool.size


def start_workers(count: int, device: torch.device) -> WorkerPool | None:
    """A pool of `count` worker processes; None for one, or off the CPU (everything is measured in this process:
    a forked process cannot use its parent's CUDA, and there the accelerator does the batched work)."""
    if count <= 1:
        return None
    if device.type != "cpu":
        warnings.warn(f"worker processes measure on the CPU only: {count} workers ignored on {device.type}",
                      stacklevel=2)
        return None
    start = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return WorkerPool(count, mp_context=multiprocessing.get_context(start), initializer=_one_thread)


def run_jobs(function: Callable[..., Any], jobs: list[tuple], pool: WorkerPool | None
             ) -> Iterator[tuple[int, Any]]:
    """(position, function(*job)) for every job, computed here or by the pool's workers, as each one finishes.

    A worker that dies (the system's memory killer, most often) ends the run with one clear error; the chunks
    already returned are cached, so a rerun continues from them.
    """
    if pool is None:
        for position, job in enumerate(jobs):
            yield position, function(*job)
        return
    futures = {pool.submit(function, *job): position for position, job in enumerate(jobs)}
    try:
        for future in as_completed(futures):
            yield futures[future], future.result()
    except BrokenProcessPool:
        raise FacelabError("a worker process died (out of memory?); rerun with fewer --workers: the chunks already "
                           "measured are cached") from None
    finally:
        for future in futures:
            future.cancel()
