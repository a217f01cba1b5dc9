"""The :class:`Normalize` first layer: ``(x - mean) / std`` per channel, inside the model.

The smoothing noise is added to the unnormalised input, so that sigma and the certified radii
are measured there (Cohen et al. 2019, ``code/datasets.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

Stat = float | Sequence[float] | Tensor


def _as_stat(name: str, value: Stat) -> Tensor:
    """A finite 0-d or 1-d float tensor; one-element sequences become 0-d."""
    try:
        stat = torch.as_tensor(value, dtype=torch.get_default_dtype()).detach().clone()
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"{name} must be a number or a sequence of numbers, got {value!r}"
        ) from error
    if stat.ndim > 1 or stat.numel() == 0:
        raise ValueError(
            f"{name} must be a number or a non-empty 1-D sequence (one value per channel or "
            f"feature), got shape {tuple(stat.shape)}"
        )
    if not bool(torch.isfinite(stat).all()):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return stat.reshape(()) if stat.numel() == 1 else stat


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel (dimension 1), meant as a classifier's first layer.

    Placing the normalisation inside the model lets the smoothing noise be added in the raw
    input space (pixels in ``[0, 1]``), so certified radii are measured there (Cohen et al.
    2019). ``mean`` and ``std`` are registered buffers: they follow ``.to(device / dtype)``
    and are saved in the ``state_dict``.

    Args:
        mean: a number (applied to every entry) or one value per channel of ``(n, C, ...)``
            inputs, i.e. per feature of ``(n, d)`` inputs.
        std: same convention, every value ``> 0``. A number and a sequence may be mixed.

    Raises:
        ValueError: if a statistic is not finite, not 0-d/1-d, ``std <= 0``, or the lengths of
            ``mean`` and ``std`` differ; at call time if the input's dimension 1 does not match.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Stat, std: Stat) -> None:
        super().__init__()
        mean_t, std_t = _as_stat("mean", mean), _as_stat("std", std)
        if not bool((std_t > 0).all()):
            raise ValueError(f"std must be > 0 everywhere, got {std!r}")
        if mean_t.ndim == 1 and std_t.ndim == 1 and mean_t.numel() != std_t.numel():
            raise ValueError(
                f"mean has {mean_t.numel()} values but std has {std_t.numel()}; give one value "
                "per channel (or feature) to both, or a single number"
            )
        mean_t, std_t = torch.broadcast_tensors(mean_t, std_t)
        self.register_buffer("mean", mean_t.clone())
        self.register_buffer("std", std_t.clone())

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` of shape ``(n, C, ...)`` (or any shape for scalar statistics)."""
        if self.mean.ndim == 0:
            return (x - self.mean) / self.std
        channels = self.mean.shape[0]
        if x.ndim < 2 or x.shape[1] != channels:
            raise ValueError(
                f"Normalize has {channels} per-channel values but got input of shape "
                f"{tuple(x.shape)}; expected (n, {channels}, ...)"
            )
        shape = (1, channels) + (1,) * (x.ndim - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)

    def extra_repr(self) -> str:
        def show(stat: Tensor) -> str:
            values = [f"{value:.4g}" for value in stat.reshape(-1).tolist()]
            return values[0] if stat.ndim == 0 else f"({', '.join(values)})"

        return f"mean={show(self.mean)}, std={show(self.std)}"
