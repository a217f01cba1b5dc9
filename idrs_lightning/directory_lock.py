"""One writer per output or run directory: an advisory lock held while a process writes there.

The lock is ``fcntl.flock`` on ``<directory>/.lock``, which names its holder (process, host,
start time, command). The operating system releases it when the holder exits, however it
exits, so a lock left by a crashed or killed run is stale by construction and the next run
takes it. The file itself stays: removing it would let two processes lock two different files
of one name. On a file system without locks the run goes ahead with a warning.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import TextIO

LOCK_FILE = ".lock"
#: What ``flock`` answers on file systems without locks (some NFS and Lustre mounts).
UNSUPPORTED = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)
log = logging.getLogger(__name__)

#: Locks this process holds, by directory (a second request from the same process reuses one).
_HELD: dict[Path, TextIO] = {}


class DirectoryBusy(ValueError):
    """Another process writes into the directory."""


def _holder(file: Path) -> str:
    try:
        text = file.read_text().strip()
    except OSError:
        text = ""
    return text or "another process"


def acquire(directory: Path) -> None:
    """Lock ``directory`` (which must exist) for this process until :func:`release` or exit.

    Raises:
        DirectoryBusy: naming the directory and the process that holds it.
        OSError: naming the lock file, where it cannot be created (a read-only directory).
    """
    key = directory.resolve()
    if key in _HELD:
        return
    path = key / LOCK_FILE
    try:
        handle = path.open("a+")
    except OSError as error:
        raise OSError(f"cannot lock {directory} ({path}: {error.strerror or error})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DirectoryBusy(
            f"{directory} is being written by {_holder(path)}: wait until it ends, or choose "
            "another directory"
        ) from None
    except OSError as error:
        handle.close()
        if error.errno not in UNSUPPORTED:
            raise OSError(f"cannot lock {path}: {error.strerror or error}") from None
        log.warning(
            "%s cannot be locked on this file system (%s): make sure no other process writes "
            "into %s",
            path,
            error.strerror,
            directory,
        )
        return
    handle.seek(0)
    handle.truncate()
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
    handle.write(
        f"process {os.getpid()} on {socket.gethostname()} since "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({command})\n"
    )
    handle.flush()
    _HELD[key] = handle


def holds(directory: Path) -> bool:
    """Whether this process holds the lock on ``directory``."""
    return directory.resolve() in _HELD


def release(directory: Path) -> None:
    """Release this process's lock on ``directory`` (nothing if it holds none)."""
    handle = _HELD.pop(directory.resolve(), None)
    if handle is not None:
        handle.close()  # closing the file releases the flock
