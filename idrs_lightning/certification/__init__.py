"""Certification mathematics: pure numpy/scipy, vectorised, no torch.

Confidence bounds and the abstain test (Cohen et al. 2019), Cohen's radius, a stable
non-central chi-square, the worst-case probabilities xi_> / xi_< (IDRS paper, Theorem 3),
the IDRS certified radius (Theorem 7) and the curse-of-dimensionality thresholds (Theorem 4,
Corollary 5, Figure 3), the Renyi-divergence radius with two noise levels (Appendix B.1,
Theorem 14), CERTIFY's decision from counts (bounds, abstain rule, radius), and sequential
CERTIFY: the look schedule, the per-radius thresholds on p_A's lower bound and the look-by-look
certifier that stops an input once every radius of a grid is settled.
"""

from idrs_lightning.certification.confidence import (
    binomial_abstain_test,
    clopper_pearson_lower,
    clopper_pearson_upper,
)
from idrs_lightning.certification.curse import (
    curse_threshold,
    curse_threshold_simple,
    practical_threshold,
)
from idrs_lightning.certification.decision import Decision, certified_radius, decide
from idrs_lightning.certification.ncx2 import ncx2_cdf, ncx2_ppf, ncx2_sf
from idrs_lightning.certification.radius import cohen_radius, idrs_radius
from idrs_lightning.certification.renyi import renyi_radius
from idrs_lightning.certification.sequential import (
    SequentialCertifier,
    look_schedule,
    radius_thresholds,
)
from idrs_lightning.certification.xi import xi_greater, xi_less

__all__ = [
    "Decision",
    "SequentialCertifier",
    "binomial_abstain_test",
    "certified_radius",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "cohen_radius",
    "curse_threshold",
    "curse_threshold_simple",
    "decide",
    "idrs_radius",
    "look_schedule",
    "ncx2_cdf",
    "ncx2_ppf",
    "ncx2_sf",
    "practical_threshold",
    "radius_thresholds",
    "renyi_radius",
    "xi_greater",
    "xi_less",
]
