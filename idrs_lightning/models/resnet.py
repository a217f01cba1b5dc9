"""The CIFAR ResNet of He et al. (2016, Section 4.2), depth ``6n + 2``.

Laid out as Cohen et al. (2019), ``code/archs/cifar_resnet.py``, so that checkpoints map.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from idrs_lightning.models.normalize import Normalize, Stat
from idrs_lightning.normalization import CIFAR10_MEAN, CIFAR10_STD
from idrs_lightning.validation import check_int, is_int


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
        if not is_int(depth) or depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f"depth must be 6n + 2 with n >= 1 (e.g. 20, 32, 44, 56, 110), got {depth!r}"
            )
        check_int("num_classes", num_classes, 2)
        check_int("in_channels", in_channels, 1)
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
