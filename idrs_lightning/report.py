"""Every way a certification summary is shown: text and Markdown tables, plots, JSON files
(written atomically) and W&B (the paper's Figure 4 and Tables 2, 3). The figures themselves
are computed in :mod:`idrs_lightning.metrics`; ``certify.py``, ``compare`` and the callback
all report through the functions here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global backend state

from .atomic_files import write_atomically, write_text
from .metrics import certified_accuracy

#: The headline figures of a summary: key, label and format, in the order they are shown.
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("clean_accuracy", "clean accuracy", ".3f"),
    ("abstention_rate", "abstention", ".3f"),
    ("misclassification_rate", "misclassified", ".3f"),
    ("average_certified_radius", "ACR", ".3f"),
    ("class_accuracy_std", "class-wise std", ".4f"),
)


def run_name(r: float, separate_pb: bool) -> str:
    """Default label of a certification run: its smoothing and its runner-up bound."""
    name = "constant sigma" if r == 0 else f"IDRS r={r}"
    return name + (", separate pB" if separate_pb else "")


def format_table(name: str, summary: Mapping[str, Any]) -> str:
    """Certified accuracy at each radius plus the headline figures, as plain text."""
    head = "radius   " + " ".join(f"{r:6.2f}" for r in summary["radii"])
    row = "cert.acc " + " ".join(f"{a:6.3f}" for a in summary["certified_accuracy"])
    figures = "  ".join(f"{label} {summary[key]:{spec}}" for key, label, spec in HEADLINE)
    text = f"{name}\n{head}\n{row}\n{figures}  (n = {summary['count']})"
    if "forward_passes_mean" in summary:
        text += (
            f"\nforward passes: {summary['forward_passes_mean']:.0f} per input, "
            f"{summary['forward_passes_total']:.0f} in all"
        )
    if summary.get("estimation_skipped"):
        text += f"; estimation skipped for {summary['estimation_skipped']} misclassified inputs"
    return text


def comparison_table(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown table of the headline figures of several runs."""
    lines = [
        "| run | " + " | ".join(label for _, label, _ in HEADLINE) + " | n |",
        "|---" * (len(HEADLINE) + 2) + "|",
    ]
    for name, summary in summaries.items():
        cells = " | ".join(f"{summary[key]:{spec}}" for key, _, spec in HEADLINE)
        lines.append(f"| {name} | {cells} | {summary['count']} |")
    return "\n".join(lines)


def scalars(summary: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """Flat ``prefix/name`` scalars: the headline figures, ``accuracy_at_<R>`` for each grid
    radius and ``class_<c>_accuracy`` for each class present."""
    values = {f"{prefix}/{key}": float(summary[key]) for key, _, _ in HEADLINE}
    for radius, accuracy in zip(summary["radii"], summary["certified_accuracy"], strict=True):
        values[f"{prefix}/accuracy_at_{radius:g}"] = float(accuracy)
    for label, accuracy in enumerate(summary["per_class_accuracy"]):
        if not np.isnan(accuracy):
            values[f"{prefix}/class_{label}_accuracy"] = float(accuracy)
    return values


def wandb_charts(summary: Mapping[str, Any], prefix: str, title: str) -> dict[str, Any]:
    """The certified-accuracy curve as a W&B line plot and the per-class accuracy table."""
    import wandb

    curve = wandb.Table(
        columns=["radius", "certified_accuracy"],
        data=list(zip(summary["radii"], summary["certified_accuracy"], strict=True)),
    )
    return {
        f"{prefix}/curve": wandb.plot.line(curve, "radius", "certified_accuracy", title=title),
        f"{prefix}/per_class": wandb.Table(
            columns=["class", "accuracy"], data=list(enumerate(summary["per_class_accuracy"]))
        ),
    }


def write_summary(folder: Path, stem: str, summary: Mapping[str, Any], title: str) -> None:
    """``<stem>.json`` (the summary) and ``<stem>.png`` (its certified-accuracy table)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / f"{stem}.json", json.dumps(summary, indent=2, default=str))
    plot_summary_curve(summary, title, folder / f"{stem}.png")


def write_run_report(
    out: Path, name: str, summary: Mapping[str, Any], results: Mapping[str, np.ndarray]
) -> None:
    """A certification run's files: summary, table and plots of its results."""
    write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    write_text(out / "table.txt", format_table(name, summary) + "\n")
    plot_certified_accuracy(
        {name: (results["radius"], results["correct"])}, out / "certified_accuracy.png"
    )
    plot_per_class(summary["per_class_accuracy"], out / "per_class_accuracy.png")
    plot_sigma_histogram(results["sigma"], out / "sigma_histogram.png")


def log_run_to_wandb(
    out: Path, name: str, summary: Mapping[str, Any], project: str, offline: bool
) -> None:
    """A W&B run (job type "certify") with the figures, the charts and the run's plots."""
    import wandb

    run = wandb.init(
        project=project,
        name=f"certify {name}",
        dir=str(out),
        mode="offline" if offline else "online",
        config=summary["settings"],
        job_type="certify",
    )
    run.summary.update(scalars(summary, "certify"))
    charts = wandb_charts(summary, "certify", f"certified accuracy, {name}")
    images = {f"plots/{p.stem}": wandb.Image(str(p)) for p in sorted(out.glob("*.png"))}
    run.log({**charts, **images})
    run.finish()


def _figure() -> tuple[Figure, Any]:
    figure = Figure(figsize=(6, 4))
    return figure, figure.subplots()


def _save(figure: Figure, path: str | os.PathLike) -> None:
    figure.tight_layout()
    write_atomically(Path(path), lambda target: figure.savefig(target, dpi=120, format="png"))


def plot_certified_accuracy(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike
) -> None:
    """Certified accuracy against radius, one line per run (like the paper's Figure 4)."""
    figure, axes = _figure()
    for name, (radius, correct) in curves.items():
        grid = np.linspace(0.0, max(float(np.max(radius, initial=0.0)) * 1.05, 1e-3), 400)
        axes.plot(grid, certified_accuracy(radius, correct, grid), label=name)
    axes.set_xlabel("radius (l2, input space)")
    axes.set_ylabel("certified accuracy")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def plot_summary_curve(summary: Mapping[str, Any], title: str, path: str | os.PathLike) -> None:
    """The certified-accuracy table of a summary as a step curve."""
    figure, axes = _figure()
    axes.step(summary["radii"], summary["certified_accuracy"], where="post")
    axes.set_xlabel("radius (l2, input space)")
    axes.set_ylabel("certified accuracy")
    axes.set_ylim(0, 1)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    _save(figure, path)


def plot_sigma_histogram(sigma: np.ndarray, path: str | os.PathLike) -> None:
    """Histogram of the noise levels sigma(x) of the certified inputs."""
    figure, axes = _figure()
    axes.hist(sigma, bins=40)
    axes.set_xlabel("sigma(x)")
    axes.set_ylabel("inputs")
    _save(figure, path)


def plot_per_class(per_class: Sequence[float], path: str | os.PathLike) -> None:
    """Clean accuracy of the smoothed classifier per class (the fairness view, Table 3)."""
    figure, axes = _figure()
    axes.bar(np.arange(len(per_class)), per_class)
    axes.set_xlabel("class")
    axes.set_ylabel("clean accuracy of the smoothed classifier")
    axes.set_ylim(0, 1)
    _save(figure, path)
