"""Independent reference for checkpoints in the layout of Cohen et al.'s randomized smoothing code.

Re-typed from the public repository locuslab/smoothing (``code/archs/cifar_resnet.py``,
``code/architectures.py``, ``code/datasets.py``, ``code/train.py``) so that module names, and hence
``state_dict`` keys, match the checkpoints their ``train.py`` writes. Nothing here imports the
project under test. Everything runs on CPU (their code calls ``.cuda()``; this module does not).

Key layouts produced (the normalisation layer has no parameters or buffers, so index 0 is absent):

* ``cifar_resnet20`` / ``cifar_resnet110``: ``1.conv1.weight``, ``1.bn1.weight``, ...
* ``resnet50``: ``1.module.conv1.weight``, ``1.module.bn1.weight``, ... (``DataParallel``)
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
import torchvision
from torch import nn

# code/datasets.py: _CIFAR10_MEAN, _CIFAR10_STDDEV, _IMAGENET_MEAN, _IMAGENET_STDDEV
COHEN_CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
COHEN_CIFAR10_STD: tuple[float, float, float] = (0.2023, 0.1994, 0.2010)
COHEN_IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
COHEN_IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# code/architectures.py: ARCHITECTURES
COHEN_ARCHITECTURES: tuple[str, ...] = ("resnet50", "cifar_resnet20", "cifar_resnet110")

_DATASET_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": (COHEN_CIFAR10_MEAN, COHEN_CIFAR10_STD),
    "imagenet": (COHEN_IMAGENET_MEAN, COHEN_IMAGENET_STD),
}


class CohenNormalizeLayer(nn.Module):
    """Per-channel standardisation as the first layer (code/datasets.py ``NormalizeLayer``).

    ``means`` and ``sds`` are plain tensor attributes, not buffers, so they are not part of the
    ``state_dict`` (exactly as in Cohen's code). Unlike theirs they stay on CPU at construction and
    are moved to the input's device and dtype in ``forward``.
    """

    def __init__(self, means: Sequence[float], sds: Sequence[float]) -> None:
        super().__init__()
        self.means = torch.tensor(list(means))
        self.sds = torch.tensor(list(sds))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        batch_size, _num_channels, height, width = input.shape
        means = self.means.to(device=input.device, dtype=input.dtype)
        sds = self.sds.to(device=input.device, dtype=input.dtype)
        # Same construction as theirs: tile to (B, H, W, C), then move channels to dim 1.
        means = means.repeat((batch_size, height, width, 1)).permute(0, 3, 1, 2)
        sds = sds.repeat((batch_size, height, width, 1)).permute(0, 3, 1, 2)
        return (input - means) / sds


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (code/archs/cifar_resnet.py ``conv3x3``)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual (code/archs/cifar_resnet.py ``BasicBlock``)."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1-3x3-1x1 residual block (code/archs/cifar_resnet.py ``Bottleneck``)."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


class ResNet(nn.Module):
    """CIFAR ResNet, depth 6n+2 (code/archs/cifar_resnet.py ``ResNet``, after bearpaw)."""

    def __init__(self, depth: int, num_classes: int = 1000, block_name: str = "BasicBlock") -> None:
        super().__init__()
        block: type[BasicBlock] | type[Bottleneck]
        if block_name.lower() == "basicblock":
            if (depth - 2) % 6 != 0:
                raise ValueError("BasicBlock ResNet depth must be 6n+2, e.g. 20, 32, 44, 56, 110")
            n = (depth - 2) // 6
            block = BasicBlock
        elif block_name.lower() == "bottleneck":
            if (depth - 2) % 9 != 0:
                raise ValueError("Bottleneck ResNet depth must be 9n+2, e.g. 20, 29, 47, 56, 110")
            n = (depth - 2) // 9
            block = Bottleneck
        else:
            raise ValueError("block_name should be BasicBlock or Bottleneck")

        self.inplanes = 16
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, 16, n)
        self.layer2 = self._make_layer(block, 32, n, stride=2)
        self.layer3 = self._make_layer(block, 64, n, stride=2)
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(64 * block.expansion, num_classes)

        # Their init: He-normal over fan-out for convs, BN weight 1 / bias 0, Linear left default.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        blocks: int,
        stride: int = 1,
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(
                    self.inplanes,
                    planes * block.expansion,
                    kernel_size=1,
                    stride=stride,
                    bias=False,
                ),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers: list[nn.Module] = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # 32x32
        x = self.layer1(x)  # 32x32
        x = self.layer2(x)  # 16x16
        x = self.layer3(x)  # 8x8
        x = self.avgpool(x)
        x = x.view(x.size(0), -1)
        return self.fc(x)


def resnet(depth: int, num_classes: int = 1000, block_name: str = "BasicBlock") -> ResNet:
    """Their factory (code/archs/cifar_resnet.py ``resnet(**kwargs)``)."""
    return ResNet(depth=depth, num_classes=num_classes, block_name=block_name)


def cohen_cifar_resnet(depth: int, num_classes: int = 10) -> nn.Module:
    """Bare CIFAR ResNet as ``get_architecture`` builds it (``resnet_cifar(depth=..., ...)``)."""
    return resnet(depth=depth, num_classes=num_classes)


def _cpu_data_parallel(module: nn.Module) -> nn.DataParallel:
    """``nn.DataParallel(module)`` that stays on CPU and just calls ``module``.

    Without a CUDA device, ``DataParallel`` already keeps ``device_ids == []`` and forwards
    directly. On a CUDA machine its constructor moves the module to ``cuda:0``; this undoes that,
    so the model behaves the same everywhere. The ``module.`` key prefix is unaffected.
    """
    wrapped = nn.DataParallel(module)
    if wrapped.device_ids:
        wrapped.device_ids = []
        wrapped.module.cpu()
    return wrapped


def cohen_model(
    arch: str, num_classes: int | None = None, dataset: str | None = None
) -> nn.Sequential:
    """``Sequential(NormalizeLayer, network)`` as code/architectures.py ``get_architecture``.

    ``resnet50`` is torchvision's ResNet-50 (random weights) inside ``DataParallel``; the CIFAR
    ResNets are not wrapped, as in their code. ``num_classes`` defaults to 10 for the CIFAR
    architectures and 1000 for ``resnet50``; ``dataset`` (normalisation statistics) defaults to
    ``cifar10`` for the CIFAR architectures and ``imagenet`` for ``resnet50``.
    """
    network: nn.Module
    if arch == "resnet50":
        classes = 1000 if num_classes is None else num_classes
        network = _cpu_data_parallel(torchvision.models.resnet50(weights=None, num_classes=classes))
        default_dataset = "imagenet"
    elif arch in ("cifar_resnet20", "cifar_resnet110"):
        classes = 10 if num_classes is None else num_classes
        network = cohen_cifar_resnet(20 if arch == "cifar_resnet20" else 110, classes)
        default_dataset = "cifar10"
    else:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {COHEN_ARCHITECTURES}")
    means, sds = _DATASET_STATS[dataset or default_dataset]
    return nn.Sequential(CohenNormalizeLayer(means, sds), network)


def _sgd_state_dict(model: nn.Module, with_momentum: bool) -> dict:
    """State dict of ``SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)``.

    With ``with_momentum`` one step on zero gradients is taken on detached copies of the
    parameters, so ``state`` holds momentum buffers like a trained checkpoint; ``model`` itself
    is never changed.
    """
    params: list[torch.Tensor] = list(model.parameters())
    if with_momentum:
        params = [p.detach().clone().requires_grad_(True) for p in params]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    if with_momentum:
        for p in params:
            p.grad = torch.zeros_like(p)
        optimizer.step()
    return copy.deepcopy(optimizer.state_dict())


def save_cohen_checkpoint(
    path: str | Path,
    model: nn.Module,
    arch: str,
    epoch: int = 90,
    with_momentum: bool = False,
) -> None:
    """Write a checkpoint as code/train.py does (``checkpoint.pth.tar``).

    Keys: ``epoch`` (their ``epoch + 1``, so 90 after 90 epochs), ``arch``, ``state_dict`` of the
    whole ``Sequential`` and ``optimizer`` (SGD, lr 0.1, momentum 0.9, weight decay 1e-4; fresh
    unless ``with_momentum``). Loadable with ``torch.load(path, weights_only=True)``.
    """
    torch.save(
        {
            "epoch": epoch,
            "arch": arch,
            "state_dict": model.state_dict(),
            "optimizer": _sgd_state_dict(model, with_momentum),
        },
        path,
    )


def save_plain_state_dict(path: str | Path, network: nn.Module) -> None:
    """``torch.save(network.state_dict(), path)`` of a bare network (no normalisation layer).

    For ``resnet50`` pass ``model[1].module`` for torchvision's own keys (``conv1.weight``);
    ``model[1]`` keeps the ``DataParallel`` prefix (``module.conv1.weight``).
    """
    torch.save(network.state_dict(), path)


def save_torchscript(path: str | Path, model: nn.Module) -> None:
    """Save ``model`` as TorchScript: scripted, or traced on a 1x3x32x32 input if that fails.

    ``DataParallel`` (``resnet50``) does not script; its trace uses the same small input, which
    torchvision's adaptive pooling accepts. The model is compiled in eval mode (so a trace bakes in
    BatchNorm's running statistics) and its own mode is restored afterwards. torch's "jit is
    deprecated" FutureWarnings are silenced here.
    """
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*is deprecated", category=FutureWarning)
            try:
                compiled = torch.jit.script(model)
            except Exception:
                compiled = torch.jit.trace(model, torch.rand(1, 3, 32, 32))
            compiled.save(str(path))
    finally:
        model.train(was_training)


__all__ = [
    "COHEN_ARCHITECTURES",
    "COHEN_CIFAR10_MEAN",
    "COHEN_CIFAR10_STD",
    "COHEN_IMAGENET_MEAN",
    "COHEN_IMAGENET_STD",
    "BasicBlock",
    "Bottleneck",
    "CohenNormalizeLayer",
    "ResNet",
    "cohen_cifar_resnet",
    "cohen_model",
    "conv3x3",
    "resnet",
    "save_cohen_checkpoint",
    "save_plain_state_dict",
    "save_torchscript",
]
