"""Per-input evidence from certification runs, for the statistical verdicts of the experiments.

The runs compared in one row certify the same inputs (the same class-stratified subset of the
test split), so their per-input outcomes are stacked ``(seeds, inputs)`` and compared pairwise
(:mod:`.statistics`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import special

from idrs_lightning.certification import clopper_pearson_lower
from idrs_lightning.paper.jobs import Certified
from idrs_lightning.paper.statistics import Interval, mean_interval

#: The window of radii around constant sigma's largest certifiable radius R_max in which the
#: waterfall is judged: [0.75 R_max, 1.25 R_max] (a setting: the cliff and just beyond it).
WATERFALL_WINDOW = (0.75, 1.25)
#: Points of a window's radius grid.
WINDOW_POINTS = 21


def stacked(runs: Sequence[Certified], column: str) -> np.ndarray:
    """``column`` of every run, shape ``(runs, inputs)``.

    Raises:
        ValueError: when the runs certified different inputs.
    """
    first = runs[0].results["idx"]
    for run in runs[1:]:
        if not np.array_equal(run.results["idx"], first):
            raise ValueError("the runs compared certified different inputs")
    return np.stack([np.asarray(run.results[column], dtype=np.float64) for run in runs])


def constant_cap(sigma: float, n: int, alpha: float) -> float:
    """The largest radius constant-sigma certification can give with ``n`` samples:
    sigma * Phi^-1(alpha^(1/n)), all ``n`` samples of the top class (Cohen et al.; the end of
    the certified accuracy "waterfall")."""
    bound = float(clopper_pearson_lower(n, n, alpha))
    return sigma * float(special.ndtri(bound))


def certified_share(runs: Sequence[Certified], radii: np.ndarray) -> np.ndarray:
    """Per run and input, the share of ``radii`` at which the input is certified correctly
    (``(runs, inputs)``): averaged over inputs, the mean of the certified-accuracy curve over
    those radii."""
    radius = stacked(runs, "radius")
    correct = stacked(runs, "correct").astype(bool)
    reached = radius[..., None] >= np.asarray(radii)[None, None, :]
    return (reached & correct[..., None]).mean(axis=2)


def window(cap: float, bounds: tuple[float, float] = WATERFALL_WINDOW) -> np.ndarray:
    """The radius grid of a window around ``cap``."""
    return np.linspace(bounds[0] * cap, bounds[1] * cap, WINDOW_POINTS)


def clean_accuracy(runs: Sequence[Certified]) -> Interval:
    """Clean accuracy of the smoothed classifier over inputs and seeds, with its interval."""
    return mean_interval(stacked(runs, "correct"))


def below_chance(
    models: dict[str, Sequence[Certified]], classes: int, baseline: Interval | None = None
) -> str:
    """Why conclusions about these models cannot be drawn, or "" when each one's clean
    accuracy interval lies above chance (1 / classes) and above the upper end of an untrained
    ``baseline``'s interval, if given: a claim about trained models is not tested on models
    that predict no better than a guess or than a network that learnt nothing."""
    chance, reference = 1.0 / classes, "chance"
    if baseline is not None and baseline.high > chance:
        chance, reference = baseline.high, "the untrained network's accuracy (upper end)"
    for name, runs in models.items():
        accuracy = clean_accuracy(runs)
        if accuracy.low <= chance:
            return (
                f"{name} model's clean accuracy {accuracy.estimate:.3f} "
                f"[{accuracy.low:.3f}, {accuracy.high:.3f}] is not above {reference} "
                f"{chance:.3f}"
            )
    return ""
