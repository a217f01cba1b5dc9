"""Whole-stream references for sequential CERTIFY, against which the tests hold the look-by-look
:class:`~idrs_lightning.certification.sequential.SequentialCertifier`.

* :func:`confidence_sequence`: Clopper-Pearson bounds at every look at level ``alpha / J``, a
  union bound over the ``J`` looks (the simplest confidence sequence, Darling and Robbins 1967);
* :func:`sequential_certify`: the certifier replayed over recorded cumulative counts;
* :func:`stop_certificate`: the radius of the lower bound at the stopping look (Cohen et al.
  2019, Theorem 1; IDRS paper, Theorem 7), the judge of "certified at R".

Each validates its arguments itself, with the library's public checks only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from idrs_lightning.certification import clopper_pearson_lower, clopper_pearson_upper, idrs_radius
from idrs_lightning.certification.sequential import (
    STOP_LEVEL,
    SequentialCertifier,
    SequentialResult,
)
from idrs_lightning.validation import (
    check_count,
    check_non_negative,
    check_positive,
    check_probability,
    check_range,
)

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def confidence_sequence(
    successes: ArrayLike, looks: ArrayLike, alpha: float, upper_level: float | None = None
) -> tuple[FloatArray, FloatArray]:
    """Anytime-valid lower and upper bounds on a Bernoulli mean at the looks of one schedule.

    Look ``j`` gets the one-sided Clopper-Pearson bounds of its cumulative count at level
    ``alpha / J``, ``J = len(looks)``: with probability at least ``1 - alpha``,
    ``p >= lower_j`` at every look simultaneously (the union bound), and separately
    ``p <= upper_j`` at every look.

    Parameters
    ----------
    successes : array_like of int, shape ``(..., m)`` with ``1 <= m <= J``
        Cumulative successes at the first ``m`` looks (last axis), for any number of streams in
        the leading axes. Fewer columns than looks is a stream observed so far; the level stays
        ``alpha / J``.
    looks : array_like of int, shape ``(J,)``
        The whole schedule, strictly increasing, fixed in advance.
    alpha : float in ``(0, 1)``
        Error probability of each of the two sequences.
    upper_level : float in ``(0, 1)``, optional
        Level of each look's upper bound instead of ``alpha / J`` (the certifier's
        ``stop_level``, which only decides when to stop).

    Returns
    -------
    lower, upper : ndarray, the shape of ``successes``
        Per-look bounds (not running extrema).
    """
    sizes = check_count("looks", looks, minimum=1)
    if sizes.ndim != 1 or sizes.size == 0:
        raise ValueError(f"looks must be a non-empty 1-D schedule, got shape {sizes.shape}")
    if (np.diff(sizes) <= 0).any():
        raise ValueError("looks must be strictly increasing")
    level = check_range("alpha", alpha, 0.0, 1.0, low_open=True, high_open=True)
    if level.ndim != 0:
        raise ValueError(f"alpha must be a scalar, got shape {level.shape}")
    counts = check_count("successes", successes)
    if counts.ndim == 0 or not 1 <= counts.shape[-1] <= sizes.size:
        raise ValueError(
            f"successes must have between 1 and {sizes.size} looks on its last axis, "
            f"got shape {counts.shape}"
        )
    n = sizes[: counts.shape[-1]]
    if (counts > n).any():
        raise ValueError("successes must not exceed the look sizes")
    per_look = float(level) / sizes.size
    upper = per_look if upper_level is None else upper_level
    return clopper_pearson_lower(counts, n, per_look), clopper_pearson_upper(counts, n, upper)


def sequential_certify(
    successes: ArrayLike,
    looks: ArrayLike,
    thresholds: ArrayLike,
    alpha: float,
    stop_level: float = STOP_LEVEL,
) -> SequentialResult:
    """Sequential CERTIFY from the counts of whole streams: the certifier fed column by column.

    Parameters
    ----------
    successes : array_like of int, shape ``(inputs, m)``, ``m <= J``
        Cumulative top-class counts at the first ``m`` looks; the columns after an input's
        stopping look are ignored (they may be anything valid, e.g. the stream continued).
    looks : array_like of int, shape ``(J,)``
        The schedule.
    thresholds : array_like, shape ``(K,)`` or ``(inputs, K)``
        :func:`~idrs_lightning.certification.sequential.radius_thresholds`, shared by all
        inputs or per input.
    alpha : float in ``(0, 1)``
    stop_level : float in ``(0, 1)``
        The certifier's level of the upper bounds that decide when to stop.

    Returns
    -------
    SequentialResult
        What :class:`SequentialCertifier` returns after the same looks.
    """
    counts = check_count("successes", successes)
    if counts.ndim != 2:
        raise ValueError(f"successes must have shape (inputs, looks), got {counts.shape}")
    limit = np.asarray(thresholds, dtype=np.float64)
    if limit.ndim not in (1, 2):
        raise ValueError(f"thresholds must have shape (K,) or (inputs, K), got {limit.shape}")
    limit = np.broadcast_to(limit, (counts.shape[0], limit.shape[-1]))
    certifier = SequentialCertifier(
        limit, looks, alpha, stop_level
    )  # validates thresholds, looks, alpha
    schedule = np.size(looks)
    if counts.shape[1] > schedule:
        raise ValueError(f"successes has {counts.shape[1]} looks, the schedule only {schedule}")
    for j in range(counts.shape[1]):
        if certifier.finished:
            break
        rows = np.flatnonzero(certifier.active)
        certifier.update(rows, counts[rows, j])
    return certifier.result()


class StopOutcome(NamedTuple):
    """What a report states: ``radius`` per input and ``certified`` per grid radius."""

    radius: FloatArray
    certified: BoolArray


def stop_certificate(
    p_a_lower: ArrayLike,
    radii: ArrayLike,
    sigma: ArrayLike,
    r: ArrayLike = 0.0,
    dim: ArrayLike = 1,
) -> StopOutcome:
    """The certified radius from the lower bound at the stopping look, and the grid it covers.

    Parameters
    ----------
    p_a_lower : array_like, shape ``(inputs,)``, in ``[0, 1]``
        :attr:`SequentialResult.p_a_lower`.
    radii : array_like, shape ``(K,)``, ``>= 0``
        The grid.
    sigma, r, dim : array_like, ``> 0``, ``>= 0``, whole ``>= 1``
        As in :func:`~idrs_lightning.certification.sequential.radius_thresholds`, broadcast
        against ``p_a_lower``.

    Returns
    -------
    StopOutcome
        ``radius``: :func:`.idrs_radius` at ``p_a_lower`` (Cohen's radius where ``r = 0``), 0
        where ``p_a_lower <= 1/2`` (abstain). ``certified[i, k]``: ``p_a_lower > 1/2`` and
        ``radius >= radii[k]``: the final judge of "certified at R". It includes
        :attr:`SequentialResult.certified` exactly for Cohen's radius, and up to the ~1e-9
        relative resolution of the IDRS radius.
    """
    low = check_probability("p_a_lower", p_a_lower)
    grid = check_non_negative("radii", radii)
    if grid.ndim != 1:
        raise ValueError(f"radii must be 1-D, got shape {grid.shape}")
    low, sigma, rate, size = np.broadcast_arrays(
        low,
        check_positive("sigma", sigma),
        check_non_negative("r", r),
        check_count("dim", dim, minimum=1),
    )
    predicts = low > 0.5
    radius = np.zeros(low.shape)
    if predicts.any():
        radius[predicts] = idrs_radius(
            sigma[predicts], rate[predicts], size[predicts], low[predicts]
        )
    return StopOutcome(radius, predicts[..., None] & (radius[..., None] >= grid))
