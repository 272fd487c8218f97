"""facelab.evaluation.workers: jobs run here or in worker processes, and a dead worker is one clear error."""

from __future__ import annotations

import os

import pytest
import torch

from facelab.errors import FacelabError
from facelab.evaluation.workers import run_jobs, start_workers


def die(code: int) -> None:
    """A job whose worker process ends abruptly, as the memory killer would end it."""
    os._exit(code)


CPU = torch.device("cpu")


def test_jobs_run_in_this_process_without_a_pool() -> None:
    assert start_workers(1, CPU) is None
    assert sorted(run_jobs(pow, [(2, 3), (3, 2)], None)) == [(0, 8), (1, 9)]


def test_workers_return_every_result_with_its_position() -> None:
    pool = start_workers(2, CPU)
    try:
        assert sorted(run_jobs(pow, [(2, n) for n in range(6)], pool)) == [(n, 2 ** n) for n in range(6)]
    finally:
        pool.shutdown()


def test_a_dead_worker_is_one_clear_error() -> None:
    pool = start_workers(2, CPU)
    try:
        with pytest.raises(FacelabError, match="worker process died.*fewer --workers"):
            list(run_jobs(die, [(1,), (1,)], pool))
    finally:
        pool.shutdown()


def test_workers_are_for_the_cpu_only() -> None:
    with pytest.warns(UserWarning, match="CPU only: 4 workers ignored on cuda"):
        assert start_workers(4, torch.device("cuda")) is None
