"""One writer per output directory, and the settings record and rows it guards: a run
refused for any reason claims nothing, and a resume takes only what this run wrote."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from idrs_lightning.certify_job.results import COLUMNS
from tests.bad_input import assert_refused, assert_unchanged, snapshot
from tests.commands import CHECKPOINT, ROOT
from tests.helpers import wait_for_file
from tests.user_models import GatedNet

pytestmark = pytest.mark.slow  # certify.py processes, some of them pairs


def test_a_resume_with_another_model_at_the_same_path_is_refused(tmp_path, commands) -> None:
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(CHECKPOINT.read_bytes())
    first = commands.certify(checkpoint, tmp_path / "out", tmp_path, "--indices", "0:2")
    assert first.returncode == 0, first.stderr[-2000:]
    state = torch.load(checkpoint, weights_only=True)
    weight = next(key for key in state["state_dict"] if key.endswith("weight"))
    state["state_dict"][weight] = state["state_dict"][weight] + 1.0  # another model
    torch.save(state, checkpoint)
    before = snapshot(tmp_path / "out")
    again = commands.certify(checkpoint, tmp_path / "out", tmp_path, "--indices", "0:2")
    assert_refused(again, "other settings: checkpoint_sha256=")
    assert_unchanged(tmp_path / "out", before)


@pytest.mark.parametrize(
    ("bad", "names"),
    [
        (["--eval-subset-size", "100000"], "--eval-subset-size (100000) exceeds the test split"),
        (["--indices", "0:600"], "--indices '0:600' reaches past the test split"),
    ],
)
def test_a_failed_run_claims_nothing_and_the_corrected_run_goes_ahead(
    tmp_path, commands, bad, names
) -> None:
    failed = commands.certify(CHECKPOINT, tmp_path / "out", tmp_path, *bad)
    assert_refused(failed, names)
    assert not (tmp_path / "out").exists(), "a refused run leaves no directory behind"
    corrected = commands.certify(CHECKPOINT, tmp_path / "out", tmp_path, "--indices", "0:3")
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


def test_a_full_disk_keeps_the_rows_and_names_the_file(tmp_path, commands, small_disk) -> None:
    out = small_disk / "out"
    done = commands.certify(CHECKPOINT, out, tmp_path, "--indices", "0:16")
    assert_refused(done, "cannot write")
    assert str(out) in done.stderr and "No space left on device" in done.stderr
    rows = (out / "results.tsv").read_text().splitlines()
    assert len(rows) == 17 and all(len(row.split("\t")) == len(COLUMNS) for row in rows)
    for path in out.iterdir():  # no half-written report: each file is whole or absent
        assert not path.name.endswith(".partial"), path
        if path.suffix == ".json":
            json.loads(path.read_text())
        if path.suffix == ".png":
            assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 1000


# ---- one writer per directory, and the record and rows it guards --------------------------


HOLD = (
    "import sys, time; from pathlib import Path; from idrs_lightning import directory_lock; "
    "directory_lock.acquire(Path(sys.argv[1])); print('held', flush=True); time.sleep(600)"
)


def test_a_directory_in_use_is_refused_by_name(tmp_path, commands) -> None:
    first = commands.certify(CHECKPOINT, tmp_path / "out", tmp_path, "--indices", "0:2")
    assert first.returncode == 0, first.stderr[-2000:]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(tmp_path / "out")
        second = commands.certify(CHECKPOINT, tmp_path / "out", tmp_path, "--indices", "0:2")
    finally:
        holder.kill()
        holder.wait()
    assert_refused(second, f"is being written by process {holder.pid}")
    assert_unchanged(tmp_path / "out", before)


def _rows(results: Path) -> list[str]:
    return results.read_text().splitlines()[1:] if results.exists() else []


GATED = "{class_path: tests.user_models.GatedNet, init_args: {num_classes: 10, channels: 1}}"


def test_a_second_writer_is_refused_mid_run_and_ctrl_c_says_how_to_resume(
    tmp_path, offline_env, commands
) -> None:
    """The first run holds after its first row (``GatedNet``) and says so, so the second writer
    and the Ctrl-C both land mid-run, whatever the machine's speed; the resume runs ungated."""
    torch.save(GatedNet(num_classes=10, channels=1).state_dict(), tmp_path / "gated.pt")
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "certify.py"), str(tmp_path / "gated.pt"), str(out)]
    common = ["--arch", GATED, "--dataset", "digits", "--root", str(tmp_path / "data")]
    common += ["--N", "1000", "--N0", "100", "--batch-size", "100", "--indices", "0:6"]
    env = offline_env | {"PYTHONPATH": str(ROOT)}
    ready = tmp_path / "holding"
    gated = env | {"IDRS_TEST_GATE": str(out / "results.tsv"), "IDRS_TEST_GATE_READY": str(ready)}
    first = subprocess.Popen(
        [*command, *common], cwd=tmp_path, env=gated, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_for_file(ready, first).startswith("rows=1 "), "held after its first row"
    except AssertionError:
        first.kill()
        raise
    second = commands.run([*command, *common], tmp_path, env=env)
    assert first.poll() is None, f"the first run is held mid-run: {first.stderr.read()}"
    assert_refused(second, f"{out} is being written by process {first.pid}")
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-2000:]
    assert f"interrupted; the rows certified so far, if any, are in {out}: run" in stderr
    kept = _rows(out / "results.tsv")
    assert len(kept) == 1, "stopped after its first row"
    resumed = commands.run([*command, *common], tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rows = _rows(out / "results.tsv")
    assert rows[:1] == kept and len(rows) == 6
    assert sorted(int(row.split("\t")[0]) for row in rows) == list(range(6))


@pytest.fixture(scope="module")
def certified(tmp_path_factory, commands) -> Path:
    """An output directory of a finished run over inputs 0:3 (copied by each test)."""
    tmp = tmp_path_factory.mktemp("certified")
    done = commands.certify(CHECKPOINT, tmp / "out", tmp, "--indices", "0:3")
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


@pytest.mark.parametrize("damage", sorted(ROW_DAMAGE))
def test_rows_this_run_cannot_have_written_are_refused(
    certified, tmp_path, commands, damage
) -> None:
    out = _copy_of(certified, tmp_path)
    edit, names = ROW_DAMAGE[damage]
    header, *rows = (out / "results.tsv").read_text().splitlines()
    (out / "results.tsv").write_text("\n".join([header, *edit(rows)]) + "\n")
    before = snapshot(out)
    done = commands.certify(CHECKPOINT, out, tmp_path, "--indices", "0:3")
    assert_refused(done, f"{out / 'results.tsv'}, line")
    assert names in done.stderr, done.stderr[-2000:]
    assert_unchanged(out, before)


RECORD_DAMAGE: dict[str, tuple[Callable[[str], str], str]] = {
    "a JSON list": (lambda text: "[1, 2]", "is not a settings record (it holds a JSON list"),
    "not JSON": (lambda text: text[:40], "certify_settings.json is not valid JSON"),
    "another n": (
        lambda text: json.dumps(json.loads(text) | {"n": 50}),
        "other settings: n=50 there",
    ),
    "binary": (lambda text: "\udcff", "certify_settings.json is not a settings record"),
}


@pytest.mark.parametrize("damage", sorted(RECORD_DAMAGE))
def test_a_damaged_record_is_named(certified, tmp_path, commands, damage) -> None:
    out = _copy_of(certified, tmp_path)
    edit, names = RECORD_DAMAGE[damage]
    record = out / "certify_settings.json"
    record.write_bytes(edit(record.read_text()).encode(errors="surrogateescape"))
    before = snapshot(out)
    done = commands.certify(CHECKPOINT, out, tmp_path, "--indices", "0:3")
    assert_refused(done, names)
    assert_unchanged(out, before)


def test_a_reformatted_record_and_a_moved_checkpoint_resume(certified, tmp_path, commands) -> None:
    out = _copy_of(certified, tmp_path)
    record = out / "certify_settings.json"
    record.write_text(json.dumps(json.loads(record.read_text()), indent=None))
    moved = tmp_path / "elsewhere" / "model.ckpt"
    moved.parent.mkdir()
    moved.write_bytes(CHECKPOINT.read_bytes())  # the same content under another path
    done = commands.certify(moved, out, tmp_path, "--indices", "0:3")
    assert done.returncode == 0, done.stderr[-2000:]
    other = commands.certify(CHECKPOINT, out, tmp_path, "--indices", "0:3", "--N0", "20")
    assert_refused(other, "other settings: n0=10 there")


def test_a_sequential_resume_keeps_its_stopping_grid(tmp_path, commands) -> None:
    sequential = ("--sequential", "--indices", "0:2", "--radii")
    first = commands.certify(CHECKPOINT, tmp_path / "out", tmp_path, *sequential, "0.1", "0.2")
    assert first.returncode == 0, first.stderr[-2000:]
    before = snapshot(tmp_path / "out")
    again = commands.certify(CHECKPOINT, tmp_path / "out", tmp_path, *sequential, "0.3")
    assert_refused(again, "other settings: stopping_radii=[0.1, 0.2] there")
    assert_unchanged(tmp_path / "out", before)


def test_a_record_without_rows_holds_no_results(tmp_path, commands) -> None:
    """A run killed after its claim and before its first row (no clean-up ran) leaves a record
    and a header: the corrected command, with other settings, takes the directory."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "certify_settings.json").write_text(json.dumps({"n": 7, "checkpoint": "gone.ckpt"}))
    (out / "results.tsv").write_text("\t".join(COLUMNS) + "\n")
    done = commands.certify(CHECKPOINT, out, tmp_path, "--indices", "0:2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "certify_settings.json").read_text())["n"] == 100
    assert len((out / "results.tsv").read_text().splitlines()) == 3
