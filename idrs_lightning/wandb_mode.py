"""Whether W&B logs online or offline, decided once for training and certification runs."""

from __future__ import annotations

import netrc
import os


def wandb_credentials_present() -> bool:
    """Whether W&B can log online: an API key in the environment or in ``~/.netrc``."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_offline() -> bool:
    """Offline unless credentials exist and ``WANDB_MODE`` does not ask for offline."""
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun", "disabled"):
        return True
    return not wandb_credentials_present()
