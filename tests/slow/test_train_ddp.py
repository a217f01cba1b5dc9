"""train.py under DDP on two CPU processes (gloo): one run directory, rank 0 logs, and the
certification callback gathers both ranks' shards."""

import csv
import json
import subprocess
from pathlib import Path

import pytest
import torch

from idrs_lightning.training.module import BaseClassifierModule
from tests.train_runs import train_command

pytestmark = pytest.mark.slow  # two training runs of two processes each


def _train_ddp(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """A run named "ddp" on two CPU processes (gloo), IDRS evaluation at r = 0.05."""
    ddp = ("--run_name=ddp", "--trainer.strategy=ddp", "--trainer.devices=2", "--data.r=0.05")
    command = train_command(tmp_path, *args, *ddp)
    return subprocess.run(
        command, capture_output=True, text=True, timeout=400, env=env, cwd=tmp_path
    )


def test_ddp_with_two_cpu_processes(tmp_path, offline_env) -> None:
    result = _train_ddp(tmp_path, offline_env)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "ddp"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["ddp"], "one shared run dir"
    module = BaseClassifierModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    assert module(torch.zeros(1, 1, 8, 8)).shape == (1, 10)
    with (run / "csv" / "metrics.csv").open() as file:
        rows = [row for row in csv.DictReader(file) if row["val/acc_clean"]]
    assert len(rows) == 1, "one validation row per epoch, logged by rank 0 only"
    assert 0.0 <= float(rows[0]["val/acc_clean"]) <= 1.0


def test_certification_callback_under_ddp(tmp_path, offline_env) -> None:
    config = tmp_path / "callback.yaml"
    config.write_text(
        "trainer:\n"
        "  callbacks:\n"
        "    - class_path: callbacks.certification.CertificationCallback\n"
        "      init_args: {num_examples: 11, settings: {n0: 16, n: 128, sequential: true}}\n"
    )
    result = _train_ddp(tmp_path, offline_env, f"--config={config}")
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "ddp"
    summary = json.loads((run / "certification" / "epoch_0.json").read_text())
    assert summary["count"] == 11, "both ranks' shards gathered"
    with (run / "csv" / "metrics.csv").open() as file:
        rows = [row for row in csv.DictReader(file) if row.get("certify/clean_accuracy")]
    assert len(rows) == 1, "logged once"
    assert float(rows[0]["certify/clean_accuracy"]) == pytest.approx(summary["clean_accuracy"])
