"""A W&B server that is not there, never answers, answers with errors or refuses the key
means logging offline, not a stall, for certification and for training."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.commands import CHECKPOINT

pytestmark = pytest.mark.slow  # a certification or training run per case


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


@pytest.mark.parametrize("kind", ["closed", "silent", "errors", "refusing"])
def test_a_wandb_server_that_fails_means_offline_not_a_stall(
    tmp_path, offline_env, commands, kind
) -> None:
    with _wandb_server(kind) as url:
        start = time.monotonic()
        online = _online_env(offline_env, url)
        done = commands.certify(
            CHECKPOINT, tmp_path / "out", tmp_path, "--indices", "0:2", env=online
        )
        took = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    assert took < 60, f"no stall waiting for the server ({took:.0f} s)"
    assert done.stderr.count("logging offline") == 1, done.stderr[-3000:]
    assert list((tmp_path / "out" / "wandb").glob("offline-run-*")), "an offline copy"
    assert len((tmp_path / "out" / "results.tsv").read_text().splitlines()) == 3


@pytest.mark.parametrize("kind", ["silent", "refusing"])
def test_training_beside_a_failing_wandb_server_logs_offline(
    tmp_path, offline_env, commands, kind
) -> None:
    with _wandb_server(kind) as url:
        start = time.monotonic()
        done = commands.train(tmp_path, "--run_name=quiet", env=_online_env(offline_env, url))
        took = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    assert took < 90, f"no stall waiting for the server ({took:.0f} s)"
    assert done.stderr.count("logging offline") == 1, done.stderr[-3000:]
    assert list((tmp_path / "runs" / "quiet" / "wandb").glob("offline-run-*"))
