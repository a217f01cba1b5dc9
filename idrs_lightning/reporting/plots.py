"""Figures of certification results (matplotlib's object API, no pyplot: no global backend
state): certified-accuracy curves, sigma(x) histograms and per-class accuracy, as PNG and
PDF."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from idrs_lightning.atomic_files import write_atomically
from idrs_lightning.reporting.metrics import certified_accuracy, dense_radii


def _figure() -> tuple[Figure, Any]:
    figure = Figure(figsize=(6, 4))
    return figure, figure.subplots()


def _save(figure: Figure, path: str | os.PathLike) -> None:
    """``path`` (PNG, 300 dpi) and the same figure as PDF beside it."""
    figure.tight_layout()
    png = Path(path)
    write_atomically(png, lambda target: figure.savefig(target, dpi=300, format="png"))
    pdf = png.with_suffix(".pdf")
    write_atomically(pdf, lambda target: figure.savefig(target, format="pdf"))


def plot_certified_accuracy(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    title: str | None = None,
) -> None:
    """Certified accuracy against radius from per-input radii, one line per run (like the
    paper's Figure 4)."""
    _save(certified_accuracy_figure(curves, title), path)


def certified_accuracy_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str | None = None
) -> Figure:
    """The figure of :func:`plot_certified_accuracy`: each curve in a colour (and, past 20,
    a line style) of its own; more than :data:`INSIDE_LEGEND` names go beside the axes."""
    figure, axes = _figure()
    grid = dense_radii([radius for radius, _ in curves.values()])
    styles = line_styles(len(curves))
    for (name, (radius, correct)), style in zip(curves.items(), styles, strict=True):
        axes.plot(grid, certified_accuracy(radius, correct, grid), label=name, **style)
    if title:
        axes.set_title(title, fontsize=9)
    axes.set_xlabel("radius (l2, input space)")
    axes.set_ylabel("certified accuracy")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    if len(curves) <= INSIDE_LEGEND:
        axes.legend()
    else:  # beside the axes, in columns of at most 20 names, so no curve is hidden
        columns = math.ceil(len(curves) / 20)
        figure.set_figwidth(6 + 2.5 * columns)
        axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7, ncols=columns)
    return figure


#: Curves whose legend fits inside the axes.
INSIDE_LEGEND = 5


def line_styles(count: int) -> list[dict[str, Any]]:
    """``count`` distinct colours (Tableau's 10 or 20, then a continuous map) and, past 20,
    alternating line styles, so that no two curves of one plot look alike."""
    from matplotlib import colormaps

    if count <= 10:
        colours = [colormaps["tab10"](i) for i in range(count)]
    elif count <= 20:
        colours = [colormaps["tab20"](i) for i in range(count)]
    else:
        colours = [colormaps["turbo"](i / (count - 1)) for i in range(count)]
    dashes = ("-", "--", ":", "-.")
    return [
        {"color": colour, "linestyle": dashes[i % 4] if count > 20 else "-"}
        for i, colour in enumerate(colours)
    ]


def plot_sigma_histogram(sigma: np.ndarray, path: str | os.PathLike) -> None:
    """Histogram of the noise levels sigma(x) of the certified inputs."""
    figure, axes = _figure()
    axes.hist(sigma[np.isfinite(sigma)], bins=40)  # NaN: a dual router that abstained
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
