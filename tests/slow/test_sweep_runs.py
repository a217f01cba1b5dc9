"""The local sweep runner executes the agent's command: each run trains, gets a directory of its
own and logs the metric its sweep optimises."""

import csv
import sys
from pathlib import Path

import pytest

from idrs_lightning.training.sweep import load_sweep
from tests.commands import Commands

pytestmark = pytest.mark.slow  # sweep runs that train

ROOT = Path(__file__).resolve().parents[2]


def _local_runs(sweep: Path, runs: int, tmp_path: Path, commands: Commands) -> list[Path]:
    """Run directories of ``runs`` sweep runs, each a short training run, by the local runner."""
    fast = [
        f"--runs_dir={tmp_path / 'runs'}",
        "--data.dataset=digits",
        "--data.k=5",
        f"--data.root={tmp_path / 'data'}",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
    ]
    command = [
        sys.executable,
        "-m",
        "idrs_lightning.training.sweep",
        str(sweep),
        "--max-runs",
        str(runs),
    ]
    result = commands.run([*command, "--", *fast], ROOT, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    directories = sorted((tmp_path / "runs").iterdir())
    assert len(directories) == runs, "one directory per sweep run"
    return directories


def _assert_metric_logged(sweep: Path, run: Path) -> None:
    metric = load_sweep(sweep)["metric"]["name"]
    with (run / "csv" / "metrics.csv").open() as file:
        rows = [row for row in csv.DictReader(file) if row.get(metric)]
    assert rows, f"{metric} logged by the certification callback"
    assert 0.0 <= float(rows[-1][metric])
    assert list((run / "wandb").glob("offline-run-*"))


def test_local_runner_executes_the_agent_command_and_logs_the_metric(tmp_path, commands) -> None:
    sweep = ROOT / "configs" / "sweeps" / "grid_sigma_trr.yaml"
    for run in _local_runs(sweep, 2, tmp_path, commands):
        _assert_metric_logged(sweep, run)


def test_a_bayes_sweep_run_logs_the_metric_it_maximises(tmp_path, commands) -> None:
    sweep = ROOT / "configs" / "sweeps" / "bayes_acr.yaml"
    (run,) = _local_runs(sweep, 1, tmp_path, commands)
    _assert_metric_logged(sweep, run)
