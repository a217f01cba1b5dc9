"""Base classifiers for randomized smoothing, each with its input normalisation inside.

The smoothing noise is added to the *unnormalised* input (pixels in ``[0, 1]``, or raw points
of the synthetic data sets), so that sigma and the certified radii are measured in that space.
Every model here therefore starts with a :class:`Normalize` layer instead of normalising in the
data pipeline, as in Cohen et al. (2019), ``code/datasets.py``.

- :class:`LeNet`: images ``(n, C, H, W)``, two 5x5 conv + max-pool stages and an FC layer of 500
  (LeCun et al. 1998, in the form used for MNIST in randomized-smoothing work).
- :func:`resnet20`, :func:`resnet110`, :func:`cifar_resnet`: the CIFAR ResNet of He et al. (2016),
  depth ``6n + 2``, laid out as in Cohen et al.'s ``archs/cifar_resnet.py``.
- :class:`MLP`: fully connected ReLU network, the IDRS paper's toy model (Appendix A.1).

:func:`build_model` picks input sizes and normalisation defaults from one sample's shape.

References
----------
J. Cohen, E. Rosenfeld, J. Z. Kolter, "Certified adversarial robustness via randomized
smoothing", ICML 2019 (code: ``locuslab/smoothing``, ``code/archs/cifar_resnet.py``).
K. He, X. Zhang, S. Ren, J. Sun, "Deep residual learning for image recognition", CVPR 2016
(Section 4.2, CIFAR-10 networks).
Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11), 1998.
P. Sukenik, A. Kuvshinov, S. Guennemann, "Intriguing properties of input-dependent randomized
smoothing", ICML 2022 (Appendix A.1).
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "MLP",
    "MNIST_MEAN",
    "MNIST_STD",
    "MODEL_NAMES",
    "BasicBlock",
    "CifarResNet",
    "LeNet",
    "Normalize",
    "build_model",
    "cifar_resnet",
    "default_normalization",
    "resnet20",
    "resnet110",
]

#: Statistics of the training images, pixels in ``[0, 1]`` (one value per channel).
MNIST_MEAN: tuple[float, ...] = (0.1307,)
MNIST_STD: tuple[float, ...] = (0.3081,)
FASHION_MNIST_MEAN: tuple[float, ...] = (0.2860,)
FASHION_MNIST_STD: tuple[float, ...] = (0.3530,)
CIFAR10_MEAN: tuple[float, ...] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, ...] = (0.2470, 0.2435, 0.2616)

#: Names accepted by :func:`build_model`.
MODEL_NAMES: tuple[str, ...] = ("lenet", "resnet20", "resnet110", "mlp")

Stat = float | Sequence[float] | Tensor


# ----------------------------------------------------------------------------------------------
# Normalisation layer
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    """Python or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_int(name: str, value: object, low: int) -> int:
    if not _is_int(value) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _pair(name: str, value: int | Sequence[int]) -> tuple[int, int]:
    pair = (value, value) if _is_int(value) else tuple(value) if isinstance(value, Sequence) else ()
    if len(pair) != 2:
        raise ValueError(f"{name} must be an integer or a pair (H, W), got {value!r}")
    return _check_int(f"{name}[0]", pair[0], 1), _check_int(f"{name}[1]", pair[1], 1)


# ----------------------------------------------------------------------------------------------
# LeNet
# ----------------------------------------------------------------------------------------------


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
        _check_int("num_classes", num_classes, 2)
        _check_int("in_channels", in_channels, 1)
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


# ----------------------------------------------------------------------------------------------
# CIFAR ResNet (He et al. 2016, Section 4.2; layout of Cohen et al.'s cifar_resnet.py)
# ----------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers with an identity or 1x1-conv + BN (projection) shortcut.

    Args:
        in_planes: input channels.
        planes: output channels.
        stride: stride of the first convolution (2 halves the resolution).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class CifarResNet(nn.Module):
    """ResNet for CIFAR: depth ``6n + 2`` with ``n`` basic blocks at 16, 32 and 64 channels.

    ``conv 3x3 (16) -> BN -> ReLU -> 3 stages of n blocks (strides 1, 2, 2) -> global average
    pool -> linear``. The first block of stages 2 and 3 uses a projection shortcut (1x1 conv +
    BN), as in Cohen et al.'s ``archs/cifar_resnet.py``; module names follow that file too,
    so its checkpoints' keys map one to one. Weights: He normal (fan-out) for the convolutions,
    BN at weight 1, bias 0. The pool is global (adaptive), which equals Cohen's
    ``AvgPool2d(8)`` on 32x32 inputs and also accepts other sizes.

    Use :func:`cifar_resnet` for the model with its normalisation layer.

    Args:
        depth: total depth, ``(depth - 2) % 6 == 0`` and ``depth >= 8`` (20, 32, 44, 56, 110).
        num_classes: number of output logits.
        in_channels: channels of the input images.

    Raises:
        ValueError: if ``depth`` is not of the form ``6n + 2`` with ``n >= 1``.
    """

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        if not _is_int(depth) or depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f"depth must be 6n + 2 with n >= 1 (e.g. 20, 32, 44, 56, 110), got {depth!r}"
            )
        _check_int("num_classes", num_classes, 2)
        _check_int("in_channels", in_channels, 1)
        blocks = (int(depth) - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_stage(16, 16, blocks, stride=1)
        self.layer2 = self._make_stage(16, 32, blocks, stride=2)
        self.layer3 = self._make_stage(32, 64, blocks, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @staticmethod
    def _make_stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_planes, planes, stride)]
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def cifar_resnet(
    depth: int,
    num_classes: int = 10,
    mean: Stat = CIFAR10_MEAN,
    std: Stat = CIFAR10_STD,
    in_channels: int = 3,
) -> nn.Sequential:
    """``nn.Sequential(Normalize(mean, std), CifarResNet(depth, ...))``.

    The same two-element layout as Cohen et al.'s models (index 0 normalises, index 1 is the
    ResNet), for inputs in ``[0, 1]`` of shape ``(n, in_channels, H, W)``.

    Raises:
        ValueError: if ``depth`` is not ``6n + 2`` (``n >= 1``) or a statistic is invalid.
    """
    return nn.Sequential(Normalize(mean, std), CifarResNet(depth, num_classes, in_channels))


