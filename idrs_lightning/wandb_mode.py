"""Whether W&B logs online or offline, decided once for training and certification runs.

Offline unless credentials exist, ``WANDB_MODE`` does not ask for offline, and the W&B server
answers within a few seconds: a run never stalls or fails because the dashboard is out of
reach (an offline run is uploaded later with ``wandb sync``).
"""

from __future__ import annotations

import functools
import logging
import netrc
import os
import socket
from urllib.parse import urlparse

log = logging.getLogger(__name__)

#: Seconds to wait for the W&B server before logging offline.
CONNECT_TIMEOUT = 3.0


def wandb_credentials_present() -> bool:
    """Whether W&B can log online: an API key in the environment or in ``~/.netrc``."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


@functools.cache
def _server_reachable(base_url: str) -> bool:
    address = urlparse(base_url)
    port = address.port or (443 if address.scheme == "https" else 80)
    try:
        with socket.create_connection((address.hostname, port), timeout=CONNECT_TIMEOUT):
            return True
    except OSError:
        return False


def wandb_offline() -> bool:
    """Offline unless credentials exist, ``WANDB_MODE`` allows online and the server answers."""
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun", "disabled"):
        return True
    if not wandb_credentials_present():
        return True
    base_url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    if not _server_reachable(base_url):
        log.warning(
            "W&B server %s does not answer; logging offline (wandb sync uploads later)", base_url
        )
        return True
    return False
