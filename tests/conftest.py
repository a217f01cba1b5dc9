"""Shared fixtures: W&B offline and no inherited run directory, in subprocesses and in-process."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def offline_env() -> dict[str, str]:
    """Environment for subprocesses: W&B offline and silent, no inherited run directory."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env.pop("IDRS_RUN_DIR", None)
    return env


@pytest.fixture
def offline_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for code run in this process."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("IDRS_RUN_DIR", raising=False)
