"""Commands run by forked copies of an interpreter that imported the heavy libraries once.

Python's start-up, its imports of torch, torchvision and lightning and their clean-up at exit
take nearly all of the ~5 s a refused ``certify.py`` costs. :class:`Preloaded` starts a server
(this file, run as a script) that imports them once and freezes them for the garbage collector
(a child's collections and exit then copy none of their pages). For each command the server
forks; the child takes the command's arguments, environment, working directory, ``sys.path``
(as ``python`` would set it from there) and standard streams, reseeds what ``fork`` shares, and
runs the script or module as ``__main__``. It is a process of its own, with its own exit status
(``SystemExit``'s code, 1 after a traceback for an uncaught exception, minus the signal that
ended it), its ``atexit`` handlers and its own imports of the project's modules: only the
third-party libraries are preloaded, under the environment the server started with. A command
that is not ``[sys.executable, script, ...]`` or ``[sys.executable, "-m", module, ...]`` runs as
a plain subprocess, and so does every command where the server could not start single-threaded.
tests/slow/test_preloaded.py checks the children against plain subprocesses.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: Imported by the server, in this order: the libraries behind the project's commands. Not
#: wandb: it makes temporary directories when imported, which the first child to exit would
#: remove for all the others.
PRELOAD = (
    "numpy",
    "scipy.stats",
    "yaml",
    "torch",
    "torchvision",
    "lightning.pytorch",
    "torchmetrics",
    "jsonargparse",
)


# ---- the server and its children ---------------------------------------------------------


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _serve() -> dict[str, Any]:
    """Import :data:`PRELOAD`, then answer requests until this process is a child that is to
    run one: return it there. The server itself exits when its input ends."""
    for name in PRELOAD:
        importlib.import_module(name)
    gc.freeze()  # the children's collections skip what is shared: no copy of its pages
    threads = len(os.listdir("/proc/self/task"))
    _reply({"threads": threads})  # forking a process with other threads is unsafe
    for line in sys.stdin:
        request = json.loads(line)
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            return request
        _reply({"pid": pid})
        _, status = os.waitpid(pid, 0)
        _reply({"status": os.waitstatus_to_exitcode(status)})
    sys.exit(0)


def _search_path(request: dict[str, Any]) -> list[str]:
    """``sys.path`` as ``python`` sets it for the request: the script's folder (``-m``: the
    working directory), the request's PYTHONPATH, then the interpreter's own entries."""
    inherited = os.environ.get("PYTHONPATH", "")
    own = {os.path.abspath(p) for p in inherited.split(os.pathsep) if p}
    rest = [p for p in sys.path if os.path.abspath(p) not in own]
    wanted = request["env"].get("PYTHONPATH", "")
    # as python does, an empty entry (a trailing separator) stands for the working directory
    extra = [os.path.abspath(p) for p in wanted.split(os.pathsep)] if wanted else []
    script = request.get("script")
    first = os.path.dirname(os.path.realpath(script)) if script else os.getcwd()
    return [first, *extra, *rest]


def _run(request: dict[str, Any]) -> None:
    """In the child: become the requested process and run it."""
    for fd, name, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["stdout"], os.O_WRONLY | os.O_TRUNC | os.O_CREAT),
        (2, request["stderr"], os.O_WRONLY | os.O_TRUNC | os.O_CREAT),
    ):
        opened = os.open(name, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    os.chdir(request["cwd"])
    sys.path[:] = _search_path(request)
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    import numpy as np  # a fresh process draws numpy's global seed from the OS

    np.random.seed()  # noqa: NPY002 (the legacy global state is what fork shares)
    import runpy

    if request.get("module"):
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(request["script"], run_name="__main__")


# ---- the client ---------------------------------------------------------------------------


class Preloaded:
    """A server of this file for one environment (``env``: what the libraries see at import)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.server = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=Path(__file__).resolve().parents[1],
        )
        self._buffer = b""
        hello = self._message(timeout=300)
        self.usable = hello is not None and hello.get("threads") == 1

    def _message(self, timeout: float) -> dict[str, Any] | None:
        """The server's next line, or ``None`` after ``timeout`` seconds or at its end."""
        assert self.server.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.server.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.server.stdout.fileno(), 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def run(
        self, command: list[str], cwd: str | Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """``subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout)``, by a forked child of the server where the command allows."""
        request = _request(command)
        if request is None or not self.usable:
            return subprocess.run(
                command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
            )
        with tempfile.TemporaryDirectory() as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            request |= {"cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err)}
            assert self.server.stdin is not None
            self.server.stdin.write((json.dumps(request) + "\n").encode())
            self.server.stdin.flush()
            started = self._message(timeout=60)
            assert started is not None, "the server did not start the command"
            finished = self._message(timeout)
            if finished is None:
                os.kill(started["pid"], signal.SIGKILL)
                self._message(timeout=60)
                raise subprocess.TimeoutExpired(command, timeout, out.read_text(), err.read_text())
            return subprocess.CompletedProcess(
                command, finished["status"], out.read_text(), err.read_text()
            )

    def close(self) -> None:
        """End the server (after the command it runs, if any)."""
        if self.server.stdin is not None:
            self.server.stdin.close()
        try:
            self.server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()


def _request(command: list[str]) -> dict[str, Any] | None:
    """What the server needs of ``command``, or ``None`` for a form it does not run."""
    if len(command) < 2 or command[0] != sys.executable:
        return None
    if command[1] == "-m" and len(command) > 2:  # runpy sets argv[0] to the module's file
        return {"module": command[2], "argv": [command[2], *command[3:]]}
    if command[1].startswith("-"):
        return None
    return {"script": command[1], "argv": command[1:]}


if __name__ == "__main__":
    del sys.path[0]  # this file's folder (tests/): neither the server's imports nor the children's
    _run(_serve())
