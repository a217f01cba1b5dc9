"""train.py end to end: configs, real runs (offline W&B, CSV, checkpoints), resume, DDP, errors."""

import csv
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from callbacks.certification import CertificationCallback
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.training.module import BaseClassifierModule

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
FAST = [
    "--data.dataset=digits",
    "--data.k=5",
    "--data.batch_size=128",
    "--model.network=mlp",
    "--trainer.max_epochs=1",
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
]


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


@pytest.mark.slow  # a real training or statistics run
def test_run_writes_logs_checkpoints_and_resumes(tmp_path, offline_env) -> None:
    first = _train(tmp_path, offline_env, "--run_name=first", "--data.r=0.05", "--data.trr=0.02")
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp_path / "runs" / "first"
    assert (run / "config.yaml").exists()
    assert list((run / "wandb").glob("offline-run-*")), "an offline W&B run for `wandb sync`"
    metrics = (run / "csv" / "metrics.csv").read_text()
    assert "val/acc_clean" in metrics and "val/acc_noisy" in metrics
    hparams = (run / "csv" / "hparams.yaml").read_text()
    assert "m_resolved" in hparams and "trr: 0.02" in hparams
    last = run / "checkpoints" / "last.ckpt"
    assert last.exists()
    module = BaseClassifierModule.load_from_checkpoint(last, weights_only=True)
    assert module(torch.zeros(2, 1, 8, 8)).shape == (2, 10)

    # A checkpoint of run "first" continues run "first", never inside another run's directory.
    elsewhere = _train(
        tmp_path, offline_env, "--run_name=resumed", "--trainer.max_epochs=2", f"--ckpt_path={last}"
    )
    assert elsewhere.returncode == 2, elsewhere.stderr[-3000:]
    assert "error: --run_name is 'resumed'" in elsewhere.stderr
    assert "a resume continues its own run" in elsewhere.stderr
    assert not (tmp_path / "runs" / "resumed").exists()

    # The same name again is another run's directory: refused, and nothing of it changes.
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    again = _train(tmp_path, offline_env, "--run_name=first")
    assert again.returncode == 2 and "Traceback" not in again.stderr, again.stderr[-3000:]
    assert "error: --run_name" in again.stderr and "holds another run" in again.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    # ... unless the run resumes it explicitly, with its own settings (its config.yaml: r and
    # trr are not given again).
    continued = _train(
        tmp_path, offline_env, "--run_name=first", "--trainer.max_epochs=2", f"--ckpt_path={last}"
    )
    assert continued.returncode == 0, continued.stderr[-3000:]
    state = torch.load(last, weights_only=True)
    assert state["epoch"] == 1, "resumed after the first epoch and ran the second"
    assert state["datamodule_hyper_parameters"]["trr"] == 0.02


