"""Reading YAML files (configs, sweeps) with errors that name the file and the line."""

from __future__ import annotations

import os
from pathlib import Path

import yaml


def load_yaml(path: str | os.PathLike) -> object:
    """The file's content.

    Raises:
        ValueError: naming the file, and the line and column of a syntax error.
        OSError: for a file that cannot be read (its message names it).
    """
    try:
        return yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise ValueError(f"{path} is not valid YAML: {problem}{where}") from None


def config_arguments(args: list[str]) -> list[str]:
    """The files named by ``--config FILE`` / ``--config=FILE`` in a command line."""
    files = [arg.split("=", 1)[1] for arg in args if arg.startswith("--config=")]
    files += [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--config"]
    return files
