"""The cone's ideal classifier under noise never puts a class-0 test point in class 1, over whole
test splits in 2, 18 and 400 dimensions."""

import numpy as np
import pytest

from idrs_lightning.paper import cone_geometry
from tests.cone import ANGLE, SCALE, SIGMA, cone_split

pytestmark = pytest.mark.slow  # the quadrature over whole test splits


@pytest.mark.parametrize("dim", [2, 18, 400])
@pytest.mark.parametrize("factor", [1.0, 10.0])
def test_class0_points_are_never_predicted_class1(dim, factor):
    split = cone_split("test", dim, factor * SCALE[dim])
    probability = cone_geometry.cone_probability(split.x, SIGMA[dim], ANGLE)
    assert not np.any(probability[split.y == 0] > 0.5)
