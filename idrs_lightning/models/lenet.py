"""LeNet for MNIST-shaped images (LeCun et al. 1998, as used in randomized-smoothing work)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from idrs_lightning.models.normalize import Normalize, Stat
from idrs_lightning.normalization import MNIST_MEAN, MNIST_STD
from idrs_lightning.validation import check_int, is_int


class LeNet(nn.Sequential):
    """LeNet-5-style network for MNIST-shaped images, as used in randomized-smoothing work.

    ``Normalize -> conv 5x5 (20) -> ReLU -> max-pool 2 -> conv 5x5 (50) -> ReLU -> max-pool 2
    -> flatten -> linear 500 -> ReLU -> linear num_classes``. On 1x28x28 inputs this is the
    LeNet of the randomized-smoothing literature on MNIST (4x4x50 features, 431,080 parameters
    for 10 classes).

    Small images adapt: for ``min(H, W) >= 16`` the convolutions are unpadded (the classic
    layout); below that both use padding 2 ("same"), so e.g. the 8x8 scikit-learn digits give
    2x2x50 features. Images smaller than 4x4 are rejected.

    Args:
        num_classes: number of output logits, ``>= 2``.
        in_channels: channels ``C`` of the ``(n, C, H, W)`` input.
        image_size: ``H = W``, or a pair ``(H, W)``.
        mean, std: input statistics for the :class:`Normalize` first layer (MNIST by default).

    Raises:
        ValueError: for sizes or statistics out of range.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int | Sequence[int] = 28,
        mean: Stat = MNIST_MEAN,
        std: Stat = MNIST_STD,
    ) -> None:
        check_int("num_classes", num_classes, 2)
        check_int("in_channels", in_channels, 1)
        height, width = _pair("image_size", image_size)
        if min(height, width) < 4:
            raise ValueError(
                f"LeNet needs images of at least 4x4 pixels, got {height}x{width}; "
                "use 'mlp' for smaller inputs"
            )
        padding = 0 if min(height, width) >= 16 else 2

        def features(size: int) -> int:
            after_first = (size + 2 * padding - 4) // 2
            return (after_first + 2 * padding - 4) // 2

        flat = 50 * features(height) * features(width)
        super().__init__(
            OrderedDict(
                normalize=Normalize(mean, std),
                conv1=nn.Conv2d(in_channels, 20, kernel_size=5, padding=padding),
                relu1=nn.ReLU(inplace=True),
                pool1=nn.MaxPool2d(2),
                conv2=nn.Conv2d(20, 50, kernel_size=5, padding=padding),
                relu2=nn.ReLU(inplace=True),
                pool2=nn.MaxPool2d(2),
                flatten=nn.Flatten(),
                fc1=nn.Linear(flat, 500),
                relu3=nn.ReLU(inplace=True),
                fc2=nn.Linear(500, num_classes),
            )
        )


def _pair(name: str, value: int | Sequence[int]) -> tuple[int, int]:
    pair = (value, value) if is_int(value) else tuple(value) if isinstance(value, Sequence) else ()
    if len(pair) != 2:
        raise ValueError(f"{name} must be an integer or a pair (H, W), got {value!r}")
    return check_int(f"{name}[0]", pair[0], 1), check_int(f"{name}[1]", pair[1], 1)
