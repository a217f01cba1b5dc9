"""What a reproduction is and what it produces.

A :class:`Reproduction` turns a :class:`Context` (its output folder, the scale, where data
lives) into an :class:`Outcome`: one :class:`Comparison` per number the paper prints (the
paper's value, ours, the difference and a verdict), the settings and sample sizes used, the
figures written and notes on every choice the paper leaves open.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

#: ``tiny``: seconds, for the tests; ``quick``: minutes on a 2-core CPU; ``paper``: the
#: paper's protocol.
SCALES: tuple[str, ...] = ("tiny", "quick", "paper")
Kind = Literal["theory", "experiment"]


@cache
def paper_numbers() -> dict[str, Any]:
    """The numbers printed in the paper, keyed by reproduction ID (``numbers.json``)."""
    text = resources.files(__package__).joinpath("numbers.json").read_text(encoding="utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class Comparison:
    """One number of the paper beside ours.

    ``tolerance`` is the largest difference called agreement: the paper's rounding for exact
    quantities, a sampling error for estimated ones. A claim the paper makes in words has
    ``paper = None`` and a ``holds`` verdict instead.
    """

    quantity: str
    paper: float | None
    ours: float
    tolerance: float | None = None
    holds: bool | None = None
    note: str = ""

    @property
    def difference(self) -> float | None:
        return None if self.paper is None else self.ours - self.paper

    @property
    def verdict(self) -> str:
        if self.holds is not None:
            return "holds" if self.holds else "does not hold"
        if self.paper is None or self.tolerance is None or math.isnan(self.ours):
            return "see note"
        return "agrees" if abs(self.ours - self.paper) <= self.tolerance else "differs"

    def as_dict(self) -> dict[str, Any]:
        return {
            "quantity": self.quantity,
            "paper": self.paper,
            "ours": self.ours,
            "difference": self.difference,
            "tolerance": self.tolerance,
            "verdict": self.verdict,
            "note": self.note,
        }


@dataclass
class Outcome:
    """Everything one reproduction reports (written by :mod:`idrs_lightning.paper.output`)."""

    comparisons: list[Comparison]
    settings: dict[str, Any]
    figures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """Where a reproduction writes (``out`` = ``DIR/ID``), at which scale, and where the
    data sets that are not generated live."""

    out: Path
    scale: str
    data_root: str = "data"

    def path(self, name: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / name


@dataclass(frozen=True)
class Reproduction:
    """One result of the paper: ``run`` reproduces it; ``all`` runs it at ``scales``."""

    id: str
    title: str
    kind: Kind
    run: Callable[[Context], Outcome]
    scales: tuple[str, ...] = SCALES
    needs: str = ""  # what must be present beyond the package (data sets), for ``list``


def sampling_error(proportion: float, count: int) -> float:
    """Two binomial standard errors of a proportion estimated from ``count`` inputs: the
    tolerance of an estimated accuracy (at least one input's worth)."""
    return max(2.0 * math.sqrt(max(proportion * (1 - proportion), 0.0) / count), 1.0 / count)
