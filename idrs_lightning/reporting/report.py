"""Every way a certification summary is shown: text and Markdown tables, plots, JSON files
(written atomically) and W&B (the paper's Figure 4 and Tables 2, 3). The figures themselves
are computed in :mod:`idrs_lightning.reporting.metrics`; ``certify.py``, ``compare`` and the
callback all report through the functions here.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global backend state

from idrs_lightning.atomic_files import write_atomically, write_text
from idrs_lightning.reporting.dashboard import GROUP_VARIABLE, RUN_ID_FILE, flat_config, run_id
from idrs_lightning.reporting.metrics import certified_accuracy
from idrs_lightning.reporting.wandb_logging import init_run

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


def curve_label(prefix: str, settings: Mapping[str, Any]) -> str:
    """Legend entry of a callback curve: ``certify`` is the run's sigma(x) (IDRS when its
    ``r > 0``), ``certify_constant`` the constant ``sigma_b`` of Cohen et al."""
    if prefix == "certify":  # distinct from the comparison's label even where r = 0
        rate = settings["r"]
        return f"IDRS r={rate:g}" if rate > 0 else f"sigma={settings['sigma_b']:g} (r=0)"
    return f"constant sigma={settings['sigma_b']:g}"


def figure_title(settings: Mapping[str, Any], count: int) -> str:
    """Title of a callback figure: when it was made and with which settings."""
    mode = "sequential, n <=" if settings["certify_callback.sequential"] else "n ="
    return (
        f"after epoch {settings['epoch'] + 1}: sigma_b={settings['sigma_b']:g}, "
        f"r={settings['r']:g}; {mode} {settings['certify_callback.n']}, "
        f"alpha={settings['certify_callback.alpha']:g}, {count} inputs"
    )


def _dense_radii(summaries: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """400 radii from 0 past the largest certified radius of any of ``summaries``."""
    largest = max((float(np.max(s["radius"], initial=0.0)) for s in summaries), default=0.0)
    return np.linspace(0.0, max(largest * 1.05, 1e-3), 400)


def _curve_table(grid: np.ndarray, accuracy: np.ndarray) -> Any:
    """A W&B table of one certified-accuracy curve: ``radius``, ``certified_accuracy``."""
    import wandb

    rows = [[float(r), float(a)] for r, a in zip(grid, accuracy, strict=True)]
    return wandb.Table(columns=["radius", "certified_accuracy"], data=rows)


def epoch_charts(
    summaries: Mapping[str, Mapping[str, Any]],
    history: Sequence[tuple[int, Mapping[str, Any]]],
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """W&B charts of one certified epoch, drawn from the per-input radii (exact, not through
    grid points): ``<prefix>/certified_accuracy`` and ``<prefix>/per_class`` per summary,
    ``certify/idrs_vs_constant`` (both curves) with the constant-sigma comparison, and
    ``certify/curves_by_epoch`` (the run's curve at every certified epoch so far)."""
    import wandb

    grid = _dense_radii(list(summaries.values()) + [s for _, s in history])
    curves = {
        prefix: certified_accuracy(np.asarray(s["radius"]), np.asarray(s["correct"]), grid)
        for prefix, s in summaries.items()
    }
    charts: dict[str, Any] = {}
    for prefix, summary in summaries.items():
        table = _curve_table(grid, curves[prefix])
        label = curve_label(prefix, settings)
        charts[f"{prefix}/certified_accuracy"] = wandb.plot.line(
            table, "radius", "certified_accuracy", title=f"{label}: certified accuracy"
        )
        charts[f"{prefix}/per_class"] = wandb.Table(
            columns=["class", "accuracy"], data=list(enumerate(summary["per_class_accuracy"]))
        )
    if len(summaries) > 1:
        charts["certify/idrs_vs_constant"] = wandb.plot.line_series(
            xs=grid.tolist(),
            ys=[curves[prefix].tolist() for prefix in summaries],
            keys=[curve_label(prefix, settings) for prefix in summaries],
            title=f"certified accuracy, epoch {settings['epoch']}",
            xname="radius",
        )
    charts["certify/curves_by_epoch"] = wandb.plot.line_series(
        xs=grid.tolist(),
        ys=[
            certified_accuracy(np.asarray(s["radius"]), np.asarray(s["correct"]), grid).tolist()
            for _, s in history
        ],
        keys=[f"epoch {epoch}" for epoch, _ in history],
        title=f"{curve_label('certify', settings)}: certified accuracy by epoch",
        xname="radius",
    )
    return charts


def write_json(path: Path, content: Mapping[str, Any]) -> None:
    """``content`` as indented JSON, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(content, indent=2, default=str))


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
    out: Path,
    name: str,
    summary: Mapping[str, Any],
    results: Mapping[str, np.ndarray],
    project: str,
    offline: bool,
) -> None:
    """The certification run in W&B (job type ``certify``): flat config (the data settings at
    top level, as in training runs), scalars in the summary, the curve from the per-input
    radii, the plots, and its links: ``train_run_id`` (config) and group name the training run
    of the checkpoint, the results file and summary are an artifact of the run, and online the
    checkpoint is recorded as an artifact it used (W&B records uses online only). The run id is
    kept in ``out``, so a resumed certification continues the same W&B run."""
    import wandb

    settings = dict(summary["settings"])
    config = {**{k: v for k, v in settings.items() if k != "data"}, **settings.get("data", {})}
    checkpoint = Path(str(settings["checkpoint"])).resolve()
    training = checkpoint.parent.parent / RUN_ID_FILE  # runs/<name>/checkpoints/<file>
    if training.exists():
        config["train_run_id"] = training.read_text().strip()
    run = init_run(
        offline,
        project=project,
        name=f"certify {name}",
        dir=str(out),
        config=flat_config(config),
        job_type="certify",
        group=os.environ.get(GROUP_VARIABLE) or config.get("train_run_id"),
        id=run_id(out),
        resume="allow",
    )
    run.summary.update(scalars(summary, "certify"))
    radius, correct = np.asarray(results["radius"]), np.asarray(results["correct"], dtype=bool)
    grid = _dense_radii([{"radius": radius}])
    curve = _curve_table(grid, certified_accuracy(radius, correct, grid))
    images = {f"plots/{p.stem}": wandb.Image(str(p)) for p in sorted(out.glob("*.png"))}
    chart = wandb.plot.line(
        curve, "radius", "certified_accuracy", title=f"certified accuracy, {name}"
    )
    run.log({"certify/certified_accuracy": chart, **images})
    if not run.offline:  # W&B records artifact uses online only
        model = wandb.Artifact(f"checkpoint-{settings['checkpoint_sha256'][:12]}", type="model")
        model.add_reference(checkpoint.as_uri(), checksum=False)
        run.use_artifact(model)
    produced = wandb.Artifact(f"results-{run.id}", type="certification-results")
    produced.add_file(str(out / "results.tsv"))
    produced.add_file(str(out / "summary.json"))
    run.log_artifact(produced)
    run.finish()


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
    grid = _dense_radii([{"radius": radius} for radius, _ in curves.values()])
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
