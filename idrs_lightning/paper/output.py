"""Writing a reproduction: ``table.md`` and ``results.json`` in ``DIR/ID`` and the index
``DIR/README.md`` of a run of several."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from idrs_lightning.atomic_files import write_text
from idrs_lightning.paper.core import Comparison, Outcome, Reproduction


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"


def _note(row: Comparison) -> str:
    """The row's note, led by the precondition that made it inconclusive, if any."""
    parts = [f"precondition failed: {row.blocked}"] if row.blocked else []
    return "; ".join([*parts, row.note] if row.note else parts)


def comparison_table(comparisons: list[Comparison]) -> str:
    """Markdown: quantity | paper | ours | difference | verdict | note."""
    lines = ["| quantity | paper | ours | difference | verdict | note |", "|---" * 6 + "|"]
    for row in comparisons:
        cells = (
            row.quantity,
            _number(row.paper),
            _number(row.ours),
            _number(row.difference),
            str(row.verdict),
            _note(row),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _settings_lines(settings: dict[str, Any]) -> list[str]:
    return [f"- `{key}`: {json.dumps(value)}" for key, value in settings.items()]


def markdown(reproduction: Reproduction, scale: str, outcome: Outcome) -> str:
    """The whole ``table.md``: title, comparisons, settings, notes and figures."""
    parts = [
        f"# {reproduction.id}: {reproduction.title}",
        f"Scale: `{scale}`.",
        comparison_table(outcome.comparisons),
        "## Settings and sample sizes",
        "\n".join(_settings_lines(outcome.settings)),
    ]
    if outcome.notes:
        parts += ["## Notes", "\n".join(f"- {note}" for note in outcome.notes)]
    if outcome.figures:
        parts += ["## Figures", "\n".join(f"![{name}]({name})" for name in outcome.figures)]
    return "\n\n".join(parts) + "\n"


def write_outcome(out: Path, reproduction: Reproduction, scale: str, outcome: Outcome) -> str:
    """Write ``table.md`` and ``results.json`` to ``out``; return the Markdown."""
    text = markdown(reproduction, scale, outcome)
    record = {
        "id": reproduction.id,
        "title": reproduction.title,
        "scale": scale,
        "comparisons": [row.as_dict() for row in outcome.comparisons],
        "settings": outcome.settings,
        "notes": outcome.notes,
        "figures": outcome.figures,
        "results": outcome.results,
    }
    write_text(out / "results.json", json.dumps(record, indent=2, default=float) + "\n")
    write_text(out / "table.md", text)
    return text


def write_index(folder: Path, scale: str, written: list[tuple[Reproduction, Outcome]]) -> None:
    """``DIR/README.md``: one line per reproduction with its verdict counts and a link, then
    every row of every reproduction (ID | quantity | paper | ours | verdict)."""
    lines = [f"# Reproduction of the IDRS paper (scale `{scale}`)", ""]
    lines += ["| ID | result | verdicts |", "|---|---|---|"]
    for reproduction, outcome in written:
        counts: dict[str, int] = {}
        for row in outcome.comparisons:
            counts[str(row.verdict)] = counts.get(str(row.verdict), 0) + 1
        summary = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))
        link = f"[{reproduction.id}]({reproduction.id}/table.md)"
        lines.append(f"| {link} | {reproduction.title} | {summary} |")
    lines += ["", "| ID | quantity | paper | ours | verdict |", "|---|---|---|---|---|"]
    for reproduction, outcome in written:
        for row in outcome.comparisons:
            cells = (reproduction.id, row.quantity, _number(row.paper), _number(row.ours))
            lines.append("| " + " | ".join((*cells, str(row.verdict))) + " |")
    write_text(folder / "README.md", "\n".join(lines) + "\n")


def save_figure(figure: Figure, out: Path, name: str) -> str:
    """Save ``figure`` as ``out/name`` (PNG, 150 dpi) and return the name for the table."""
    figure.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    figure.savefig(out / name, dpi=150, format="png")
    return name
