"""A certification run's report on disk: its summary as JSON, its table and its plots (each
file written atomically)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from idrs_lightning.atomic_files import write_text
from idrs_lightning.reporting.metrics import CertificationResult
from idrs_lightning.reporting.plots import (
    plot_certified_accuracy,
    plot_per_class,
    plot_sigma_histogram,
)
from idrs_lightning.reporting.summary import CertificationSummary
from idrs_lightning.reporting.tables import format_table


def write_json(path: Path, content: Mapping[str, Any]) -> None:
    """``content`` as indented JSON, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(content, indent=2, default=str))


def write_run_report(
    out: Path, name: str, summary: CertificationSummary, results: Mapping[str, np.ndarray]
) -> None:
    """A certification run's files: summary, table and plots of its results."""
    write_json(out / "summary.json", summary.to_json())
    write_text(out / "table.txt", format_table(name, summary) + "\n")
    plot_certified_accuracy(
        {name: (results["radius"], results["correct"])}, out / "certified_accuracy.png"
    )
    plot_per_class(summary.per_class_accuracy, out / "per_class_accuracy.png")
    plot_sigma_histogram(results["sigma"], out / "sigma_histogram.png")


def write_epoch_report(
    folder: Path,
    record: Mapping[str, Any],
    results: Mapping[str, CertificationResult],
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    title: str,
) -> None:
    """A certified epoch's files: ``epoch_<e>.json`` for the run's sigma(x) and
    ``epoch_<e>_constant.json`` for constant sigma (each result with ``record`` as its
    ``settings``), and one figure ``epoch_<e>.png`` / ``.pdf`` of ``curves``."""
    epoch = record["epoch"]
    for prefix, result in results.items():
        suffix = "" if prefix == "certify" else "_constant"
        write_json(folder / f"epoch_{epoch}{suffix}.json", result.to_json() | {"settings": record})
    plot_certified_accuracy(curves, folder / f"epoch_{epoch}.png", title)
