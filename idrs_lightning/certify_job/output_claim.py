"""One output directory per certification run: its settings record, one writer, refusing to mix.

``certify_settings.json`` records every setting that determines the rows of ``results.tsv``,
with the checkpoint's content digest and the test data's identity. A run that finds a record
of other settings, or results without a record, refuses to append, naming what differs; an
unreadable record is named as such. The checkpoint's path is kept for reference but not
compared: a checkpoint moved or reached by another path is the same model when its content is.

The record is checked once before the directory is claimed, then the claim locks the directory
(:mod:`.directory_lock`: one writer at a time) and checks again. A run that fails after its
claim and before its first row releases it (:meth:`Claim.release`), so the corrected command
finds the directory as it was.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idrs_lightning import directory_lock
from idrs_lightning.certify_job.results import check_results_file, read_rows

RECORD = "certify_settings.json"
#: Recorded for reference, not compared: where the checkpoint was read from.
LOCATION_KEYS = ("checkpoint",)


def read_record(record: Path) -> dict[str, Any]:
    """The settings in ``record``.

    Raises:
        ValueError: naming the file, when it is not JSON or not a mapping of settings.
    """
    try:
        value = json.loads(record.read_text())
    except UnicodeDecodeError:
        value = None
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{record} is not valid JSON ({error.msg}, line {error.lineno}): it was edited or "
            "damaged, so the run that wrote this directory is unknown; choose another output "
            "directory"
        ) from None
    if not isinstance(value, dict):
        kind = "no text" if value is None else f"a JSON {type(value).__name__}"
        raise ValueError(
            f"{record} is not a settings record (it holds {kind}, not a mapping of settings): "
            "choose another output directory"
        )
    return value


def check_claim(out: Path, settings: dict[str, Any]) -> None:
    """Refuse ``out`` if it holds results of another run (rows with a record of other
    settings, rows without a record, a foreign file); read only, so a refused run changes
    nothing. A record without rows (a run killed before its first row) holds no results.

    Raises:
        ValueError: naming each differing setting and its recorded value, or the file.
    """
    record = out / RECORD
    holding = [path for path in sorted(out.glob("results*.tsv")) if _rows_in(path)]
    if not holding:
        return
    if not record.exists():
        raise ValueError(
            f"{holding[0]} has no {RECORD} beside it, so the run that wrote it is unknown; "
            "choose another output directory"
        )
    recorded = read_record(record)
    if "data" in recorded and isinstance(recorded["data"], dict):  # older records held root
        recorded["data"] = {k: v for k, v in recorded["data"].items() if k != "root"}
    current = json.loads(json.dumps(settings, default=str))
    differing = sorted(
        f"{key} (not recorded: written by an older certify.py)"
        if key not in recorded
        else f"{key}={recorded[key]!r} there"
        for key in current.keys() | recorded.keys()
        if key not in LOCATION_KEYS and recorded.get(key) != current.get(key)
    )
    if differing:
        raise ValueError(
            f"{out} holds results of a run with other settings: {', '.join(differing)} "
            f"(see {record.name}); choose another output directory"
        )


def _rows_in(path: Path) -> bool:
    """Whether a results file holds a complete row (raises for a foreign file)."""
    return check_results_file(path) and bool(read_rows(path))


@dataclass
class Claim:
    """A locked output directory: whether this run ``created`` it and wrote its ``record``."""

    out: Path
    created: bool
    recorded: bool

    def release(self) -> None:
        """After a failure: if no row was written, remove what this run created (the
        directory, or the record and an empty results file), so a rerun finds it as before;
        then unlock."""
        if not directory_lock.holds(self.out):
            return  # another process's directory: not this run's to clean
        try:
            written = any(_rows_in(path) for path in self.out.glob("results*.tsv"))
        except ValueError:  # a foreign file: not ours to remove
            written = True
        if not written and self.created:
            shutil.rmtree(self.out, ignore_errors=True)
        elif not written and self.recorded:
            (self.out / RECORD).unlink(missing_ok=True)
            for path in self.out.glob("results*.tsv"):
                path.unlink()
        directory_lock.release(self.out)  # last: nobody locks a folder being removed

    def finish(self) -> None:
        """The run is over: unlock."""
        directory_lock.release(self.out)


def claim_output(out: Path, settings: dict[str, Any]) -> Claim:
    """Create and lock ``out``, check it again under the lock and record ``settings`` (a
    directory with a matching record keeps its record; one without rows gets this run's).

    Raises:
        ValueError: as :func:`check_claim`, or naming the process that writes into ``out``.
    """
    check_claim(out, settings)
    try:
        out.mkdir(parents=True)
        created = True
    except FileExistsError:
        created = False
    directory_lock.acquire(out)
    claim = Claim(out, created, recorded=False)
    try:
        check_claim(out, settings)  # another run may have written in the meantime
        record = out / RECORD
        text = json.dumps(settings, indent=2, sort_keys=True, default=str)
        if not _same_record(record, text):
            partial = record.with_suffix(".tmp")  # written whole or not at all, even if killed
            partial.write_text(text)
            os.replace(partial, record)
            claim.recorded = True
    except BaseException:
        claim.release()
        raise
    return claim


def _same_record(record: Path, text: str) -> bool:
    """Whether ``record`` holds the settings of ``text`` (however it is formatted)."""
    try:
        return read_record(record) == json.loads(text)
    except (OSError, ValueError):
        return False
