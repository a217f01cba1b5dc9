"""train.py end to end: configs, real runs (offline W&B, CSV, checkpoints), resume, DDP, errors."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from callbacks.certification import CertificationCallback
from idrs_lightning.settings import CertificationSettings
from tests.train_runs import FAST

ROOT = Path(__file__).resolve().parents[1]
#: train.py's configs (dual_*.yaml configure the router's training: tests/test_dual_router.py).
CONFIGS = sorted(c for c in (ROOT / "configs").glob("*.yaml") if not c.name.startswith("dual_"))


def _train(
    tmp_path: Path, env: dict[str, str], *args: str, timeout: int = 240
) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "train.py"), "fit", f"--runs_dir={tmp_path / 'runs'}"]
    return subprocess.run(
        [*command, *FAST, f"--data.root={tmp_path / 'data'}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tmp_path,
    )


@pytest.fixture
def train_main(monkeypatch, offline_wandb) -> Callable:
    """The training command's main, in-process, with W&B offline and no inherited run directory."""
    monkeypatch.syspath_prepend(str(ROOT))
    from idrs_lightning.training.command import main

    return main


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_parses_and_instantiates(config: Path, tmp_path, train_main) -> None:
    cli = train_main(["--config", str(config), f"--runs_dir={tmp_path}", "--run_name=x"], run=False)
    values = yaml.safe_load(config.read_text())
    for key, value in values.get("data", {}).items():
        assert cli.datamodule.hparams[key] == value, f"data.{key}"
    for key, value in values.get("model", {}).items():
        found = cli.model.hparams[key]
        if isinstance(value, dict):  # a class_path network: its init_args hold the defaults too
            assert found["class_path"] == value["class_path"]
            assert value["init_args"].items() <= found["init_args"].items(), f"model.{key}"
        else:
            assert found == value, f"model.{key}"
    for key in ("max_epochs", "log_every_n_steps", "limit_val_batches"):
        if key in values.get("trainer", {}):
            assert getattr(cli.trainer, key) == values["trainer"][key], f"trainer.{key}"


def test_certification_config_instantiates_the_callback(tmp_path, train_main) -> None:
    config = ROOT / "configs" / "with_certification.yaml"
    (entry,) = yaml.safe_load(config.read_text())["trainer"]["callbacks"]
    assert entry["class_path"] == "callbacks.certification.CertificationCallback"
    cli = train_main(["--config", str(config), f"--runs_dir={tmp_path}", "--run_name=x"], run=False)
    found = [c for c in cli.trainer.callbacks if isinstance(c, CertificationCallback)]
    assert len(found) == 1, cli.trainer.callbacks
    (callback,) = found
    arguments = dict(entry["init_args"])
    settings = CertificationSettings(**arguments.pop("settings"))
    assert callback.certification.settings == settings
    assert callback.certification.radii == arguments["radii"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert callback.compare_constant is arguments["compare_constant"] is True
    # every argument reached the instance: it equals one built from the YAML's init_args ...
    built = CertificationCallback(settings, **arguments)
    assert callback.options() == built.options()
    # ... and the YAML is not a no-op
    assert callback.options() != CertificationCallback().options()
    # the run directory's checkpoint callback is still added next to the configured one
    assert any(isinstance(c, ModelCheckpoint) for c in cli.trainer.callbacks)


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("--data.r=-0.5", "r must be a non-negative number"),
        ("--data.sigma_b=0", "sigma_b must be a positive number"),
        ("--model.lr=0", "lr must be a number in (0.0, inf), got 0"),
        ("--data.trr=-0.01", "trr must be a non-negative number, got -0.01"),
        ("--data.dataset=imagenet", "dataset must be one of"),
        ("--model.lr=fast", "model.lr"),
    ],
)
def test_bad_values_fail_before_training(
    tmp_path, train_main, capsys, argument: str, message: str
) -> None:
    with pytest.raises((ValueError, SystemExit)) as error:
        train_main([*FAST, f"--runs_dir={tmp_path}", argument], run=False)
    assert message in str(error.value) + capsys.readouterr().err
    assert not list(tmp_path.glob("*/checkpoints"))
