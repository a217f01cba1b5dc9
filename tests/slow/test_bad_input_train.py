"""train.py and the kNN precompute refuse bad options, files that are no checkpoint to
resume and a diverging training, before any run directory or after releasing it."""

from __future__ import annotations

import sys

import pytest
import torch

from tests.bad_input import assert_refused, checkpoint_cases
from tests.commands import ROOT

pytestmark = pytest.mark.slow  # a train.py process per case


TRAIN_CASES = [
    ("--data.trr=-0.01", "--data.trr must be a non-negative number, got -0.01"),
    ("--data.sigma_b=0", "--data.sigma_b must be a positive number"),
    ("--data.dataset=imagenet", "--data.dataset must be one of"),
    ("--data.k=0", "--data.k must be a positive integer"),
    ("--data.eval_subset_size=0", "--data.eval_subset_size"),
    ("--data.m=median", 'Parser key "data.m"'),
    ("--model.lr=0", "--model.lr must be a number in (0.0, inf)"),
    ("--model.lr_step=0", "--model.lr_step must be an integer >= 1"),
    ("--model.momentum=-1", "--model.momentum must be a non-negative number"),
    # refused at setup, after the run directory and loggers were made: they are removed
    ("--data.k=5000", "--data.k (5000) must be smaller than the training set (1167)"),
]


def test_train_names_the_config_file_with_a_yaml_error(tmp_path, commands) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("data:\n  sigma_b: [0.25\n")
    command = [sys.executable, str(ROOT / "train.py"), "fit", "--runs_dir", str(tmp_path / "runs")]
    done = commands.run([*command, "--config", str(config)], tmp_path)
    assert_refused(done, f"{config} is not valid YAML")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("argument", "names"), TRAIN_CASES)
def test_train_refuses_before_any_run_directory(tmp_path, commands, argument, names) -> None:
    command = [sys.executable, str(ROOT / "train.py"), "fit", "--runs_dir", str(tmp_path / "runs")]
    done = commands.run([*command, "--data.dataset=digits", argument], tmp_path)
    assert_refused(done, names)
    assert not list((tmp_path / "runs").glob("*")), "no run directory for a run that never ran"


# ---- broken models get no certificate ----------------------------------------------------


def test_a_diverging_training_stops_with_its_cause_and_leaves_no_run(tmp_path, commands):
    done = commands.train(tmp_path, "--run_name=hot", "--model.lr=1e8")
    assert_refused(done, "training diverged in epoch 0")
    assert "the training loss is nan" in done.stderr and "lower --model.lr" in done.stderr
    assert "no checkpoint was saved" in done.stderr
    assert not (tmp_path / "runs" / "hot").exists(), "nothing presented as usable"
    corrected = commands.train(tmp_path, "--run_name=hot")
    assert corrected.returncode == 0, corrected.stderr[-2000:]


LATE_CASES = [
    (("--trainer.max_epochs=-2",), "the trainer refuses its settings: `max_epochs` must be"),
    (("--trainer.accelerator=gpu",), "the trainer refuses its settings: No supported gpu"),
    (("--data.m=1e300", "--data.trr=0.05"), "--data.m = 1e+300 puts sigma(x)"),
]


@pytest.mark.parametrize(("arguments", "names"), LATE_CASES)
def test_train_refused_late_leaves_no_claim(tmp_path, commands, arguments, names) -> None:
    if "gpu" in arguments[0] and torch.cuda.is_available():
        pytest.skip("a GPU is there")
    done = commands.train(tmp_path, "--run_name=late", *arguments)
    assert_refused(done, names)
    assert not (tmp_path / "runs" / "late").exists(), "the run directory is released"
    if "trainer" in arguments[0]:  # checked without a run, as a sweep checks its runs
        checked = commands.train(tmp_path, "--run_name=late", *arguments, "--check_only=true")
        assert_refused(checked, names)
        assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(
    "case", ["missing", "directory", "empty", "random bytes", "truncated", "plain state_dict"]
)
def test_train_refuses_what_is_no_checkpoint_to_resume(tmp_path, commands, case) -> None:
    path, _ = checkpoint_cases(tmp_path)[case]
    done = commands.train(tmp_path, f"--ckpt_path={path}")
    assert_refused(done, f"--ckpt_path {path}")
    assert "weights_only" not in done.stderr, "never suggest loading untrusted pickles"
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_a_precompute_config_whose_data_is_a_list_is_named(tmp_path, commands) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("data:\n  - dataset\n  - digits\n")
    command = [sys.executable, "-m", "idrs_lightning.sigma.precompute", "--config", str(config)]
    assert_refused(commands.run(command, ROOT), "its data section must be a mapping")
