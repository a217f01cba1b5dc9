"""Shared fixtures: W&B offline and no inherited run directory, in subprocesses and in-process;
the commands of the project run from a preloaded interpreter; and the layout of the suite
(slow tests in tests/slow, and only there)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.commands import Commands
from tests.dual_models import experts, router  # noqa: F401 (fixtures: a dual model on digits)
from tests.preloaded import Preloaded

SLOW = Path(__file__).resolve().parent / "slow"


def _share_the_cores() -> None:
    """Under pytest-xdist, give each worker's torch and BLAS (and the processes the library
    starts from it) its share of the cores, one each for two workers on two cores: side by
    side, OpenMP threads that outnumber the cores wait on one another (two concurrent
    certify.py runs take about twice as long). Runs before torch is imported."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        share = str(max(1, len(os.sched_getaffinity(0)) // workers))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, share)


_share_the_cores()
#: Files that still mix slow and fast tests, owned by another change (their slow tests move to
#: tests/slow with it).
MIXED = {"test_sequential.py", "test_sequential_math.py"}
#: The files that take longest (seconds of a whole run on two cores, --durations), run first:
#: pytest-xdist hands out whole files (--dist loadfile) in collection order, so that a long
#: file collected last would run alone at the end.
LONGEST = {
    "test_paper_toys.py": 140,
    "test_paper_fmnist_control.py": 115,
    "test_dashboard_runs.py": 60,
    "test_paper_fashion.py": 51,
    "test_paper_table4_control.py": 51,
    "test_bench.py": 50,
    "test_sweep_runs.py": 47,
    "test_knn_sharded_processes.py": 38,
    "test_gpu_check.py": 35,
    "test_sequential_math.py": 30,
}


@pytest.fixture(scope="session")
def offline_env() -> dict[str, str]:
    """Environment for subprocesses: W&B offline and silent, no inherited run directory, no
    inherited W&B service (a subprocess that joined this process's service, after a test here
    logged to W&B, would leave that service writing its run files after it exits), and one
    thread for torch and BLAS (the test workers run side by side, one per core)."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("IDRS_RUN_DIR", None)
    env.pop("WANDB_SERVICE", None)
    return env


@pytest.fixture(scope="session")
def preloaded(offline_env: dict[str, str]) -> Iterator[Preloaded]:
    """A server that runs commands from an interpreter with torch, lightning, ... imported."""
    runner = Preloaded(offline_env)
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def commands(preloaded: Preloaded, offline_env: dict[str, str]) -> Commands:
    """certify.py, train.py and the other commands, each its own process, started fast."""
    return Commands(preloaded, offline_env)


@pytest.fixture
def offline_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for code run in this process."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    # set, then delete: monkeypatch then restores the variable's absence after the test, even
    # when the code under test sets it (cli.run_directory does)
    monkeypatch.setenv("IDRS_RUN_DIR", "")
    monkeypatch.delenv("IDRS_RUN_DIR")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a slow test outside tests/slow or a fast one inside it (before ``-m`` selects);
    then put the longest files first (:data:`LONGEST`), the others in their order."""
    misplaced = sorted(
        item.nodeid
        for item in items
        if item.path.name not in MIXED
        and (item.get_closest_marker("slow") is not None) != (SLOW in item.path.parents)
    )
    if misplaced:
        raise pytest.UsageError(
            "slow tests belong in tests/slow (with pytestmark = pytest.mark.slow), fast ones "
            "outside it: " + ", ".join(misplaced[:10])
        )
    items.sort(key=lambda item: -LONGEST.get(item.path.name, 0))
