"""Tables and figures of certification results (the paper's Figure 4, Tables 2 and 3)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global backend state


def format_table(name: str, summary: Mapping[str, object]) -> str:
    """Certified accuracy at each radius plus the headline figures, as plain text."""
    radii = summary["radii"]
    accuracy = summary["certified_accuracy"]
    head = "radius   " + " ".join(f"{r:6.2f}" for r in radii)
    row = "cert.acc " + " ".join(f"{a:6.3f}" for a in accuracy)
    figures = (
        f"clean accuracy {summary['clean_accuracy']:.3f}  "
        f"abstain {summary['abstention_rate']:.3f}  "
        f"misclassified {summary['misclassification_rate']:.3f}  "
        f"ACR {summary['average_certified_radius']:.3f}  "
        f"class-wise std {summary['class_accuracy_std']:.4f}  "
        f"(n = {summary['count']})"
    )
    return f"{name}\n{head}\n{row}\n{figures}"


def plot_certified_accuracy(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike
) -> None:
    """Certified accuracy against radius, one line per run (like the paper's Figure 4)."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for name, (radius, correct) in curves.items():
        grid = np.linspace(0.0, max(float(np.max(radius, initial=0.0)) * 1.05, 1e-3), 400)
        accuracy = ((radius[None, :] >= grid[:, None]) & correct[None, :]).mean(axis=1)
        axes.plot(grid, accuracy, label=name)
    axes.set_xlabel("radius (l2, input space)")
    axes.set_ylabel("certified accuracy")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def plot_summary_curve(summary: Mapping[str, object], title: str, path: str | os.PathLike) -> None:
    """The certified-accuracy table of a summary as a step curve."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    axes.step(summary["radii"], summary["certified_accuracy"], where="post")
    axes.set_xlabel("radius (l2, input space)")
    axes.set_ylabel("certified accuracy")
    axes.set_ylim(0, 1)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def plot_sigma_histogram(sigma: np.ndarray, path: str | os.PathLike) -> None:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    axes.hist(sigma, bins=40)
    axes.set_xlabel("sigma(x)")
    axes.set_ylabel("inputs")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def plot_per_class(per_class: Sequence[float], path: str | os.PathLike) -> None:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    axes.bar(np.arange(len(per_class)), per_class)
    axes.set_xlabel("class")
    axes.set_ylabel("clean accuracy of the smoothed classifier")
    axes.set_ylim(0, 1)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
