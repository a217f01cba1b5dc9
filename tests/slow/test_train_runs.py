"""train.py end to end in real runs: logs (offline W&B, CSV), checkpoints, parallel runs, and
what a resume continues, keeps and refuses."""

import csv
import subprocess
from pathlib import Path

import pytest
import torch

from idrs_lightning.training.module import BaseClassifierModule
from tests.commands import Commands
from tests.train_runs import HISTORY, epoch, files, train_command, validation_epochs

pytestmark = pytest.mark.slow  # training runs


def _train(
    commands: Commands, tmp_path: Path, *args: str, timeout: int = 240
) -> subprocess.CompletedProcess:
    return commands.run(train_command(tmp_path, *args), tmp_path, timeout=timeout)


def test_run_writes_logs_checkpoints_and_resumes(tmp_path, commands) -> None:
    first = _train(commands, tmp_path, "--run_name=first", "--data.r=0.05", "--data.trr=0.02")
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
        commands, tmp_path, "--run_name=resumed", "--trainer.max_epochs=2", f"--ckpt_path={last}"
    )
    assert elsewhere.returncode == 2, elsewhere.stderr[-3000:]
    assert "error: --run_name is 'resumed'" in elsewhere.stderr
    assert "a resume continues its own run" in elsewhere.stderr
    assert not (tmp_path / "runs" / "resumed").exists()

    # The same name again is another run's directory: refused, and nothing of it changes.
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    again = _train(commands, tmp_path, "--run_name=first")
    assert again.returncode == 2 and "Traceback" not in again.stderr, again.stderr[-3000:]
    assert "error: --run_name" in again.stderr and "holds another run" in again.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    # ... unless the run resumes it explicitly, with its own settings (its config.yaml: r and
    # trr are not given again).
    continued = _train(
        commands, tmp_path, "--run_name=first", "--trainer.max_epochs=2", f"--ckpt_path={last}"
    )
    assert continued.returncode == 0, continued.stderr[-3000:]
    state = torch.load(last, weights_only=True)
    assert state["epoch"] == 1, "resumed after the first epoch and ran the second"
    assert state["datamodule_hyper_parameters"]["trr"] == 0.02


def test_parallel_runs_get_their_own_directories(tmp_path, commands) -> None:
    runs = [_train(commands, tmp_path, "--trainer.limit_train_batches=1") for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr[-2000:]
    directories = list((tmp_path / "runs").iterdir())
    assert len(directories) == 2
    assert all((d / "config.yaml").exists() for d in directories)


def test_last_checkpoint_is_the_final_epoch_when_validation_stops_improving(
    tmp_path, commands
) -> None:
    # a learning rate this small leaves validation accuracy where it started: with a monitor,
    # Lightning's own save_last would leave epoch 0 in last.ckpt
    frozen = ("--model.lr=1e-12", "--trainer.max_epochs=3", "--trainer.limit_train_batches=2")
    result = _train(commands, tmp_path, "--run_name=flat", *frozen)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "runs" / "flat" / "checkpoints"
    with (tmp_path / "runs" / "flat" / "csv" / "metrics.csv").open() as file:
        accuracies = [float(r["val/acc_noisy"]) for r in csv.DictReader(file) if r["val/acc_noisy"]]
    assert len(accuracies) == 3 and max(accuracies[1:]) <= accuracies[0], "no improvement"
    assert epoch(folder / "last.ckpt") == 2, "last.ckpt is the final state"
    (best,) = folder.glob("best-*.ckpt")
    assert epoch(best) == 0 and best.name.startswith("best-epoch0-")

    resumed = _train(
        commands,
        tmp_path,
        *frozen[:1],
        "--trainer.max_epochs=4",
        "--trainer.limit_train_batches=2",
        f"--ckpt_path={folder / 'last.ckpt'}",
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = torch.load(folder / "last.ckpt", weights_only=True)
    assert state["epoch"] == 3 and state["global_step"] == 8, "continued after epoch 2"


def test_without_a_validation_split_only_the_last_state_is_kept(tmp_path, commands) -> None:
    result = _train(commands, tmp_path, "--run_name=noval", "--data.val_fraction=0")
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "runs" / "noval" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]
    metrics = tmp_path / "runs" / "noval" / "csv" / "metrics.csv"
    assert not metrics.exists() or "val/acc_noisy" not in metrics.read_text(), "no validation"


def test_last_checkpoint_is_the_final_epoch_when_it_has_no_validation(tmp_path, commands) -> None:
    """Validation every second epoch, three epochs: the third has none, and last.ckpt must
    still hold it (Lightning saves at validation end by default)."""
    sparse = ("--trainer.check_val_every_n_epoch=2", "--trainer.max_epochs=3")
    result = _train(commands, tmp_path, "--run_name=sparse", *sparse)
    assert result.returncode == 0, result.stderr[-3000:]
    assert epoch(tmp_path / "runs" / "sparse" / "checkpoints" / "last.ckpt") == 2


def test_resuming_under_another_split_is_refused(tmp_path, commands) -> None:
    """A checkpoint from before validation splits (no val_fraction recorded: 0) resumed with
    the default split would train on other data: refused, nothing created; resumed with its
    own split, it goes on."""
    first = _train(commands, tmp_path, "--run_name=first")
    assert first.returncode == 0, first.stderr[-3000:]
    state = torch.load(tmp_path / "runs" / "first" / "checkpoints" / "last.ckpt", weights_only=True)
    del state["datamodule_hyper_parameters"]["val_fraction"]  # as written before the split
    old = tmp_path / "old.ckpt"
    torch.save(state, old)
    refused = _train(commands, tmp_path, "--run_name=again", f"--ckpt_path={old}")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert "--data.val_fraction=0.0" in refused.stderr
    assert not (tmp_path / "runs" / "again").exists()
    resumed = _train(
        commands,
        tmp_path,
        "--run_name=again",
        f"--ckpt_path={old}",
        "--data.val_fraction=0",
        "--trainer.max_epochs=2",
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]


def test_a_resume_keeps_the_history_applies_the_optimiser_and_refuses_other_data(
    tmp_path, commands
) -> None:
    first = _train(commands, tmp_path, "--run_name=h", "--trainer.max_epochs=2", *HISTORY)
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
    before = files(run)

    for refused_option, recorded in (("--data.sigma_b=0.5", "0.25"), ("--data.trr=0.1", "0.0")):
        refused = _train(commands, tmp_path, "--trainer.max_epochs=3", *HISTORY, refused_option,
            f"--ckpt_path={last}",
        )  # fmt: skip
        option = refused_option.split("=")[0]
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
        assert f"error: {option} is " in refused.stderr and f"{option}={recorded}" in refused.stderr
        assert files(run) == before

    resumed = _train(commands, tmp_path, "--trainer.max_epochs=3", *HISTORY, "--model.lr=0.01",
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
    assert validation_epochs(run) == [0, 1, 2]
    assert (run / "config.1.yaml").read_text() == config, "the first start's config is kept"
    assert "lr: 0.01" in (run / "config.yaml").read_text()
