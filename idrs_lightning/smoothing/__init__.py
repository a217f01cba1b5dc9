"""The smoothing core: :class:`Smooth` (Cohen et al.'s PREDICT and CERTIFY with a per-input
sigma), its estimation strategies and the loop that certifies many inputs per forward pass."""

from idrs_lightning.smoothing.certificate import ABSTAIN, Certificate
from idrs_lightning.smoothing.core import Smooth
from idrs_lightning.smoothing.groups import certify_groups

__all__ = ["ABSTAIN", "Certificate", "Smooth", "certify_groups"]
