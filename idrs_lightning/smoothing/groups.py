"""Many inputs through CERTIFY, several per forward pass, with the evaluation shortcut: the one
loop behind the certification job, the callback and :meth:`Smooth.certify_many
<idrs_lightning.smoothing.Smooth.certify_many>`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from idrs_lightning.smoothing.certificate import Certificate
from idrs_lightning.smoothing.checks import checked_sigmas

if TYPE_CHECKING:
    from idrs_lightning.smoothing.core import Smooth


def certify_groups(
    smooth: Smooth,
    xs: torch.Tensor,
    sigmas: Sequence[float] | np.ndarray,
    indices: Sequence[int],
    labels: Sequence[int] | np.ndarray | None = None,
) -> Iterator[list[Certificate]]:
    """CERTIFY for every input of ``xs`` (shape ``[k x ...]``), yielding the certificates of
    each group of inputs whose noisy samples share forward passes (several inputs per pass
    when ``n`` is small against the batch size); each input's noise and counts are exactly
    those of :meth:`Smooth.certify <idrs_lightning.smoothing.Smooth.certify>`.

    ``labels`` turns on the evaluation shortcut: an input whose selected class (from the
    ``n0`` selection samples) is not its label skips estimation and comes back
    :attr:`Certificate.skipped` (``samples`` 0, radius 0, ``p_a_lower`` NaN, the selected
    class as prediction). Certified accuracy at every radius, clean accuracy and ACR are those
    of full CERTIFY, which could only abstain or predict that wrong class; such a row is not a
    certificate, and abstention counts it as a prediction.
    """
    if not len(xs) == len(sigmas) == len(indices):
        raise ValueError(
            f"lengths differ: {len(xs)} inputs, {len(sigmas)} sigmas, {len(indices)} indices"
        )
    if labels is not None and len(labels) != len(xs):
        raise ValueError(f"lengths differ: {len(xs)} inputs, {len(labels)} labels")
    sigma = checked_sigmas(smooth, xs, sigmas, indices)
    group = smooth.estimation.inputs_per_group()
    for first in range(0, len(xs), group):
        chosen = slice(first, first + group)
        label = None if labels is None else np.asarray(labels[chosen], dtype=np.int64)
        yield _certify_group(smooth, xs[chosen], sigma[chosen], list(indices[chosen]), label)


def _certify_group(
    smooth: Smooth,
    xs: torch.Tensor,
    sigma: np.ndarray,
    indices: list[int],
    labels: np.ndarray | None,
) -> list[Certificate]:
    """Selection for the whole group, estimation for the inputs the shortcut keeps."""
    c_a_hat = smooth.select(xs, sigma, indices)
    kept = np.arange(len(xs)) if labels is None else np.flatnonzero(c_a_hat == labels)
    certificates = [
        Certificate.skipped_for(int(c), smooth.num_classes, float(v))
        for c, v in zip(c_a_hat, sigma, strict=True)
    ]
    if kept.size:
        chosen = [indices[i] for i in kept]
        estimated = smooth.certify_selected(xs[kept], sigma[kept], chosen, c_a_hat[kept])
        for i, certificate in zip(kept, estimated, strict=True):
            certificates[i] = certificate
    return certificates
