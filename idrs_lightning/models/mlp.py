"""Fully connected ReLU network: the IDRS paper's toy model (Appendix A.1)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from idrs_lightning.models.normalize import Normalize, Stat
from idrs_lightning.validation import check_int


class MLP(nn.Sequential):
    """Fully connected ReLU network: the IDRS paper's toy model (three layers, width <= 20).

    ``Normalize -> flatten -> [linear -> ReLU] per hidden width -> linear num_classes``. The
    normalisation comes before the flattening, so it takes a number, one value per feature of
    ``(n, d)`` inputs, or one value per channel of image inputs.

    Args:
        in_features: number of input features after flattening (``d``, or ``C * H * W``).
        num_classes: number of output logits, ``>= 2``.
        hidden: widths of the hidden layers; ``()`` gives a linear model.
        mean, std: input statistics for the :class:`Normalize` first layer (identity default).

    Raises:
        ValueError: for non-positive sizes or invalid statistics.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int = 2,
        hidden: Sequence[int] = (20, 20),
        mean: Stat = 0.0,
        std: Stat = 1.0,
    ) -> None:
        check_int("in_features", in_features, 1)
        check_int("num_classes", num_classes, 2)
        widths = [check_int("hidden width", width, 1) for width in hidden]
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            normalize=Normalize(mean, std), flatten=nn.Flatten()
        )
        previous = in_features
        for index, width in enumerate(widths, start=1):
            layers[f"fc{index}"] = nn.Linear(previous, width)
            layers[f"relu{index}"] = nn.ReLU(inplace=True)
            previous = width
        layers[f"fc{len(widths) + 1}"] = nn.Linear(previous, num_classes)
        super().__init__(layers)
