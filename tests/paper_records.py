"""What a paper reproduction wrote (``python -m idrs_lightning.paper``), read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_record(out: Path, name: str) -> dict[str, Any]:
    """The results.json of reproduction ``name`` under ``out``."""
    return json.loads((out / name / "results.json").read_text())


def verdicts_of(record: dict[str, Any]) -> dict[str, str]:
    """Each compared quantity's verdict."""
    return {row["quantity"]: row["verdict"] for row in record["comparisons"]}
