"""Dual randomized smoothing's certificate: a smoothed router picks the noise level, a
constant-noise smoothed expert classifies at it (Sun, Mao, Vechev, "Dual Randomized Smoothing:
Beyond Global Noise Variance", ICLR 2026, Section 4).

Setting: noise levels ``sigma_1 < ... < sigma_K``, a router ``h: R^d -> {1..K}`` and one expert
``f_k`` per level. The smoothed router ``g_v(x) = argmax_k P(h(x + sigma_v eps) = k)`` at a
fixed ``sigma_v`` and the smoothed experts ``g_k(x) = argmax_c P(f_k(x + sigma_k eps) = c)``
define the dual classifier ``G(x) = g_{g_v(x)}(x)``: input-dependent noise
``sigma(x) = sigma_{g_v(x)}``.

Guarantee (the paper's Theorem 4.1, randomized smoothing with locally constant noise, applied
as in its Section 4.2): if ``p_v`` lower-bounds ``P(h(x + sigma_v eps) = k)`` and ``p_c``
lower-bounds ``P(f_k(x + sigma_k eps) = c)``, then ``g_v = k`` on the ball of radius
``R_v = sigma_v Phi^{-1}(p_v)`` (Cohen et al. 2019, Theorem 1), so the noise level is
``sigma_k`` throughout that ball and ``G = g_k`` there; ``g_k = c`` on the ball of radius
``R_c = sigma_k Phi^{-1}(p_c)``; hence ``G = c`` on the ball of radius ``min(R_v, R_c)``.

Confidence: the router's bound holds with probability ``1 - alpha_v`` and the expert's with
``1 - alpha_c``; both hold, and with them the certificate, with probability at least
``1 - alpha_v - alpha_c`` (union bound), whatever the dependence between the two samples. The
certificate's ``alpha`` is therefore split, ``alpha_v + alpha_c = alpha``. Either stage
abstaining (``p <= 1/2``) makes ``G`` abstain: without a certified router choice the noise level
at ``x`` is unknown, and so is ``G(x)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from idrs_lightning.validation import InvalidSetting, check_positive, check_range

FloatArray = NDArray[np.float64]

#: The router's share of alpha by default: the two stages bounded at alpha / 2 each.
ROUTER_SHARE = 0.5


class AlphaSplit(NamedTuple):
    """Failure probabilities of the router's and the expert's bound; they sum to ``alpha``."""

    router: float
    classifier: float


def check_levels(sigmas: ArrayLike, experts: int) -> list[float]:
    """The noise levels as floats: two or more, increasing, positive, one per expert.

    Raises:
        InvalidSetting: naming ``sigmas``.
    """
    levels = [float(s) for s in check_positive("sigmas", np.asarray(sigmas, dtype=float))]
    if len(levels) < 2 or len(levels) != experts or levels != sorted(set(levels)):
        raise InvalidSetting(
            "sigmas",
            f"must be two or more increasing levels, one per expert ({experts} experts), "
            f"got {levels}",
        )
    return levels


def split_alpha(alpha: float, router_share: float = ROUTER_SHARE) -> AlphaSplit:
    """``alpha_v = router_share * alpha`` and ``alpha_c = alpha - alpha_v`` (union bound).

    Raises:
        ValueError: ``alpha`` or ``router_share`` outside ``(0, 1)``.
    """
    level = float(check_range("alpha", alpha, 0.0, 1.0, low_open=True, high_open=True))
    share = float(
        check_range("router_share", router_share, 0.0, 1.0, low_open=True, high_open=True)
    )
    router = level * share
    return AlphaSplit(router, level - router)


def dual_radius(router_radius: ArrayLike, classifier_radius: ArrayLike) -> FloatArray:
    """The dual classifier's certified radius ``min(R_v, R_c)``; 0 where either stage has
    none (an abstaining stage has radius 0, and so does ``G``)."""
    router = np.asarray(router_radius, dtype=np.float64)
    classifier = np.asarray(classifier_radius, dtype=np.float64)
    if (router < 0).any() or (classifier < 0).any() or np.isnan(router + classifier).any():
        raise ValueError("radii must be >= 0")
    return np.minimum(router, classifier)
