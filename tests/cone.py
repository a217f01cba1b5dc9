"""The cone data set of Table 5 at the settings the cone tests share."""

from __future__ import annotations

from idrs_lightning.data.arrays import ArraySplit
from idrs_lightning.data.sources import load_split

ANGLE = 5.0
#: Sigma of Table 5's constant rows, and scales at which those probabilities are not extreme.
SIGMA = {2: 0.5, 18: 1.0, 60: 1.0, 400: 2.0}
SCALE = {2: 9.05, 18: 243.0, 60: 656.0, 400: 4462.0}


def cone_split(split: str, dim: int, scale: float) -> ArraySplit:
    """The cone's ``split`` in ``dim`` dimensions at radial scale ``scale``, half-angle 5."""
    data = load_split("cone", split, ".", dim=dim, radial_scale=scale, half_angle_deg=ANGLE)
    assert isinstance(data, ArraySplit)
    return data
