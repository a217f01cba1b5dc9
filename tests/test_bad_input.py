"""Bad input through the real entry points: one line naming the option or file, exit status 2.

Every case runs the command in a subprocess and checks that it prints no traceback, that its
last line is ``error: ...`` naming what is wrong, that no expensive work started (no results,
no kNN cache, no run directory) and that every file that existed before is byte-identical.
"""

from __future__ import annotations

import http.server
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from idrs_lightning.certify_job.results import COLUMNS
from tests.user_models import GatedNet

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = Path(__file__).resolve().parent / "data" / "regression" / "digits_lenet.ckpt"


def _snapshot(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def _assert_unchanged(folder: Path, before: dict[Path, bytes]) -> None:
    """Every file in ``folder`` is byte-identical to ``before`` and none was added."""
    after = _snapshot(folder)
    changed = sorted(str(p) for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    assert not changed, f"files added, removed or changed: {changed}"


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
    _assert_unchanged(tmp_path, before)


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
    _assert_unchanged(tmp_path, before)


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
    command = [sys.executable, "-m", "idrs_lightning.reporting.compare", str(run), "--output"]
    done = _run([*command, str(tmp_path / "cmp")], ROOT, offline_env)
    _assert_refused(done, names)
    _assert_unchanged(tmp_path, before)


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
            "run 1 of this sweep (data.nonexistent=1) is refused: unrecognized arguments",
        ),
        (
            "program: train.py\nmethod: grid\nparameters:\n  data.sigma_b: {values: [0.25, 0]}\n"
            'command: ["${env}", "${interpreter}", "${program}", "fit", "${args}"]\n',
            [],
            "run 2 of this sweep (data.sigma_b=0) is refused: --data.sigma_b must be a",
        ),
        ("method: grid\nparameters:\n  a: {values: [1]}\n", ["--max-runs", "0"], "at least 1"),
    ],
    ids=[
        "missing file",
        "bad YAML",
        "not a mapping",
        "bayes without --max-runs",
        "unknown key",
        "second run invalid",
        "no runs",
    ],
)
def test_sweep_refuses(tmp_path, offline_env, content, arguments, names) -> None:
    sweep = tmp_path / "missing.yaml"
    if content is not None:
        sweep = tmp_path / "sweep.yaml"
        sweep.write_text(content)
    if content is not None and "program:" in content:  # where a run would write
        arguments = [*arguments, "--", f"--runs_dir={tmp_path / 'runs'}"]
    command = [sys.executable, "-m", "idrs_lightning.training.sweep", str(sweep), *arguments]
    done = _run(command, ROOT, offline_env)
    _assert_refused(done, names)
    assert not (tmp_path / "runs").exists(), "no run trained before the refusal"


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
    _assert_unchanged(tmp_path / "out", before)


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


