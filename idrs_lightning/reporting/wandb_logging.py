"""Whether and how W&B logs online: every contact bounded in time, offline as the fall back.

Offline unless credentials exist, ``WANDB_MODE`` does not ask for offline, and the W&B server
answers an HTTP request within a few seconds with anything but a server error (a server that
accepts connections and never replies, or answers 5xx, means offline). An online start that
still fails or outlasts :data:`INIT_TIMEOUT` starts the same run offline, with one warning
(:func:`init_run`, :class:`FallbackWandbLogger`), and an online run's upload at its end waits
at most :data:`FINISH_TIMEOUT`: W&B never stalls or fails training or certification, and
what was not uploaded is uploaded later with ``wandb sync``.
"""

from __future__ import annotations

import functools
import http.client
import logging
import netrc
import os
import urllib.error
import urllib.request
from typing import Any

from lightning.pytorch.loggers import WandbLogger

log = logging.getLogger(__name__)

#: Seconds to wait for the W&B server's answer before logging offline.
CONNECT_TIMEOUT = 3.0
#: Seconds an online ``wandb.init`` may take before the run starts offline instead.
INIT_TIMEOUT = 30.0
#: Seconds an online run's ``finish`` waits for its upload (the rest stays in the run's
#: directory for ``wandb sync``).
FINISH_TIMEOUT = 60.0


def wandb_credentials_present() -> bool:
    """Whether W&B can log online: an API key in the environment or in ``~/.netrc``."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


@functools.cache
def _server_answers(base_url: str) -> bool:
    """Whether ``base_url`` answers an HTTP request in time with no server error."""
    try:
        with urllib.request.urlopen(base_url, timeout=CONNECT_TIMEOUT) as response:
            return response.status < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        return False


def wandb_offline() -> bool:
    """Offline unless credentials exist, ``WANDB_MODE`` allows online and the server answers."""
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun", "disabled"):
        return True
    if not wandb_credentials_present():
        return True
    base_url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    if not _server_answers(base_url):
        log.warning(
            "W&B server %s does not answer; logging offline (wandb sync uploads later)", base_url
        )
        return True
    return False


def _fell_back(error: BaseException) -> None:
    """One warning; the failed online start is discarded so that the offline run can take
    its run id."""
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    log.warning(
        "W&B could not start online (%s); logging offline (wandb sync uploads later)", reason
    )
    discard_run()


def discard_run() -> None:
    """End this process's W&B run, if any, after a failure: a later ``wandb.init`` starts a
    run of its own instead of returning the failed one."""
    import wandb

    wandb.teardown()


def online_settings() -> Any:
    """W&B settings that bound an online run's start and finish in time."""
    import wandb

    return wandb.Settings(init_timeout=INIT_TIMEOUT, finish_timeout=FINISH_TIMEOUT)


def init_run(offline: bool, **arguments: Any) -> Any:
    """``wandb.init(**arguments)`` online (bounded by :data:`INIT_TIMEOUT`) unless ``offline``;
    an online start that fails starts the run offline instead."""
    import wandb

    if offline:
        return wandb.init(mode="offline", **arguments)
    try:
        return wandb.init(mode="online", settings=online_settings(), **arguments)
    except Exception as error:  # a slow or refusing server: keep an offline copy instead
        _fell_back(error)
        return wandb.init(mode="offline", **arguments)


class FallbackWandbLogger(WandbLogger):
    """Lightning's W&B logger whose online start is bounded in time and falls back to an
    offline run (:func:`init_run`)."""

    def __init__(self, *args: Any, offline: bool = False, **kwargs: Any) -> None:
        if not offline:
            kwargs["settings"] = online_settings()
        super().__init__(*args, offline=offline, **kwargs)

    @property
    def experiment(self) -> Any:
        try:
            return super().experiment
        except Exception as error:
            if self._offline:
                raise
            _fell_back(error)
            self._offline = True
            self._wandb_init.pop("settings", None)
            self._wandb_init["mode"] = "offline"
            return super().experiment
