"""What :class:`~idrs_lightning.smoothing.Smooth` refuses before and after sampling: a model
in training mode, sigmas that are not positive and finite, inputs with NaN or infinite entries
(and a warning for inputs outside the data's range), and non-finite logits."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from idrs_lightning.smoothing.core import Smooth

log = logging.getLogger(__name__)


def checked_sigmas(
    smooth: Smooth,
    xs: torch.Tensor,
    sigmas: Sequence[float] | np.ndarray,
    indices: Sequence[int],
) -> np.ndarray:
    """The sigmas as float64, after refusing what cannot be sampled soundly (and warning of
    inputs outside the data's range)."""
    if smooth.base_classifier.training:
        raise ValueError("the base classifier is in training mode; call .eval() on it first")
    sigma = np.asarray(sigmas, dtype=np.float64)
    bad = ~(np.isfinite(sigma) & (sigma > 0))
    if bad.any():
        raise ValueError(f"every sigma must be positive and finite, got {sigma[bad][0]!r}")
    finite = torch.isfinite(xs).flatten(start_dim=1).all(dim=1).cpu().numpy()
    if not finite.all():
        index = indices[int(np.argmin(finite))]
        raise ValueError(f"input {index} has NaN or infinite entries; it cannot be certified")
    if smooth.input_range is not None and len(xs):
        low, high = smooth.input_range
        flat = xs.flatten(start_dim=1)
        outside = ((flat < low) | (flat > high)).any(dim=1).cpu().numpy()
        if outside.any():
            log.warning(
                "%d input(s), the first %d, have values outside the data's range [%g, %g] "
                "(normalised twice?); they are certified as given",
                int(outside.sum()),
                indices[int(np.argmax(outside))],
                low,
                high,
            )
    return sigma


def check_logits(logits: torch.Tensor, rows: int, num_classes: int) -> None:
    """The base classifier's output for a batch of ``rows`` noisy inputs is
    ``[rows x num_classes]``.

    Raises:
        ValueError: naming the shape returned and the shape expected.
    """
    if logits.shape != (rows, num_classes):
        raise ValueError(
            f"the base classifier returned logits of shape {tuple(logits.shape)} for {rows} "
            f"inputs; expected ({rows}, {num_classes}) (num_classes)"
        )


def refuse_nonfinite(nonfinite: np.ndarray, drawn: np.ndarray, indices: Sequence[int]) -> None:
    """Votes are the argmax of finite logits only: argmax of NaN is an arbitrary class, and a
    broken model's "votes" would certify every input. ``nonfinite`` and ``drawn`` count, per
    input, the noisy copies with non-finite logits and all noisy copies.

    Raises:
        ValueError: naming the first input with non-finite logits, before any of its votes
            is used.
    """
    if nonfinite.any():
        first = int(np.argmax(nonfinite > 0))
        raise ValueError(
            f"the base classifier's logits are NaN or infinite for input {indices[first]} (on "
            f"{int(nonfinite[first])} of {int(drawn[first])} noisy copies): the model is broken "
            "(did its training diverge? under reduced precision, did a logit overflow?), so it "
            "gets no certificate"
        )
