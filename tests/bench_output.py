"""The figures the benchmarks print, parsed, and the relations that must hold between them.

A benchmark reports each quantity over interleaved rounds as ``median M (min-max A-B, spread
S% over R rounds)`` (``bench/_common.py``), each figure to 3 significant digits. A ratio of two
quantities is taken per round, so its range lies within the ranges of its two parts; a floor
check counts the rounds in which a ratio is below 1, which its range bounds too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?"
_MEASURE = re.compile(
    rf"^(?P<label>.*?)\s+median (?P<median>{NUMBER})(?P<unit>x|%| s)? "
    rf"\(min-max (?P<low>{NUMBER})-(?P<high>{NUMBER}), "
    rf"spread (?P<spread>{NUMBER})% over (?P<rounds>\d+) rounds\)"
)
_FLOOR = re.compile(r"^floor check: (?P<name>.+) below (?P<floor>.+) in (?P<below>\d+) of "
                    r"(?P<rounds>\d+) rounds \((?P<verdict>.+)\)$")  # fmt: skip
#: Relative error of a figure printed to 3 significant digits, with room for a quotient.
ROUNDING = 0.02


@dataclass(frozen=True)
class Measure:
    """One quantity over the rounds, as printed."""

    median: float
    low: float
    high: float
    spread: float
    rounds: int


@dataclass(frozen=True)
class FloorCheck:
    """How many rounds of a ratio to its floor were below 1, and the bench's verdict."""

    below: int
    rounds: int
    verdict: str


def _key(label: str) -> str:
    return " ".join(label.strip().removesuffix(":").split())


def measures(block: str) -> dict[str, Measure]:
    """Every ``... median ... rounds)`` line of ``block`` by its label (whitespace collapsed,
    a trailing colon dropped: ``"ratio torch / floor"``, ``"floor s"``, ``"fp32 images/s"``);
    a label printed twice is an error."""
    found: dict[str, Measure] = {}
    for line in block.splitlines():
        match = _MEASURE.match(line.strip())
        if match is None:
            continue
        key = _key(match["label"])
        assert key not in found, f"{key!r} printed twice in:\n{block}"
        found[key] = Measure(
            float(match["median"]),
            float(match["low"]),
            float(match["high"]),
            float(match["spread"]),
            int(match["rounds"]),
        )
    return found


def floor_checks(block: str) -> dict[str, FloorCheck]:
    """Every ``floor check:`` line of ``block`` by the name it checks."""
    found = {}
    for line in block.splitlines():
        match = _FLOOR.match(line.strip())
        if match is not None:
            check = FloorCheck(int(match["below"]), int(match["rounds"]), match["verdict"])
            found[match["name"]] = check
    return found


def blocks(output: str, start: str) -> list[str]:
    """``output`` cut before every line that matches the regular expression ``start``."""
    cuts = [m.start() for m in re.finditer(start, output, flags=re.MULTILINE)]
    return [output[a:b] for a, b in zip([0, *cuts], [*cuts, len(output)], strict=True)][1:]


def assert_consistent(name: str, measure: Measure, rounds: int | None = None) -> None:
    """Positive and finite, min <= median <= max, the spread (max - min) / median, and (if
    given) over ``rounds`` rounds."""
    values = (measure.low, measure.median, measure.high)
    assert all(math.isfinite(v) and v > 0 for v in values), (name, measure)
    assert measure.low <= measure.median <= measure.high, (name, measure)
    expected = 100 * (measure.high - measure.low) / measure.median
    slack = 100 * ROUNDING / 2 * (measure.high + measure.low) / measure.median + 0.05
    assert abs(measure.spread - expected) <= slack, (name, measure, expected)
    assert measure.rounds >= 2 and rounds in (None, measure.rounds), (name, measure, rounds)


def assert_ratio_of(ratio: Measure, numerator: Measure, denominator: Measure) -> None:
    """``ratio`` is ``numerator / denominator`` round by round: its range lies within the
    quotient of their ranges."""
    assert ratio.rounds == numerator.rounds == denominator.rounds
    smallest = numerator.low / denominator.high * (1 - ROUNDING)
    largest = numerator.high / denominator.low * (1 + ROUNDING)
    assert smallest <= ratio.low and ratio.high <= largest, (ratio, numerator, denominator)


def assert_product(product: Measure, first: Measure, second: Measure) -> None:
    """``product`` is ``first * second`` round by round."""
    smallest = first.low * second.low * (1 - ROUNDING)
    largest = first.high * second.high * (1 + ROUNDING)
    assert smallest <= product.low and product.high <= largest, (product, first, second)


def assert_floor_check(check: FloorCheck, over_floor: Measure) -> None:
    """The rounds counted below the floor agree with the ratio's range, and the verdict "ok"
    means none was."""
    assert check.rounds == over_floor.rounds, (check, over_floor)
    assert 0 <= check.below <= check.rounds
    certainly_above, certainly_below = 1 + ROUNDING / 4, 1 - ROUNDING / 4
    if over_floor.low >= certainly_above:
        assert check.below == 0, (check, over_floor)
    if over_floor.low < certainly_below:
        assert check.below >= 1, (check, over_floor)
    if over_floor.high < certainly_below:
        assert check.below == check.rounds, (check, over_floor)
    if over_floor.high >= certainly_above:
        assert check.below < check.rounds, (check, over_floor)
    assert (check.verdict == "ok") == (check.below == 0), check


def number(pattern: str, text: str) -> float:
    """The number captured by the one group of ``pattern`` (commas as thousands separators)."""
    match = re.search(pattern, text)
    assert match is not None, f"no {pattern!r} in:\n{text}"
    return float(match[1].replace(",", ""))


def scaled(measure: Measure, factor: float) -> Measure:
    """``measure`` in another unit (every figure times ``factor``)."""
    return Measure(
        measure.median * factor,
        measure.low * factor,
        measure.high * factor,
        measure.spread,
        measure.rounds,
    )
