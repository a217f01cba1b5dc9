"""One output directory per certification run: its settings record, and refusing to mix.

``certify_settings.json`` records every setting that determines the rows of ``results.tsv``,
with the checkpoint's content digest and the test data's identity. A run that finds a record
of other settings, or results without a record, refuses to append, naming what differs; the
record is written only after every check has passed, so a refused run claims nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .results import check_results_file

RECORD = "certify_settings.json"


def claim_output(out: Path, settings: dict[str, Any]) -> None:
    """Create ``out`` and write ``settings`` to its record, or raise if it holds results of
    another run (a record of other settings, results without a record, a foreign file).

    Raises:
        ValueError: naming each differing setting and its recorded value, or the file.
    """
    record = out / RECORD
    results = sorted(out.glob("results*.tsv"))
    holding = [path for path in results if check_results_file(path)]
    if holding and not record.exists():
        raise ValueError(
            f"{holding[0]} has no {RECORD} beside it, so the run that wrote it is unknown; "
            "choose another output directory"
        )
    text = json.dumps(settings, indent=2, sort_keys=True, default=str)
    if record.exists() and record.read_text() != text:
        try:
            recorded = json.loads(record.read_text())
        except json.JSONDecodeError:
            recorded = {}
        current = json.loads(text)
        differing = sorted(
            f"{key} (not recorded: written by an older certify.py)"
            if key not in recorded
            else f"{key}={recorded[key]!r} there"
            for key in current.keys() | recorded.keys()
            if recorded.get(key) != current.get(key)
        )
        raise ValueError(
            f"{out} holds results of a run with other settings: {', '.join(differing)} "
            f"(see {record.name}); choose another output directory"
        )
    out.mkdir(parents=True, exist_ok=True)
    partial = record.with_suffix(".tmp")  # written whole or not at all, even if killed
    partial.write_text(text)
    os.replace(partial, record)
