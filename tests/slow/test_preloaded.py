"""A command run by the preloaded interpreter (tests/preloaded.py) is the process ``python``
would start: the same arguments, working directory, environment, ``sys.path``, standard
streams and exit status, for scripts and modules, and for the project's own refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.commands import CHECKPOINT, ROOT
from tests.preloaded import Preloaded

pytestmark = pytest.mark.slow  # every case runs twice, once as a plain subprocess

PROBE = """
import atexit, json, os, sys
atexit.register(lambda: print("atexit ran"))
print(json.dumps({
    "argv": sys.argv, "cwd": os.getcwd(), "path": sys.path, "name": __name__,
    "marker": os.environ.get("PROBE_MARKER"), "stdin": sys.stdin.read(),
}))
print("to stderr", file=sys.stderr)
how = sys.argv[1] if len(sys.argv) > 1 else ""
if how == "exit":
    sys.exit(3)
if how == "message":
    sys.exit("a message")
if how == "raise":
    raise ValueError("raised")
if how == "signal":
    import signal
    os.kill(os.getpid(), signal.SIGTERM)
"""


@pytest.fixture(scope="module")
def probes(tmp_path_factory) -> Path:
    """A script, and a module of the same code importable from a folder of its own."""
    folder = tmp_path_factory.mktemp("probes")
    (folder / "probe.py").write_text(PROBE)
    (folder / "modules").mkdir()
    (folder / "modules" / "probe_module.py").write_text(PROBE)
    return folder


def _both(
    preloaded: Preloaded, command: list[str], cwd: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    plain = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,  # as the preloaded child's
        capture_output=True,
        text=True,
        timeout=300,
    )
    return plain, preloaded.run(command, cwd, env, timeout=300)


@pytest.mark.parametrize("how", ["", "exit", "message", "raise", "signal"])
@pytest.mark.parametrize("form", ["script", "module"])
def test_a_probe_sees_what_a_plain_process_sees(
    preloaded: Preloaded, offline_env: dict[str, str], probes: Path, tmp_path, form, how
) -> None:
    assert preloaded.usable, "the server imported its libraries with one thread"
    env = offline_env | {"PROBE_MARKER": form + how}
    if form == "script":
        command = [sys.executable, str(probes / "probe.py"), how]
    else:
        command = [sys.executable, "-m", "probe_module", how]
        env["PYTHONPATH"] = os.pathsep.join([str(probes / "modules"), env.get("PYTHONPATH", "")])
    plain, preloaded_run = _both(preloaded, command, tmp_path, env)
    assert preloaded_run.returncode == plain.returncode
    assert preloaded_run.stdout == plain.stdout
    seen = json.loads(plain.stdout.splitlines()[0])
    assert seen["marker"] == form + how and seen["cwd"] == str(tmp_path) and seen["stdin"] == ""
    assert seen["name"] == "__main__"
    if how == "raise":  # the traceback's frames differ (runpy's), its last line does not
        head = "to stderr\nTraceback (most recent call last):\n"
        assert preloaded_run.stderr.startswith(head) and plain.stderr.startswith(head)
        tail = plain.stderr.splitlines()[-1]
        assert preloaded_run.stderr.splitlines()[-1] == tail == "ValueError: raised"
    else:
        assert preloaded_run.stderr == plain.stderr
    expected = {"": 0, "exit": 3, "message": 1, "raise": 1, "signal": -15}[how]
    assert plain.returncode == expected


@pytest.mark.parametrize(
    "arguments",
    [
        [str(ROOT / "certify.py"), str(CHECKPOINT), "out", "--N", "0"],
        [str(ROOT / "train.py"), "fit", "--runs_dir=runs", "--data.k=0"],
        ["-m", "idrs_lightning.reporting.compare", "missing", "--output", "out"],
        ["-m", "idrs_lightning.paper", "table9", "--out", "out"],
    ],
    ids=["certify", "train", "compare", "paper"],
)
def test_the_projects_refusals_are_the_same(
    preloaded: Preloaded, offline_env: dict[str, str], tmp_path, arguments
) -> None:
    command = [sys.executable, *arguments]
    plain, preloaded_run = _both(preloaded, command, tmp_path, offline_env)
    assert plain.returncode == 2, plain.stderr[-2000:]
    assert (preloaded_run.returncode, preloaded_run.stdout, preloaded_run.stderr) == (
        plain.returncode,
        plain.stdout,
        plain.stderr,
    )
