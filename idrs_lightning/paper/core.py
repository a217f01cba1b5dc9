"""What a reproduction is and what it produces.

A :class:`Reproduction` turns a :class:`Context` (its output folder, the scale, where data
lives) into an :class:`Outcome`: one :class:`Comparison` per number the paper prints or claim
it makes (the paper's value, ours, the difference and a :class:`Verdict`), the settings and
sample sizes used, the figures written and notes on every choice the paper leaves open.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from idrs_lightning.paper.statistics import Interval

#: ``tiny``: seconds, for the tests; ``quick``: minutes on a 2-core CPU; ``study``: about an
#: hour on a 2-core CPU, enough inputs and seeds to resolve differences of a few points
#: (Section 4 on Fashion-MNIST; other IDs run it as ``quick``); ``paper``: the paper's protocol.
SCALES: tuple[str, ...] = ("tiny", "quick", "study", "paper")
Kind = Literal["theory", "experiment"]


@cache
def paper_numbers() -> dict[str, Any]:
    """The numbers printed in the paper, keyed by reproduction ID (``numbers.json``)."""
    text = resources.files(__package__).joinpath("numbers.json").read_text(encoding="utf-8")
    return json.loads(text)


class Verdict(StrEnum):
    """What a row of a reproduction concludes; each kind has one meaning.

    - ``agrees`` / ``differs``: our value against the paper's, within or beyond a tolerance
      derived from stated uncertainty (the printed number's rounding, the binomial error of our
      estimate, the spread over seeds).
    - ``holds`` / ``does not hold``: a claim the paper makes in words, as a statistical test on
      our data (the confidence interval of the effect excludes the null, or excludes the claim)
      or, for theory, an exact check.
    - ``inconclusive``: our resolution is coarser than the effect tested, or a precondition
      failed (e.g. the model is not better than chance): no conclusion either way.
    - ``not comparable``: ours is measured on other data or another model than the paper's
      number: shown, never judged per cell.
    - ``setting``: a value we chose or solved for; ``calibrated``: a value fitted to the
      paper's number. Neither is ever an agreement.
    """

    AGREES = "agrees"
    DIFFERS = "differs"
    HOLDS = "holds"
    DOES_NOT_HOLD = "does not hold"
    INCONCLUSIVE = "inconclusive"
    NOT_COMPARABLE = "not comparable"
    SETTING = "setting"
    CALIBRATED = "calibrated"


#: How a row is judged: against the paper's number, as a claim, or not at all.
RowKind = Literal["compare", "claim", "setting", "calibrated", "not comparable"]
#: What a statistical claim says of its effect: above zero, at most ``margin`` above zero, or
#: within ``margin`` of zero.
ClaimKind = Literal["positive", "not positive", "equivalent"]


@dataclass(frozen=True)
class Comparison:
    """One number of the paper, or one of its claims, beside ours.

    ``compare`` rows: ``tolerance`` is the largest difference called agreement; a larger one
    differs. Where ``resolution`` is given (the size of the effect the number is about) and
    the tolerance exceeds it, a difference within the tolerance is inconclusive, not an
    agreement. ``claim`` rows: ``holds`` for an exact check, else
    ``interval`` (our effect's confidence interval) and ``claim`` / ``margin``. ``blocked``
    names a failed precondition, which makes any compare or claim row inconclusive.
    """

    quantity: str
    paper: float | None
    ours: float
    tolerance: float | None = None
    kind: RowKind = "compare"
    holds: bool | None = None
    interval: Interval | None = None
    claim: ClaimKind = "positive"
    margin: float = 0.0
    resolution: float | None = None
    blocked: str = ""
    note: str = ""

    @property
    def difference(self) -> float | None:
        return None if self.paper is None else self.ours - self.paper

    @property
    def verdict(self) -> Verdict:
        if self.kind in ("setting", "calibrated", "not comparable"):
            return Verdict(self.kind)
        if self.blocked or math.isnan(self.ours):
            return Verdict.INCONCLUSIVE
        if self.kind == "claim":
            return self._claim_verdict()
        if self.paper is None or self.tolerance is None or not math.isfinite(self.tolerance):
            return Verdict.INCONCLUSIVE
        if abs(self.ours - self.paper) > self.tolerance:
            return Verdict.DIFFERS
        if self.resolution is not None and self.tolerance > self.resolution:
            return Verdict.INCONCLUSIVE  # within our error, which is wider than the effect
        return Verdict.AGREES

    def _claim_verdict(self) -> Verdict:
        if self.holds is not None:
            return Verdict.HOLDS if self.holds else Verdict.DOES_NOT_HOLD
        if self.interval is None:
            return Verdict.INCONCLUSIVE
        low, high = self.interval.low, self.interval.high
        if self.claim == "positive":
            decided = Verdict.HOLDS if low > 0 else Verdict.DOES_NOT_HOLD if high <= 0 else None
        elif self.claim == "not positive":  # at most margin above zero
            if high <= self.margin:
                decided = Verdict.HOLDS
            else:
                decided = Verdict.DOES_NOT_HOLD if low > self.margin else None
        else:  # equivalent: the whole interval within +-margin, or none of it
            inside = -self.margin <= low and high <= self.margin
            outside = low > self.margin or high < -self.margin
            decided = Verdict.HOLDS if inside else Verdict.DOES_NOT_HOLD if outside else None
        return decided or Verdict.INCONCLUSIVE

    def as_dict(self) -> dict[str, Any]:
        return {
            "quantity": self.quantity,
            "paper": self.paper,
            "ours": self.ours,
            "difference": self.difference,
            "tolerance": self.tolerance,
            "interval": None if self.interval is None else self.interval.as_dict(),
            "kind": self.kind,
            "verdict": str(self.verdict),
            "blocked": self.blocked,
            "note": self.note,
        }


def claim(
    quantity: str,
    interval: Interval,
    kind: ClaimKind = "positive",
    margin: float = 0.0,
    blocked: str = "",
    note: str = "",
) -> Comparison:
    """A claim of the paper tested on our data: the effect ``interval`` against the claim.

    An inconclusive row says how many inputs would make its interval narrow enough to decide
    (half the width of the margin band, or of the distance to zero of the estimate)."""
    row = Comparison(
        quantity,
        None,
        interval.estimate,
        kind="claim",
        interval=interval,
        claim=kind,
        margin=margin,
        blocked=blocked,
        note=note,
    )
    if row.verdict is Verdict.INCONCLUSIVE and not blocked:
        distance = {"positive": abs(interval.estimate), "equivalent": margin}
        target = distance.get(kind, abs(interval.estimate - margin)) / 2
        needed = interval.inputs_for(target) if target > 0 else None
        if needed is None:
            detail = "no sample size decides a zero effect" if target == 0 else ""
        else:
            detail = f"about {needed} inputs at {interval.seeds} seed(s) would decide it"
        row = replace(row, note="; ".join(filter(None, [note, detail])))
    return row


@dataclass
class Outcome:
    """Everything one reproduction reports (written by :mod:`idrs_lightning.paper.output`)."""

    comparisons: list[Comparison]
    settings: dict[str, Any]
    figures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)


#: Negative controls: training options that leave a model that has learnt nothing. Every
#: experiment run with a control must turn its verdicts to differs, does not hold or
#: inconclusive (``untrained``: the initial weights, a learning rate of 1e-12 for one batch).
CONTROLS: dict[str, dict[str, Any]] = {
    "untrained": {"model.lr": 1e-12, "trainer.limit_train_batches": 1},
}


@dataclass(frozen=True)
class Context:
    """Where a reproduction writes (``out`` = ``DIR/ID``), at which scale, where the data sets
    that are not generated live, and the negative control it runs as (``None``: none)."""

    out: Path
    scale: str
    data_root: str = "data"
    control: str | None = None

    def path(self, name: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / name

    def training(self, tag: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A training run's name and options under this context's control."""
        if self.control is None:
            return tag, options
        return f"{tag}-{self.control}", {**options, **CONTROLS[self.control]}


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
