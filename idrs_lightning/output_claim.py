"""One output directory per certification run: its settings record, and refusing to mix.

``certify_settings.json`` records every setting that determines the rows of ``results.tsv``.
A run that finds a record of other settings refuses to append, naming what differs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RECORD = "certify_settings.json"


def claim_output(out: Path, settings: dict[str, Any]) -> None:
    """Write ``settings`` to ``out``'s record, or raise if it records other settings.

    Raises:
        ValueError: naming each differing setting and its recorded value.
    """
    record = out / RECORD
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
    partial = record.with_suffix(".tmp")  # written whole or not at all, even if killed
    partial.write_text(text)
    os.replace(partial, record)
