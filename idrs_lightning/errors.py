"""How the command-line tools report a user's mistake: one line, exit status 2.

A bad option, file or value raises :class:`~idrs_lightning.validation.InvalidSetting` (or
another ``ValueError`` / ``OSError`` naming what is wrong) before any expensive work; the
entry points print ``error: <message>``, with the setting renamed to the option as the user
typed it, and exit with status 2. Set ``IDRS_DEBUG=1`` for the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from typing import NoReturn, TypeVar

from idrs_lightning.validation import InvalidSetting

DEBUG_VARIABLE = "IDRS_DEBUG"
T = TypeVar("T")


def message_for(error: Exception, options: Mapping[str, str]) -> str:
    """The error's message, naming the front end's option where it has one."""
    if isinstance(error, InvalidSetting) and error.setting in options:
        return error.for_option(options[error.setting])
    return str(error)


def exit_on_user_error(
    main: Callable[[], T],
    options: Mapping[str, str] | None = None,
    also: tuple[type[Exception], ...] = (),
    interrupted: str = "interrupted",
) -> T:
    """Run ``main``; a user's mistake (a ``ValueError``, an ``OSError``, or one of the types in
    ``also``, such as a library's configuration error) becomes one line on stderr and exit
    status 2; Ctrl-C becomes the line ``interrupted`` (say how to resume) and exit status
    130."""
    try:
        return main()
    except KeyboardInterrupt:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        sys.stderr.write(f"{interrupted}\n")
        raise SystemExit(130) from None
    except (ValueError, OSError, *also) as error:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        lines = message_for(error, options or {}).splitlines() or [type(error).__name__]
        sys.stderr.write(f"error: {' '.join(line.strip() for line in lines)}\n")
        raise SystemExit(2) from None


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line ``error: ...`` and exit status 2
    (``--help`` still shows the usage)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(2)
