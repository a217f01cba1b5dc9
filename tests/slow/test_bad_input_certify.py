"""certify.py refuses bad options, files that are no checkpoint of ours, checkpoints with
edited settings and broken models: exit status 2, one line naming what is wrong, no
file changed and nothing claimed (the helpers are in tests/bad_input.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.bad_input import assert_refused, assert_unchanged, checkpoint_cases, snapshot
from tests.commands import CHECKPOINT, ROOT

pytestmark = pytest.mark.slow  # a certify.py process per case


# certify.py: arguments after CHECKPOINT OUT, what the message must name, a set-up of tmp_path.
def _plain(tmp: Path) -> None:
    """Nothing to prepare."""


def _foreign_results(tmp: Path) -> None:
    (tmp / "out").mkdir()
    (tmp / "out" / "results.tsv").write_text("my notes\n")


def _results_without_record(tmp: Path) -> None:
    (tmp / "out").mkdir()
    (tmp / "out" / "results.tsv").write_text(
        "idx\tlabel\tpredict\tradius\tcorrect\ttime\tsigma"
        "\tpA_lower\tpB_upper\tcounts\tsamples\n0\t1\t1\t0.2\t1"
        "\t0.1\t0.25\t0.9\tnan\t1,99\t100\n"
    )


def _out_is_a_file(tmp: Path) -> None:
    (tmp / "out").write_text("not a directory\n")


CERTIFY_CASES: list[tuple[list[str], str, Callable[[Path], None]]] = [
    (["--N", "0"], "--N must be an integer >= 1", _plain),
    (["--N", "abc"], "--N", _plain),
    (["--N0", "500", "--N", "100"], "--N0 must not exceed n (100)", _plain),
    (["--N0", "0"], "--N0", _plain),
    (["--alpha", "0"], "--alpha", _plain),
    (["--alpha", "1.5"], "--alpha", _plain),
    (["--batch-size", "50"], "--batch-size must be an integer >= 100", _plain),
    (["--seed", "-1"], "--seed", _plain),
    (["--indices", "1000:2000"], "--indices '1000:2000' reaches past the test split", _plain),
    (["--indices", "495:510"], "stop must be at most 500", _plain),
    (["--indices", "abc"], "--indices must be 'subset', 'all' or start:stop", _plain),
    (["--indices", "0:10:0"], "--indices needs start < stop and step >= 1", _plain),
    (["--indices", ""], "--indices", _plain),
    (["--indices", "5:3"], "--indices", _plain),
    (["--indices", "-1"], "--indices", _plain),
    (["--m", "median"], "--m must be a number, 'min' or 'mean', got 'median'", _plain),
    (["--radii", "-1"], "--radii must be finite and >= 0", _plain),
    (["--radii", "nan"], "--radii", _plain),
    (["--device", "gpu"], "--device must be 'auto', 'cpu', 'cuda' or 'cuda:<i>'", _plain),
    (["--device", "cuda:7"], "--device 'cuda:7' is not available", _plain),
    (["--precision", "8"], "--precision", _plain),
    (["--r", "-0.1"], "--r must be a non-negative number", _plain),
    (["--sigma-b", "0"], "--sigma-b must be a positive number", _plain),
    (["--k", "0"], "--k must be a positive integer", _plain),
    (["--k", "100000"], "--k (100000) must be smaller than the training set", _plain),
    (["--eval-subset-size", "0"], "--eval-subset-size", _plain),
    (
        ["--eval-subset-size", "100000"],
        "--eval-subset-size (100000) exceeds the test split",
        _plain,
    ),
    (["--sigma-min", "0.5", "--sigma-max", "0.1"], "--sigma-min (0.5) must not exceed", _plain),
    ([], "results.tsv exists and is not a results file", _foreign_results),
    ([], "has no certify_settings.json beside it", _results_without_record),
    ([], "is a file; give a directory", _out_is_a_file),
]


@pytest.mark.parametrize(
    ("arguments", "names", "prepare"),
    CERTIFY_CASES,
    ids=[" ".join(c[0]) or c[2].__name__.strip("_") for c in CERTIFY_CASES],
)
def test_certify_refuses(tmp_path, commands, arguments, names, prepare) -> None:
    prepare(tmp_path)
    before = snapshot(tmp_path)
    command = [sys.executable, str(ROOT / "certify.py"), str(CHECKPOINT), str(tmp_path / "out")]
    done = commands.run([*command, "--root", str(tmp_path / "data"), *arguments], tmp_path)
    assert_refused(done, names)
    assert_unchanged(tmp_path, before)


def _nan_checkpoint(tmp: Path) -> Path:
    state = torch.load(CHECKPOINT, weights_only=True)
    weights = state["state_dict"]
    for name in weights:
        if weights[name].is_floating_point():
            weights[name] = torch.full_like(weights[name], float("nan"))
    torch.save(state, tmp / "nan.ckpt")
    return tmp / "nan.ckpt"


def test_a_model_with_nan_logits_is_certified_nowhere(tmp_path, commands) -> None:
    broken = _nan_checkpoint(tmp_path)
    done = commands.certify(broken, tmp_path / "out", tmp_path, "--indices", "0:3")
    assert_refused(done, "logits are NaN or infinite for input 0")
    assert not (tmp_path / "out").exists(), "the claim is released"
    good = commands.certify(CHECKPOINT, tmp_path / "out", tmp_path, "--indices", "0:3")
    assert good.returncode == 0, good.stderr[-2000:]


# ---- what a checkpoint records ----------------------------------------------------------


def _edited(tmp: Path, section: str, name: str, value: object) -> Path:
    state = torch.load(CHECKPOINT, weights_only=True)
    state[section][name] = value
    torch.save(state, tmp / "edited.ckpt")
    return tmp / "edited.ckpt"


@pytest.mark.parametrize(
    ("section", "name", "value", "names"),
    [
        ("datamodule_hyper_parameters", "r", "abc", "records the data setting r = 'abc'"),
        ("datamodule_hyper_parameters", "r", [0.1], "records the data setting r = [0.1]"),
        ("datamodule_hyper_parameters", "k", 0, "records an invalid data setting: k"),
        ("hyper_parameters", "num_classes", "ten", "num_classes must be an integer"),
    ],
)
def test_a_checkpoint_with_edited_settings_is_named(
    tmp_path, commands, section, name, value, names
) -> None:
    edited = _edited(tmp_path, section, name, value)
    done = commands.certify(edited, tmp_path / "out", tmp_path, "--indices", "0:2")
    assert_refused(done, "checkpoint")
    assert str(edited) in done.stderr and names in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "out").exists()


# ---- nothing claimed by a refused run -----------------------------------------------------


def test_sigma_out_of_range_is_named_and_claims_nothing(tmp_path, commands) -> None:
    done = commands.certify(CHECKPOINT, tmp_path / "out", tmp_path, "--m", "1e300")
    assert_refused(done, "--m = 1e+300 puts sigma(x)")
    assert not (tmp_path / "out").exists()
    corrected = commands.certify(CHECKPOINT, tmp_path / "out", tmp_path, "--indices", "0:2")
    assert corrected.returncode == 0, corrected.stderr[-2000:]


@pytest.mark.parametrize(
    "case", ["missing", "directory", "empty", "random bytes", "truncated", "plain state_dict"]
)
def test_certify_refuses_what_is_no_checkpoint(tmp_path, commands, case) -> None:
    path, names = checkpoint_cases(tmp_path)[case]
    before = snapshot(tmp_path)
    done = commands.run(
        [sys.executable, str(ROOT / "certify.py"), str(path), str(tmp_path / "out")],
        tmp_path,
    )
    assert_refused(done, names)
    assert "weights_only" not in done.stderr, "never suggest loading untrusted pickles"
    assert_unchanged(tmp_path, before)
