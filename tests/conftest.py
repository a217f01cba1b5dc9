"""Shared fixtures: W&B offline and no inherited run directory, in subprocesses and in-process."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def offline_env() -> dict[str, str]:
    """Environment for subprocesses: W&B offline and silent, no inherited run directory, and
    no inherited W&B service: a subprocess that joined this process's service (after a test
    here logged to W&B) would leave that service writing its run files after it exits."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env.pop("IDRS_RUN_DIR", None)
    env.pop("WANDB_SERVICE", None)
    return env


@pytest.fixture
def offline_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for code run in this process."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    # set, then delete: monkeypatch then restores the variable's absence after the test, even
    # when the code under test sets it (cli.run_directory does)
    monkeypatch.setenv("IDRS_RUN_DIR", "")
    monkeypatch.delenv("IDRS_RUN_DIR")
