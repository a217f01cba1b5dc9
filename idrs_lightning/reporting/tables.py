"""A certification summary as text: the plain-text and Markdown tables, and the labels and
titles of curves and figures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from idrs_lightning.reporting.summary import HEADLINE, CertificationSummary
from idrs_lightning.settings import CertificationSettings


def run_name(r: float, separate_pb: bool) -> str:
    """Default label of a certification run: its smoothing and its runner-up bound."""
    name = "constant sigma" if r == 0 else f"IDRS r={r}"
    return name + (", separate pB" if separate_pb else "")


def format_table(name: str, summary: CertificationSummary) -> str:
    """Certified accuracy at each radius plus the headline figures, as plain text."""
    head = "radius   " + " ".join(f"{r:6.2f}" for r in summary.radii)
    row = "cert.acc " + " ".join(f"{a:6.3f}" for a in summary.certified_accuracy)
    figures = "  ".join(f"{label} {value:{spec}}" for label, value, spec in summary.headline())
    text = f"{name}\n{head}\n{row}\n{figures}  (n = {summary.count})"
    if summary.forward_passes_mean is not None:
        text += (
            f"\nforward passes: {summary.forward_passes_mean:.0f} per input, "
            f"{summary.forward_passes_total:.0f} in all"
        )
    if summary.estimation_skipped:
        text += f"; estimation skipped for {summary.estimation_skipped} misclassified inputs"
    return text


def comparison_table(summaries: Mapping[str, CertificationSummary]) -> str:
    """Markdown table of the headline figures of several runs."""
    lines = [
        "| run | " + " | ".join(label for _, label, _ in HEADLINE) + " | n |",
        "|---" * (len(HEADLINE) + 2) + "|",
    ]
    for name, summary in summaries.items():
        cells = " | ".join(f"{value:{spec}}" for _, value, spec in summary.headline())
        lines.append(f"| {name} | {cells} | {summary.count} |")
    return "\n".join(lines)


def curve_label(prefix: str, settings: Mapping[str, Any]) -> str:
    """Legend entry of a callback curve: ``certify`` is the run's sigma(x) (IDRS when its
    ``r > 0``), ``certify_constant`` the constant ``sigma_b`` of Cohen et al."""
    if prefix == "certify":  # distinct from the comparison's label even where r = 0
        rate = settings["r"]
        return f"IDRS r={rate:g}" if rate > 0 else f"sigma={settings['sigma_b']:g} (r=0)"
    return f"constant sigma={settings['sigma_b']:g}"


def figure_title(
    epoch: int, sigma_b: float, r: float, settings: CertificationSettings, count: int
) -> str:
    """Title of a callback figure: after which (0-based) epoch, with which noise and settings,
    on how many inputs."""
    mode = "sequential, n <=" if settings.sequential else "n ="
    return (
        f"after epoch {epoch + 1}: sigma_b={sigma_b:g}, r={r:g}; {mode} {settings.n}, "
        f"alpha={settings.alpha:g}, {count} inputs"
    )
