"""Sweep files: W&B's schema, expansion, real CLI overrides, and the metric they optimise."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from idrs_lightning.sweep import command_line, load_sweep, parameter_sets

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))


def _combinations(path: Path) -> list[dict]:
    config = load_sweep(path)
    return parameter_sets(config, None if config["method"] == "grid" else 4)


def test_grid_expands_to_the_papers_figure_18_grid() -> None:
    runs = _combinations(ROOT / "configs" / "sweeps" / "grid_sigma_trr.yaml")
    assert len(runs) == 12
    assert {(run["data.sigma_b"], run["data.trr"]) for run in runs} == {
        (s, t) for s in (0.12, 0.25, 0.5) for t in (0.0, 0.01, 0.04, 0.1)
    }


def test_invalid_sweep_is_rejected(tmp_path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("method: sideways\nparameters: {data.r: {values: [0.01]}}\n")
    with pytest.raises(ValueError, match="is not a valid sweep"):
        load_sweep(broken)


@pytest.mark.parametrize("sweep", SWEEPS, ids=[s.stem for s in SWEEPS])
def test_every_combination_is_a_real_cli_override(sweep: Path, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(ROOT)  # sweep commands name configs relative to the repository
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("IDRS_RUN_DIR", raising=False)
    monkeypatch.syspath_prepend(str(ROOT))
    from train import main

    config = load_sweep(sweep)
    for parameters in _combinations(sweep):
        line = command_line(config, parameters)
        assert line[1:3] == ["train.py", "fit"]
        cli = main([*line[3:], f"--runs_dir={tmp_path}", "--run_name=x"], run=False)
        for name, value in parameters.items():
            group, key = name.split(".")
            target = cli.datamodule if group == "data" else cli.model
            assert target.hparams[key] == pytest.approx(value), name


def test_local_runner_executes_the_agent_command_and_logs_the_metric(tmp_path) -> None:
    sweep = ROOT / "configs" / "sweeps" / "grid_sigma_trr.yaml"
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
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env.pop("IDRS_RUN_DIR", None)
    result = subprocess.run(
        [sys.executable, "-m", "idrs_lightning.sweep", str(sweep), "--max-runs", "2", "--", *fast],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2, "one directory per sweep run"
    metric = load_sweep(sweep)["metric"]["name"]
    for run in runs:
        with (run / "csv" / "metrics.csv").open() as file:
            rows = [row for row in csv.DictReader(file) if row.get(metric)]
        assert rows, f"{metric} logged by the certification callback"
        assert list((run / "wandb").glob("offline-run-*"))


def test_bayes_metric_is_logged_with_the_fixed_radii() -> None:
    # certify/accuracy_at_0.5 exists because configs/with_certification.yaml fixes the radii.
    config = load_sweep(ROOT / "configs" / "sweeps" / "bayes_certified_accuracy.yaml")
    radii_config = (ROOT / "configs" / "with_certification.yaml").read_text()
    assert config["metric"]["name"] == "certify/accuracy_at_0.5"
    assert "radii: [0.0, 0.25, 0.5, 0.75, 1.0]" in radii_config
