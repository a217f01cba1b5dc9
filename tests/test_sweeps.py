"""Sweep files: W&B's schema, expansion, real CLI overrides, and the metric they optimise (the
local runner's real runs: tests/slow/test_sweep_runs.py)."""

import sys
from pathlib import Path

import pytest

from callbacks.certification import CertificationCallback
from idrs_lightning.training.sweep import command_line, load_sweep, parameter_sets

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))


def _combinations(path: Path) -> list[dict]:
    config = load_sweep(path)
    return parameter_sets(config, None if config["method"] == "grid" else 4)


def _parsed(line: list[str], runs_dir: Path):
    """The training CLI, parsed and instantiated but not run, for a sweep run's command."""
    from idrs_lightning.training.command import main

    assert line[:3] == [sys.executable, "train.py", "fit"]
    name = f"run{len(list(runs_dir.glob('run*')))}"  # a directory of its own for every run
    return main([*line[3:], f"--runs_dir={runs_dir}", f"--run_name={name}"], run=False)


@pytest.fixture
def in_repository(monkeypatch, offline_wandb) -> None:
    """Where a W&B agent runs a sweep's command: the files name paths in the repository."""
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))


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
def test_every_combination_is_a_real_cli_override(sweep: Path, tmp_path, in_repository) -> None:
    config = load_sweep(sweep)
    combinations = _combinations(sweep)
    assert combinations, "the sweep proposes runs"
    for parameters in combinations:
        assert set(parameters) == set(config["parameters"])
        cli = _parsed(command_line(config, parameters), tmp_path)
        for name, value in parameters.items():
            group, key = name.split(".")
            target = cli.datamodule if group == "data" else cli.model
            assert target.hparams[key] == pytest.approx(value), name


@pytest.mark.parametrize("sweep", SWEEPS, ids=[s.stem for s in SWEEPS])
def test_every_run_has_the_callback_that_logs_the_metric(
    sweep: Path, tmp_path, in_repository
) -> None:
    """certify/accuracy_at_<r> exists in every run only if r is among fixed radii: the default
    radii scale with the swept sigma_b, so the metric would be missing from most runs."""
    config = load_sweep(sweep)
    prefix, name = config["metric"]["name"].split("/")
    assert prefix == "certify", "a metric of the certification callback"
    for parameters in _combinations(sweep):
        cli = _parsed(command_line(config, parameters), tmp_path)
        found = [c for c in cli.trainer.callbacks if isinstance(c, CertificationCallback)]
        assert len(found) == 1, f"{parameters}: {cli.trainer.callbacks}"
        if name.startswith("accuracy_at_"):
            radii = found[0].radii
            assert radii is not None, f"{parameters}: radii derived from sigma_b"
            radius = float(name.removeprefix("accuracy_at_"))
            assert radius in radii, f"{parameters}: {radii}"
            assert name == f"accuracy_at_{radius:g}", "spelt as the callback names it"