def resnet20(
    num_classes: int = 10, mean: Stat = CIFAR10_MEAN, std: Stat = CIFAR10_STD
) -> nn.Sequential:
    """CIFAR ResNet-20 (272,474 parameters for 10 classes) with its normalisation layer."""
    return cifar_resnet(20, num_classes, mean, std)


def resnet110(
    num_classes: int = 10, mean: Stat = CIFAR10_MEAN, std: Stat = CIFAR10_STD
) -> nn.Sequential:
    """CIFAR ResNet-110 (1,730,714 parameters for 10 classes), Cohen et al.'s CIFAR-10 model."""
    return cifar_resnet(110, num_classes, mean, std)


# ----------------------------------------------------------------------------------------------
# MLP for the synthetic data
# ----------------------------------------------------------------------------------------------


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
        _check_int("in_features", in_features, 1)
        _check_int("num_classes", num_classes, 2)
        widths = [_check_int("hidden width", width, 1) for width in hidden]
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


# ----------------------------------------------------------------------------------------------
# Factory
# ----------------------------------------------------------------------------------------------


def default_normalization(sample_shape: Sequence[int]) -> tuple[Stat, Stat]:
    """Default ``(mean, std)`` for inputs of one sample's shape.

    Single-channel images ``(1, H, W)`` get the MNIST statistics (MNIST, Fashion-MNIST and the
    8x8 digits are all grey-scale digits or garments in ``[0, 1]``), three-channel images
    ``(3, H, W)`` the CIFAR-10 statistics; anything else (vectors, other channel counts) the
    identity ``(0, 1)``. Pass explicit statistics for other data.
    """
    shape = tuple(sample_shape)
    if len(shape) == 3 and shape[0] == 1:
        return MNIST_MEAN, MNIST_STD
    if len(shape) == 3 and shape[0] == 3:
        return CIFAR10_MEAN, CIFAR10_STD
    return 0.0, 1.0


def build_model(
    name: str,
    num_classes: int,
    sample_shape: Sequence[int],
    *,
    mean: Stat | None = None,
    std: Stat | None = None,
) -> nn.Module:
    """Build a base classifier for samples of ``sample_shape`` (without the batch dimension).

    Input sizes come from the shape: ``(C, H, W)`` gives ``in_channels`` and ``image_size``,
    and ``in_features = prod(sample_shape)`` for ``"mlp"``. Normalisation defaults come from
    :func:`default_normalization` unless ``mean`` / ``std`` are given.

    Args:
        name: one of ``"lenet"``, ``"resnet20"``, ``"resnet110"``, ``"mlp"``.
        num_classes: number of output logits, ``>= 2``.
        sample_shape: e.g. ``(1, 28, 28)`` (MNIST), ``(3, 32, 32)`` (CIFAR-10), ``(1, 8, 8)``
            (digits, LeNet adapts its padding), ``(60,)`` (cone data).
        mean, std: override the default input statistics (both or neither).

    Returns:
        A module whose first child is a :class:`Normalize`.

    Raises:
        ValueError: for an unknown name, a shape the model cannot take (LeNet and the ResNets
            need ``(C, H, W)``), or invalid sizes and statistics.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"model name ({name!r}) must be one of {', '.join(MODEL_NAMES)}")
    shape = tuple(sample_shape)
    if not shape or not all(_is_int(size) and size >= 1 for size in shape):
        raise ValueError(
            f"sample_shape must be a non-empty tuple of positive integers, got {shape}"
        )
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if mean is None or std is None:
        mean, std = default_normalization(shape)
    if name == "mlp":
        return MLP(int(math.prod(shape)), num_classes, mean=mean, std=std)
    if len(shape) != 3:
        raise ValueError(
            f"{name} needs image samples of shape (C, H, W), got {shape}; use 'mlp' for vectors"
        )
    channels, height, width = (int(size) for size in shape)
    if name == "lenet":
        return LeNet(num_classes, channels, (height, width), mean=mean, std=std)
    depth = 20 if name == "resnet20" else 110
    return cifar_resnet(depth, num_classes, mean, std, in_channels=channels)
