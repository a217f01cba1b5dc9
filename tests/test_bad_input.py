"""Bad input through the real entry points: one line naming the option or file, exit status 2.

Every case runs the command in a subprocess and checks that it prints no traceback, that its
last line is ``error: ...`` naming what is wrong, that no expensive work started (no results,
no kNN cache, no run directory) and that every file that existed before is byte-identical.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from idrs_lightning.results import COLUMNS

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = Path(__file__).resolve().parent / "data" / "regression" / "digits_lenet.ckpt"


def _snapshot(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def _run(command: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _assert_refused(done: subprocess.CompletedProcess, names: str) -> None:
    """Exit status 2, no traceback, and an ``error:`` line naming what is wrong (the only
    one; jsonargparse's own messages add indented details below theirs)."""
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors and names in errors[0], done.stderr[-2000:]


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


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arguments", "names", "prepare"),
    CERTIFY_CASES,
    ids=[" ".join(c[0]) or c[2].__name__.strip("_") for c in CERTIFY_CASES],
)
def test_certify_refuses(tmp_path, offline_env, arguments, names, prepare) -> None:
    prepare(tmp_path)
    before = _snapshot(tmp_path)
    command = [sys.executable, str(ROOT / "certify.py"), str(CHECKPOINT), str(tmp_path / "out")]
    done = _run([*command, "--root", str(tmp_path / "data"), *arguments], tmp_path, offline_env)
    _assert_refused(done, names)
    assert _snapshot(tmp_path) == before, "nothing written, nothing changed"


def _checkpoint_cases(tmp: Path) -> dict[str, tuple[Path, str]]:
    """Files that are no checkpoint of ours, and what the message says of each."""
    (tmp / "folder.ckpt").mkdir()
    (tmp / "empty.ckpt").write_bytes(b"")
    (tmp / "random.ckpt").write_bytes(bytes(range(256)) * 8)
    (tmp / "cut.ckpt").write_bytes(CHECKPOINT.read_bytes()[:5000])
    state = torch.load(CHECKPOINT, weights_only=True)
    torch.save(state["state_dict"], tmp / "plain.ckpt")
    return {
        "missing": (tmp / "missing.ckpt", "missing.ckpt does not exist"),
        "directory": (tmp / "folder.ckpt", "folder.ckpt is a directory, not a checkpoint file"),
        "empty": (tmp / "empty.ckpt", "empty.ckpt is empty"),
        "random bytes": (tmp / "random.ckpt", "random.ckpt is damaged or not a PyTorch file"),
        "truncated": (tmp / "cut.ckpt", "cut.ckpt is damaged or not a PyTorch file"),
        "plain state_dict": (
            tmp / "plain.ckpt",
            "plain.ckpt is a state_dict checkpoint, which holds no data settings (nor its model",
        ),
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "case", ["missing", "directory", "empty", "random bytes", "truncated", "plain state_dict"]
)
def test_certify_refuses_what_is_no_checkpoint(tmp_path, offline_env, case) -> None:
    path, names = _checkpoint_cases(tmp_path)[case]
    before = _snapshot(tmp_path)
    done = _run(
        [sys.executable, str(ROOT / "certify.py"), str(path), str(tmp_path / "out")],
        tmp_path,
        offline_env,
    )
    _assert_refused(done, names)
    assert "weights_only" not in done.stderr, "never suggest loading untrusted pickles"
    assert _snapshot(tmp_path) == before


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


@pytest.mark.slow
def test_train_names_the_config_file_with_a_yaml_error(tmp_path, offline_env) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("data:\n  sigma_b: [0.25\n")
    command = [sys.executable, str(ROOT / "train.py"), "fit", "--runs_dir", str(tmp_path / "runs")]
    done = _run([*command, "--config", str(config)], tmp_path, offline_env)
    _assert_refused(done, f"{config} is not valid YAML")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("argument", "names"), TRAIN_CASES)
def test_train_refuses_before_any_run_directory(tmp_path, offline_env, argument, names) -> None:
    command = [sys.executable, str(ROOT / "train.py"), "fit", "--runs_dir", str(tmp_path / "runs")]
    done = _run([*command, "--data.dataset=digits", argument], tmp_path, offline_env)
    _assert_refused(done, names)
    assert not list((tmp_path / "runs").glob("*")), "no run directory for a run that never ran"


def _run_dir(tmp: Path, name: str, results: str | None, summary: str | None) -> Path:
    run = tmp / name
    run.mkdir()
    if results is not None:
        (run / "results.tsv").write_text(results)
    if summary is not None:
        (run / "summary.json").write_text(summary)
    return run


HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
GOOD = json.dumps({"name": "a", "count": 1})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("results", "summary", "names"),
    [
        (HEADER + "0\t1\t1\t0.3\t1\t0.1\n", None, "no summary.json in"),
        (HEADER + "0\t1\t1\t0.3\t1\t0.1\n", '{"name": "a", "cou', "summary.json is not valid JSON"),
        ("idx\tlabel\tpredict\n0\t1\t1\n", GOOD, "results.tsv is not a results file: it has no"),
        (HEADER, GOOD, "results.tsv holds no results"),
        (HEADER + "0\t1\t1\tabc\t1\t0.1\n", GOOD, "results.tsv holds a value that is not a number"),
    ],
    ids=["no summary", "truncated summary", "no radius column", "header only", "not a number"],
)
def test_compare_refuses(tmp_path, offline_env, results, summary, names) -> None:
    run = _run_dir(tmp_path, "run", results, summary)
    before = _snapshot(tmp_path)
    command = [sys.executable, "-m", "idrs_lightning.compare", str(run), "--output"]
    done = _run([*command, str(tmp_path / "cmp")], ROOT, offline_env)
    _assert_refused(done, names)
    assert _snapshot(tmp_path) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content", "arguments", "names"),
    [
        (None, [], "missing.yaml"),
        ("method: grid\nparameters: [a, b", [], "is not valid YAML"),
        ("- a list\n", [], "is not a sweep"),
        (
            "method: bayes\nmetric: {name: x, goal: maximize}\nparameters:\n  a: {values: [1]}\n",
            [],
            "needs max_runs (--max-runs)",
        ),
        (
            "program: train.py\nmethod: grid\nparameters:\n  data.nonexistent: {values: [1]}\n"
            'command: ["${env}", "${interpreter}", "${program}", "fit", "${args}"]\n',
            [],
            "refused: unrecognized arguments: --data.nonexistent=1",
        ),
    ],
    ids=["missing file", "bad YAML", "not a mapping", "bayes without --max-runs", "unknown key"],
)
def test_sweep_refuses(tmp_path, offline_env, content, arguments, names) -> None:
    sweep = tmp_path / "missing.yaml"
    if content is not None:
        sweep = tmp_path / "sweep.yaml"
        sweep.write_text(content)
    command = [sys.executable, "-m", "idrs_lightning.sweep", str(sweep), *arguments]
    done = _run(command, ROOT, offline_env)
    _assert_refused(done, names)


def _certify(checkpoint: Path, out: Path, tmp: Path, env: dict, *arguments: str):
    command = [sys.executable, str(ROOT / "certify.py"), str(checkpoint), str(out)]
    small = ["--N", "100", "--N0", "10", "--batch-size", "100", "--root", str(tmp / "data")]
    return _run([*command, *small, *arguments], tmp, env)


@pytest.mark.slow
def test_a_resume_with_another_model_at_the_same_path_is_refused(tmp_path, offline_env) -> None:
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(CHECKPOINT.read_bytes())
    first = _certify(checkpoint, tmp_path / "out", tmp_path, offline_env, "--indices", "0:2")
    assert first.returncode == 0, first.stderr[-2000:]
    state = torch.load(checkpoint, weights_only=True)
    weight = next(key for key in state["state_dict"] if key.endswith("weight"))
    state["state_dict"][weight] = state["state_dict"][weight] + 1.0  # another model
    torch.save(state, checkpoint)
    before = _snapshot(tmp_path / "out")
    again = _certify(checkpoint, tmp_path / "out", tmp_path, offline_env, "--indices", "0:2")
    _assert_refused(again, "other settings: checkpoint_sha256=")
    assert _snapshot(tmp_path / "out") == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bad", "names"),
    [
        (["--eval-subset-size", "100000"], "--eval-subset-size (100000) exceeds the test split"),
        (["--indices", "0:600"], "--indices '0:600' reaches past the test split"),
    ],
)
def test_a_failed_run_claims_nothing_and_the_corrected_run_goes_ahead(
    tmp_path, offline_env, bad, names
) -> None:
    failed = _certify(CHECKPOINT, tmp_path / "out", tmp_path, offline_env, *bad)
    _assert_refused(failed, names)
    assert not (tmp_path / "out").exists(), "a refused run leaves no directory behind"
    corrected = _certify(CHECKPOINT, tmp_path / "out", tmp_path, offline_env, "--indices", "0:3")
    assert corrected.returncode == 0, corrected.stderr[-2000:]
    assert (tmp_path / "out" / "results.tsv").read_text().count("\n") == 4


@pytest.fixture
def small_disk(tmp_path):
    """A 24 KiB tmpfs (root only): room for the rows, not for the plots."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
def test_a_full_disk_keeps_the_rows_and_names_the_file(tmp_path, offline_env, small_disk) -> None:
    out = small_disk / "out"
    done = _certify(CHECKPOINT, out, tmp_path, offline_env, "--indices", "0:16")
    _assert_refused(done, "cannot write")
    assert str(out) in done.stderr and "No space left on device" in done.stderr
    rows = (out / "results.tsv").read_text().splitlines()
    assert len(rows) == 17 and all(len(row.split("\t")) == len(COLUMNS) for row in rows)
    for path in out.iterdir():  # no half-written report: each file is whole or absent
        assert not path.name.endswith(".partial"), path
        if path.suffix == ".json":
            json.loads(path.read_text())
        if path.suffix == ".png":
            assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 1000


@pytest.mark.slow
def test_an_unreachable_wandb_server_means_offline_not_a_stall(tmp_path, offline_env) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # a port of ours that nobody listens on
    port = closed.getsockname()[1]
    env = {k: v for k, v in offline_env.items() if k != "WANDB_MODE"}
    env |= {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": f"http://127.0.0.1:{port}"}
    start = time.monotonic()
    done = _certify(CHECKPOINT, tmp_path / "out", tmp_path, env, "--indices", "0:2")
    closed.close()
    assert done.returncode == 0, done.stderr[-3000:]
    assert time.monotonic() - start < 90, "no stall waiting for the server"
    assert "does not answer; logging offline" in done.stderr
    assert list((tmp_path / "out" / "wandb").glob("offline-run-*"))
    assert len((tmp_path / "out" / "results.tsv").read_text().splitlines()) == 3