class _ServerError(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(503, "unavailable")

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


class _Refusing(_ServerError):
    """Answers a plain request, refuses every API call (as for a revoked key)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_error(401, "unauthorized")


@contextmanager
def _wandb_server(kind: str) -> Iterator[str]:
    """The base URL of a W&B server that is not there ("closed": nobody listens), accepts
    connections and never answers ("silent"), answers every request with HTTP 503 ("errors"),
    or answers plain requests and refuses API calls ("refusing")."""
    if kind in ("errors", "refusing"):
        handler = _ServerError if kind == "errors" else _Refusing
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
        return
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))  # a port of ours
    if kind == "silent":
        listener.listen(64)  # the kernel accepts; nobody ever reads or answers
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def _online_env(offline_env: dict, base_url: str) -> dict:
    env = {k: v for k, v in offline_env.items() if k != "WANDB_MODE"}
    return env | {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": base_url}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["closed", "silent", "errors", "refusing"])
def test_a_wandb_server_that_fails_means_offline_not_a_stall(tmp_path, offline_env, kind) -> None:
    with _wandb_server(kind) as url:
        start = time.monotonic()
        done = _certify(
            CHECKPOINT,
            tmp_path / "out",
            tmp_path,
            _online_env(offline_env, url),
            "--indices",
            "0:2",
        )
        took = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    assert took < 60, f"no stall waiting for the server ({took:.0f} s)"
    assert done.stderr.count("logging offline") == 1, done.stderr[-3000:]
    assert list((tmp_path / "out" / "wandb").glob("offline-run-*")), "an offline copy"
    assert len((tmp_path / "out" / "results.tsv").read_text().splitlines()) == 3


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["silent", "refusing"])
def test_training_beside_a_failing_wandb_server_logs_offline(tmp_path, offline_env, kind) -> None:
    with _wandb_server(kind) as url:
        start = time.monotonic()
        done = _train(tmp_path, _online_env(offline_env, url), "--run_name=quiet")
        took = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    assert took < 90, f"no stall waiting for the server ({took:.0f} s)"
    assert done.stderr.count("logging offline") == 1, done.stderr[-3000:]
    assert list((tmp_path / "runs" / "quiet" / "wandb").glob("offline-run-*"))


TRAIN_FAST = (
    "--data.dataset=digits",
    "--data.k=5",
    "--model.network=mlp",
    "--trainer.max_epochs=1",
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
)


def _train(tmp: Path, env: dict, *arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "train.py"), "fit", f"--runs_dir={tmp / 'runs'}"]
    return _run([*command, f"--data.root={tmp / 'data'}", *TRAIN_FAST, *arguments], tmp, env)


# ---- broken models get no certificate ----------------------------------------------------


@pytest.mark.slow
def test_a_diverging_training_stops_with_its_cause_and_leaves_no_run(tmp_path, offline_env):
    done = _train(tmp_path, offline_env, "--run_name=hot", "--model.lr=1e8")
    _assert_refused(done, "training diverged in epoch 0")
    assert "the training loss is nan" in done.stderr and "lower --model.lr" in done.stderr
    assert "no checkpoint was saved" in done.stderr
    assert not (tmp_path / "runs" / "hot").exists(), "nothing presented as usable"
    corrected = _train(tmp_path, offline_env, "--run_name=hot")
    assert corrected.returncode == 0, corrected.stderr[-2000:]


def _nan_checkpoint(tmp: Path) -> Path:
    state = torch.load(CHECKPOINT, weights_only=True)
    weights = state["state_dict"]
    for name in weights:
        if weights[name].is_floating_point():
            weights[name] = torch.full_like(weights[name], float("nan"))
    torch.save(state, tmp / "nan.ckpt")
    return tmp / "nan.ckpt"


@pytest.mark.slow
def test_a_model_with_nan_logits_is_certified_nowhere(tmp_path, offline_env) -> None:
    broken = _nan_checkpoint(tmp_path)
    done = _certify(broken, tmp_path / "out", tmp_path, offline_env, "--indices", "0:3")
    _assert_refused(done, "logits are NaN or infinite for input 0")
    assert not (tmp_path / "out").exists(), "the claim is released"
    good = _certify(CHECKPOINT, tmp_path / "out", tmp_path, offline_env, "--indices", "0:3")
    assert good.returncode == 0, good.stderr[-2000:]


# ---- what a checkpoint records ----------------------------------------------------------


def _edited(tmp: Path, section: str, name: str, value: object) -> Path:
    state = torch.load(CHECKPOINT, weights_only=True)
    state[section][name] = value
    torch.save(state, tmp / "edited.ckpt")
    return tmp / "edited.ckpt"


@pytest.mark.slow
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
    tmp_path, offline_env, section, name, value, names
) -> None:
    edited = _edited(tmp_path, section, name, value)
    done = _certify(edited, tmp_path / "out", tmp_path, offline_env, "--indices", "0:2")
    _assert_refused(done, "checkpoint")
    assert str(edited) in done.stderr and names in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "out").exists()


# ---- one writer per directory, and the record and rows it guards --------------------------


HOLD = (
    "import sys, time; from pathlib import Path; from idrs_lightning import directory_lock; "
    "directory_lock.acquire(Path(sys.argv[1])); print('held', flush=True); time.sleep(600)"
)


@pytest.mark.slow
def test_a_directory_in_use_is_refused_by_name(tmp_path, offline_env) -> None:
    first = _certify(CHECKPOINT, tmp_path / "out", tmp_path, offline_env, "--indices", "0:2")
    assert first.returncode == 0, first.stderr[-2000:]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _snapshot(tmp_path / "out")
        second = _certify(CHECKPOINT, tmp_path / "out", tmp_path, offline_env, "--indices", "0:2")
    finally:
        holder.kill()
        holder.wait()
    _assert_refused(second, f"is being written by process {holder.pid}")
    _assert_unchanged(tmp_path / "out", before)


def _rows(results: Path) -> list[str]:
    return results.read_text().splitlines()[1:] if results.exists() else []


GATED = "{class_path: tests.user_models.GatedNet, init_args: {num_classes: 10, channels: 1}}"


@pytest.mark.slow
def test_a_second_writer_is_refused_mid_run_and_ctrl_c_says_how_to_resume(
    tmp_path, offline_env
) -> None:
    """The first run blocks after its first row (``GatedNet``), so the second writer and the
    Ctrl-C both land mid-run, whatever the machine's speed; the resume runs ungated."""
    torch.save(GatedNet(num_classes=10, channels=1).state_dict(), tmp_path / "gated.pt")
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "certify.py"), str(tmp_path / "gated.pt"), str(out)]
    common = ["--arch", GATED, "--dataset", "digits", "--root", str(tmp_path / "data")]
    common += ["--N", "1000", "--N0", "100", "--batch-size", "100", "--indices", "0:6"]
    env = offline_env | {"PYTHONPATH": str(ROOT)}
    gated = env | {"IDRS_TEST_GATE": str(out / "results.tsv")}
    first = subprocess.Popen(
        [*command, *common], cwd=tmp_path, env=gated, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while not _rows(out / "results.tsv") and first.poll() is None:
        assert time.monotonic() < deadline, "no first row in 240 s"
        time.sleep(0.2)
    second = _run([*command, *common], tmp_path, env)
    assert first.poll() is None, f"the first run is blocked mid-run: {first.stderr.read()}"
    _assert_refused(second, f"{out} is being written by process {first.pid}")
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-2000:]
    assert f"interrupted; the rows certified so far, if any, are in {out}: run" in stderr
    kept = _rows(out / "results.tsv")
    assert len(kept) == 1, "stopped after its first row"
    resumed = _run([*command, *common], tmp_path, env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rows = _rows(out / "results.tsv")
    assert rows[:1] == kept and len(rows) == 6
    assert sorted(int(row.split("\t")[0]) for row in rows) == list(range(6))


@pytest.fixture(scope="module")
def certified(tmp_path_factory, offline_env) -> Path:
    """An output directory of a finished run over inputs 0:3 (copied by each test)."""
    tmp = tmp_path_factory.mktemp("certified")
    done = _certify(CHECKPOINT, tmp / "out", tmp, offline_env, "--indices", "0:3")
    assert done.returncode == 0, done.stderr[-2000:]
    return tmp


def _copy_of(certified: Path, tmp: Path) -> Path:
    shutil.copytree(certified / "out", tmp / "out")
    shutil.copytree(certified / "data", tmp / "data")
    return tmp / "out"


def _retabbed(line: str, **changes: str) -> str:
    row = dict(zip(COLUMNS, line.split("\t"), strict=True))
    return "\t".join({**row, **changes}[column] for column in COLUMNS)


ROW_DAMAGE: dict[str, tuple[Callable[[list[str]], list[str]], str]] = {
    "duplicated row": (lambda rows: [*rows, rows[-1]], "input 2 appears a second time"),
    "row outside the run": (
        lambda rows: [*rows, _retabbed(rows[-1], idx="7", label="6")],
        "input 7 is not one of this run's inputs",
    ),
    "nan radius": (
        lambda rows: [*rows[:-1], _retabbed(rows[-1], radius="nan")],
        "radius nan is not a finite number",
    ),
    "another n": (
        lambda rows: [*rows[:-1], _retabbed(rows[-1], samples="50")],
        "50 estimation samples, where this run draws 100",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(ROW_DAMAGE))
def test_rows_this_run_cannot_have_written_are_refused(
    certified, tmp_path, offline_env, damage
) -> None:
    out = _copy_of(certified, tmp_path)
    edit, names = ROW_DAMAGE[damage]
    header, *rows = (out / "results.tsv").read_text().splitlines()
    (out / "results.tsv").write_text("\n".join([header, *edit(rows)]) + "\n")
    before = _snapshot(out)
    done = _certify(CHECKPOINT, out, tmp_path, offline_env, "--indices", "0:3")
    _assert_refused(done, f"{out / 'results.tsv'}, line")
    assert names in done.stderr, done.stderr[-2000:]
    _assert_unchanged(out, before)


RECORD_DAMAGE: dict[str, tuple[Callable[[str], str], str]] = {
    "a JSON list": (lambda text: "[1, 2]", "is not a settings record (it holds a JSON list"),
    "not JSON": (lambda text: text[:40], "certify_settings.json is not valid JSON"),
    "another n": (
        lambda text: json.dumps(json.loads(text) | {"n": 50}),
        "other settings: n=50 there",
    ),
    "binary": (lambda text: "\udcff", "certify_settings.json is not a settings record"),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(RECORD_DAMAGE))
def test_a_damaged_record_is_named(certified, tmp_path, offline_env, damage) -> None:
    out = _copy_of(certified, tmp_path)
    edit, names = RECORD_DAMAGE[damage]
    record = out / "certify_settings.json"
    record.write_bytes(edit(record.read_text()).encode(errors="surrogateescape"))
    before = _snapshot(out)
    done = _certify(CHECKPOINT, out, tmp_path, offline_env, "--indices", "0:3")
    _assert_refused(done, names)
    _assert_unchanged(out, before)


@pytest.mark.slow
def test_a_reformatted_record_and_a_moved_checkpoint_resume(
    certified, tmp_path, offline_env
) -> None:
    out = _copy_of(certified, tmp_path)
    record = out / "certify_settings.json"
    record.write_text(json.dumps(json.loads(record.read_text()), indent=None))
    moved = tmp_path / "elsewhere" / "model.ckpt"
    moved.parent.mkdir()
    moved.write_bytes(CHECKPOINT.read_bytes())  # the same content under another path
    done = _certify(moved, out, tmp_path, offline_env, "--indices", "0:3")
    assert done.returncode == 0, done.stderr[-2000:]
    other = _certify(CHECKPOINT, out, tmp_path, offline_env, "--indices", "0:3", "--N0", "20")
    _assert_refused(other, "other settings: n0=10 there")


@pytest.mark.slow
def test_a_sequential_resume_keeps_its_stopping_grid(tmp_path, offline_env) -> None:
    sequential = ("--sequential", "--indices", "0:2", "--radii")
    first = _certify(CHECKPOINT, tmp_path / "out", tmp_path, offline_env, *sequential, "0.1", "0.2")
    assert first.returncode == 0, first.stderr[-2000:]
    before = _snapshot(tmp_path / "out")
    again = _certify(CHECKPOINT, tmp_path / "out", tmp_path, offline_env, *sequential, "0.3")
    _assert_refused(again, "other settings: stopping_radii=[0.1, 0.2] there")
    _assert_unchanged(tmp_path / "out", before)


# ---- nothing claimed by a refused run -----------------------------------------------------


@pytest.mark.slow
def test_sigma_out_of_range_is_named_and_claims_nothing(tmp_path, offline_env) -> None:
    done = _certify(CHECKPOINT, tmp_path / "out", tmp_path, offline_env, "--m", "1e300")
    _assert_refused(done, "--m = 1e+300 puts sigma(x)")
    assert not (tmp_path / "out").exists()
    corrected = _certify(CHECKPOINT, tmp_path / "out", tmp_path, offline_env, "--indices", "0:2")
    assert corrected.returncode == 0, corrected.stderr[-2000:]


LATE_CASES = [
    (("--trainer.max_epochs=-2",), "the trainer refuses its settings: `max_epochs` must be"),
    (("--trainer.accelerator=gpu",), "the trainer refuses its settings: No supported gpu"),
    (("--data.m=1e300", "--data.trr=0.05"), "--data.m = 1e+300 puts sigma(x)"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("arguments", "names"), LATE_CASES)
def test_train_refused_late_leaves_no_claim(tmp_path, offline_env, arguments, names) -> None:
    if "gpu" in arguments[0] and torch.cuda.is_available():
        pytest.skip("a GPU is there")
    done = _train(tmp_path, offline_env, "--run_name=late", *arguments)
    _assert_refused(done, names)
    assert not (tmp_path / "runs" / "late").exists(), "the run directory is released"
    if "trainer" in arguments[0]:  # checked without a run, as a sweep checks its runs
        checked = _train(tmp_path, offline_env, "--run_name=late", *arguments, "--check_only=true")
        _assert_refused(checked, names)
        assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize(
    "case", ["missing", "directory", "empty", "random bytes", "truncated", "plain state_dict"]
)
def test_train_refuses_what_is_no_checkpoint_to_resume(tmp_path, offline_env, case) -> None:
    path, _ = _checkpoint_cases(tmp_path)[case]
    done = _train(tmp_path, offline_env, f"--ckpt_path={path}")
    _assert_refused(done, f"--ckpt_path {path}")
    assert "weights_only" not in done.stderr, "never suggest loading untrusted pickles"
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_a_precompute_config_whose_data_is_a_list_is_named(tmp_path, offline_env) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("data:\n  - dataset\n  - digits\n")
    command = [sys.executable, "-m", "idrs_lightning.sigma.precompute", "--config", str(config)]
    _assert_refused(_run(command, ROOT, offline_env), "its data section must be a mapping")


@pytest.mark.slow
def test_a_record_without_rows_holds_no_results(tmp_path, offline_env) -> None:
    """A run killed after its claim and before its first row (no clean-up ran) leaves a record
    and a header: the corrected command, with other settings, takes the directory."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "certify_settings.json").write_text(json.dumps({"n": 7, "checkpoint": "gone.ckpt"}))
    (out / "results.tsv").write_text("\t".join(COLUMNS) + "\n")
    done = _certify(CHECKPOINT, out, tmp_path, offline_env, "--indices", "0:2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "certify_settings.json").read_text())["n"] == 100
    assert len((out / "results.tsv").read_text().splitlines()) == 3