@pytest.mark.slow  # a real training or statistics run
def test_parallel_runs_get_their_own_directories(tmp_path, offline_env) -> None:
    runs = [_train(tmp_path, offline_env, "--trainer.limit_train_batches=1") for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr[-2000:]
    directories = list((tmp_path / "runs").iterdir())
    assert len(directories) == 2
    assert all((d / "config.yaml").exists() for d in directories)


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


def _train_ddp(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """A run named "ddp" on two CPU processes (gloo), IDRS evaluation at r = 0.05."""
    ddp = ("--run_name=ddp", "--trainer.strategy=ddp", "--trainer.devices=2", "--data.r=0.05")
    return _train(tmp_path, env, *args, *ddp, timeout=400)


@pytest.mark.slow
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


@pytest.mark.slow
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


def _epoch(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["epoch"])


@pytest.mark.slow  # a real training or statistics run
def test_last_checkpoint_is_the_final_epoch_when_validation_stops_improving(
    tmp_path, offline_env
) -> None:
    # a learning rate this small leaves validation accuracy where it started: with a monitor,
    # Lightning's own save_last would leave epoch 0 in last.ckpt
    frozen = ("--model.lr=1e-12", "--trainer.max_epochs=3", "--trainer.limit_train_batches=2")
    result = _train(tmp_path, offline_env, "--run_name=flat", *frozen)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "runs" / "flat" / "checkpoints"
    with (tmp_path / "runs" / "flat" / "csv" / "metrics.csv").open() as file:
        accuracies = [float(r["val/acc_noisy"]) for r in csv.DictReader(file) if r["val/acc_noisy"]]
    assert len(accuracies) == 3 and max(accuracies[1:]) <= accuracies[0], "no improvement"
    assert _epoch(folder / "last.ckpt") == 2, "last.ckpt is the final state"
    (best,) = folder.glob("best-*.ckpt")
    assert _epoch(best) == 0 and best.name.startswith("best-epoch0-")

    resumed = _train(
        tmp_path,
        offline_env,
        *frozen[:1],
        "--trainer.max_epochs=4",
        "--trainer.limit_train_batches=2",
        f"--ckpt_path={folder / 'last.ckpt'}",
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = torch.load(folder / "last.ckpt", weights_only=True)
    assert state["epoch"] == 3 and state["global_step"] == 8, "continued after epoch 2"


@pytest.mark.slow  # a real training or statistics run
def test_without_a_validation_split_only_the_last_state_is_kept(tmp_path, offline_env) -> None:
    result = _train(tmp_path, offline_env, "--run_name=noval", "--data.val_fraction=0")
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "runs" / "noval" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]
    metrics = tmp_path / "runs" / "noval" / "csv" / "metrics.csv"
    assert not metrics.exists() or "val/acc_noisy" not in metrics.read_text(), "no validation"


@pytest.mark.slow  # a real training or statistics run
def test_last_checkpoint_is_the_final_epoch_when_it_has_no_validation(
    tmp_path, offline_env
) -> None:
    """Validation every second epoch, three epochs: the third has none, and last.ckpt must
    still hold it (Lightning saves at validation end by default)."""
    sparse = ("--trainer.check_val_every_n_epoch=2", "--trainer.max_epochs=3")
    result = _train(tmp_path, offline_env, "--run_name=sparse", *sparse)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _epoch(tmp_path / "runs" / "sparse" / "checkpoints" / "last.ckpt") == 2


@pytest.mark.slow  # a real training or statistics run
def test_resuming_under_another_split_is_refused(tmp_path, offline_env) -> None:
    """A checkpoint from before validation splits (no val_fraction recorded: 0) resumed with
    the default split would train on other data: refused, nothing created; resumed with its
    own split, it goes on."""
    first = _train(tmp_path, offline_env, "--run_name=first")
    assert first.returncode == 0, first.stderr[-3000:]
    state = torch.load(tmp_path / "runs" / "first" / "checkpoints" / "last.ckpt", weights_only=True)
    del state["datamodule_hyper_parameters"]["val_fraction"]  # as written before the split
    old = tmp_path / "old.ckpt"
    torch.save(state, old)
    refused = _train(tmp_path, offline_env, "--run_name=again", f"--ckpt_path={old}")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert "--data.val_fraction=0.0" in refused.stderr
    assert not (tmp_path / "runs" / "again").exists()
    resumed = _train(
        tmp_path,
        offline_env,
        "--run_name=again",
        f"--ckpt_path={old}",
        "--data.val_fraction=0",
        "--trainer.max_epochs=2",
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]


HISTORY = ("--trainer.limit_train_batches=3", "--trainer.log_every_n_steps=1")


def _metrics(run: Path) -> list[dict[str, str]]:
    with (run / "csv" / "metrics.csv").open() as file:
        return list(csv.DictReader(file))


def _files(run: Path) -> dict[Path, bytes]:
    """A run directory's files (but its lock, which names whoever held it last)."""
    return {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}


def _validation_epochs(run: Path) -> list[int]:
    return [int(row["epoch"]) for row in _metrics(run) if row.get("val/acc_noisy")]


@pytest.mark.slow
def test_a_resume_keeps_the_history_applies_the_optimiser_and_refuses_other_data(
    tmp_path, offline_env
) -> None:
    first = _train(tmp_path, offline_env, "--run_name=h", "--trainer.max_epochs=2", *HISTORY)
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp_path / "runs" / "h"
    last = run / "checkpoints" / "last.ckpt"
    metrics = run / "csv" / "metrics.csv"
    history = metrics.read_text()
    config = (run / "config.yaml").read_text()
    # rows of an epoch cut short by an interruption: that epoch is trained again
    header = history.splitlines()[0].split(",")
    cut = {column: "" for column in header} | {"epoch": "2", "step": "7", "train/loss": "9.9"}
    metrics.write_text(history + ",".join(cut[column] for column in header) + "\n")
    before = _files(run)

    for refused_option, recorded in (("--data.sigma_b=0.5", "0.25"), ("--data.trr=0.1", "0.0")):
        refused = _train(
            tmp_path, offline_env, "--trainer.max_epochs=3", *HISTORY, refused_option,
            f"--ckpt_path={last}",
        )  # fmt: skip
        option = refused_option.split("=")[0]
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
        assert f"error: {option} is " in refused.stderr and f"{option}={recorded}" in refused.stderr
        assert _files(run) == before

    resumed = _train(
        tmp_path, offline_env, "--trainer.max_epochs=3", *HISTORY, "--model.lr=0.01",
        f"--ckpt_path={last}",
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed with lr = 0.01 (the checkpoint was trained with lr = 0.05)" in resumed.stderr
    state = torch.load(last, weights_only=True)
    assert state["epoch"] == 2 and state["hyper_parameters"]["lr"] == 0.01
    assert state["optimizer_states"][0]["param_groups"][0]["lr"] == 0.01, "applied, not dropped"
    assert state["lr_schedulers"][0]["base_lrs"] == [0.01]
    kept = metrics.read_text()
    assert kept.startswith(history), "the history before the resume is kept byte for byte"
    assert "9.9" not in kept, "the rows of the interrupted epoch are replaced"
    copy = (run / "csv" / "metrics.1.csv").read_text()
    assert copy.startswith(history) and "9.9" in copy, "kept in a copy of the file as it was"
    assert _validation_epochs(run) == [0, 1, 2]
    assert (run / "config.1.yaml").read_text() == config, "the first start's config is kept"
    assert "lr: 0.01" in (run / "config.yaml").read_text()


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume_and_a_second_writer_is_refused(tmp_path, offline_env) -> None:
    command = [sys.executable, str(ROOT / "train.py"), "fit", f"--runs_dir={tmp_path / 'runs'}"]
    endless = [*FAST, f"--data.root={tmp_path / 'data'}", *HISTORY, "--trainer.max_epochs=100000"]
    first = subprocess.Popen(
        [*command, *endless, "--run_name=long"],
        stderr=subprocess.PIPE,
        text=True,
        env=offline_env,
        cwd=tmp_path,
    )
    last = tmp_path / "runs" / "long" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    second = _train(tmp_path, offline_env, *HISTORY, f"--ckpt_path={last}")
    assert first.poll() is None, "the first run was still training"
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"is being written by process {first.pid}" in second.stderr
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode != 0
    assert f"resume with python train.py fit --ckpt_path {last}" in stderr, stderr[-2000:]
    epoch = torch.load(last, weights_only=True)["epoch"]
    resumed = _train(
        tmp_path, offline_env, *HISTORY, f"--trainer.max_epochs={epoch + 3}", f"--ckpt_path={last}"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _validation_epochs(tmp_path / "runs" / "long") == list(range(epoch + 3))
