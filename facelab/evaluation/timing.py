"""Wall-clock time per stage of an evaluation, so a report says where the time went."""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator


class StageTimer:
    """Accumulates seconds per named stage; `with timer("mtcnn"): ...` adds the block's time to that stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.started = time.perf_counter()

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def add(self, seconds: dict[str, float]) -> None:
        """Add seconds per stage measured elsewhere (a worker process's chunk)."""
        for stage, value in seconds.items():
            self.seconds[stage] += value

    def total(self) -> float:
        """Seconds since the timer was made."""
        return time.perf_counter() - self.started

    def report(self) -> dict[str, float]:
        """Seconds per stage (largest first) and the total, rounded to 0.1 s."""
        stages = dict(sorted(self.seconds.items(), key=lambda item: -item[1]))
        return {**{name: round(value, 1) for name, value in stages.items()}, "total": round(self.total(), 1)}
