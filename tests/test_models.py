"""Base classifiers: shapes, parameter counts, the Normalize first layer, dtypes, gradients."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from idrs_lightning.models import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    MLP,
    MNIST_MEAN,
    MNIST_STD,
    CifarResNet,
    LeNet,
    Normalize,
    build_model,
    cifar_resnet,
    resnet20,
    resnet110,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: one intra-op thread is as fast, and immune to a busy core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _cifar_resnet_parameters(n: int, num_classes: int, projection: bool) -> int:
    """Closed-form count for the depth-(6n+2) CIFAR ResNet (conv weights, BN affine, FC)."""

    def block(c_in: int, c_out: int) -> int:
        return 9 * c_in * c_out + 9 * c_out * c_out + 4 * c_out

    stem = 9 * 3 * 16 + 2 * 16
    stages = n * block(16, 16) + block(16, 32) + block(32, 64)
    stages += (n - 1) * (block(32, 32) + block(64, 64))
    shortcuts = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64) if projection else 0
    return stem + stages + shortcuts + 64 * num_classes + num_classes


# ----------------------------------------------------------------------------------------------
# Shapes and sizes
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "x_shape", "classes"),
    [
        (lambda: LeNet(), (4, 1, 28, 28), 10),
        (lambda: LeNet(in_channels=3, image_size=32, mean=0.5, std=0.25), (4, 3, 32, 32), 10),
        (lambda: LeNet(num_classes=7, image_size=8), (4, 1, 8, 8), 7),
        (lambda: resnet20(), (4, 3, 32, 32), 10),
        (lambda: resnet110(num_classes=5), (2, 3, 32, 32), 5),
        (lambda: MLP(2), (16, 2), 2),
        (lambda: MLP(60, hidden=(20, 10, 5)), (16, 60), 2),
    ],
    ids=[
        "lenet-mnist",
        "lenet-cifar",
        "lenet-digits",
        "resnet20",
        "resnet110",
        "mlp-2d",
        "mlp-60d",
    ],
)
def test_output_shapes(model, x_shape, classes) -> None:
    torch.manual_seed(0)
    net = model().eval()
    with torch.no_grad():
        out = net(torch.rand(x_shape))
    assert out.shape == (x_shape[0], classes)
    assert torch.isfinite(out).all(), "logits should be finite on inputs in [0, 1]"


def test_resnet_parameter_counts() -> None:
    # He et al. (2016), Table 6, lists ResNet-20 at 0.27M and ResNet-110 at 1.7M parameters,
    # with identity ("option A") shortcuts: exactly 269,722 and 1,727,962. Cohen et al.'s layout
    # uses 1x1 conv + BN projections where the width changes, which adds 2,752 parameters
    # (+1.02% for ResNet-20, +0.16% for ResNet-110); both still round to the published figures.
    for model, n, published, option_a in [
        (resnet20(), 3, 0.27e6, 269_722),
        (resnet110(), 18, 1.7e6, 1_727_962),
    ]:
        count = _parameters(model)
        assert count == _cifar_resnet_parameters(n, 10, projection=True)
        assert _cifar_resnet_parameters(n, 10, projection=False) == option_a
        assert count - option_a == 2_752
        assert float(f"{count:.2g}") == published, f"{count} does not round to {published}"
        assert abs(count - published) / count < 0.02
    assert _parameters(resnet20()) == 272_474
    assert _parameters(resnet110()) == 1_730_714
    assert _parameters(LeNet()) == 431_080


def test_resnet_layout_matches_cohen_names() -> None:
    keys = set(resnet20().state_dict())
    for expected in [
        "1.conv1.weight",
        "1.bn1.running_mean",
        "1.layer1.2.conv2.weight",
        "1.layer2.0.downsample.0.weight",
        "1.layer3.0.downsample.1.running_var",
        "1.fc.weight",
        "1.fc.bias",
    ]:
        assert expected in keys, f"missing {expected}"
    assert "1.layer1.0.downsample.0.weight" not in keys, "stage 1 uses identity shortcuts"
    depth = sum(isinstance(m, nn.Conv2d | nn.Linear) for m in resnet110().modules()) - 2
    assert depth == 110, "110 weighted layers on the main path (2 projection convs excluded)"


def test_resnet_initialisation() -> None:
    torch.manual_seed(0)
    net = resnet110()[1]
    conv = net.layer3[5].conv1.weight
    assert conv.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
    assert all(
        (m.weight == 1).all() and (m.bias == 0).all()
        for m in net.modules()
        if isinstance(m, nn.BatchNorm2d)
    )


@pytest.mark.parametrize("depth", [21, 2, 0, 19.0, True])
def test_resnet_rejects_bad_depth(depth) -> None:
    with pytest.raises(ValueError, match=r"depth must be 6n \+ 2"):
        cifar_resnet(depth)


def test_size_checks() -> None:
    with pytest.raises(ValueError, match="at least 4x4"):
        LeNet(image_size=3)
    with pytest.raises(ValueError, match=r"image_size must be an integer or a pair"):
        LeNet(image_size=28.0)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        LeNet(num_classes=1)
    with pytest.raises(ValueError, match="hidden width"):
        MLP(2, hidden=(20, 0))
    assert _parameters(MLP(3, hidden=())) == 3 * 2 + 2, "no hidden layer: a linear model"


# ----------------------------------------------------------------------------------------------
# Normalize
# ----------------------------------------------------------------------------------------------


def test_normalize_math() -> None:
    x = torch.rand(5, 3, 4, 6)
    out = Normalize(CIFAR10_MEAN, CIFAR10_STD)(x)
    for c in range(3):
        expected = (x[:, c] - CIFAR10_MEAN[c]) / CIFAR10_STD[c]
        torch.testing.assert_close(out[:, c], expected)

    v = torch.randn(7, 2)
    torch.testing.assert_close(Normalize([1.0, -2.0], [2.0, 0.5])(v)[:, 1], (v[:, 1] + 2) / 0.5)
    torch.testing.assert_close(Normalize(0.5, 2.0)(v), (v - 0.5) / 2.0)
    torch.testing.assert_close(Normalize(0.0, [1.0, 4.0])(v), v / torch.tensor([1.0, 4.0]))
    # One value per channel for one channel is a scalar: it also applies to flattened inputs.
    flat = torch.rand(3, 784)
    torch.testing.assert_close(Normalize(MNIST_MEAN, MNIST_STD)(flat), (flat - 0.1307) / 0.3081)


def test_normalize_buffers_follow_model() -> None:
    model = resnet20().eval()
    assert isinstance(model[0], Normalize), "normalisation must be the first layer"
    state = model.state_dict()
    assert torch.equal(state["0.std"], torch.tensor(CIFAR10_STD))

    model.to(torch.float64)
    assert model[0].mean.dtype == torch.float64
    out = model(torch.rand(2, 3, 32, 32, dtype=torch.float64))
    assert out.dtype == torch.float64

    reloaded = cifar_resnet(20, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    reloaded.load_state_dict(resnet20().state_dict())
    assert torch.equal(reloaded[0].mean, torch.tensor(CIFAR10_MEAN)), "stats load from state_dict"


@pytest.mark.parametrize(
    ("mean", "std", "match"),
    [
        (0.0, 0.0, "std must be > 0"),
        ((0.1, 0.2), (0.3, -1.0), "std must be > 0"),
        (float("nan"), 1.0, "mean must be finite"),
        ([[0.1]], 1.0, "1-D sequence"),
        ((), 1.0, "1-D sequence"),
        ("a", 1.0, "mean must be a number"),
        ((0.1, 0.2, 0.3), (0.2, 0.3), "mean has 3 values but std has 2"),
    ],
)
def test_normalize_rejects_bad_stats(mean, std, match) -> None:
    with pytest.raises(ValueError, match=match):
        Normalize(mean, std)


def test_normalize_rejects_wrong_channels() -> None:
    with pytest.raises(ValueError, match=r"expected \(n, 3, \.\.\.\)"):
        Normalize(CIFAR10_MEAN, CIFAR10_STD)(torch.rand(2, 1, 28, 28))


# ----------------------------------------------------------------------------------------------
# Memory format, mixed precision, gradients
# ----------------------------------------------------------------------------------------------


def test_channels_last_matches_contiguous() -> None:
    torch.manual_seed(0)
    model = resnet20().eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        x_cl = x.to(memory_format=torch.channels_last)
        assert model_cl[0](x_cl).is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(model_cl(x_cl), expected, rtol=1e-4, atol=1e-5)


def test_autocast_bfloat16_forward() -> None:
    torch.manual_seed(0)
    model = resnet20().eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out).all()
    # bfloat16 keeps 8 significant bits. Observed (seeds 0-2): max |error| 0.016-0.046 on logits
    # up to 4-8 in magnitude, well inside this tolerance.
    torch.testing.assert_close(out.float(), expected, rtol=0.1, atol=0.1)


@pytest.mark.parametrize(
    ("name", "shape"),
    [("lenet", (1, 28, 28)), ("resnet20", (3, 32, 32)), ("mlp", (2,)), ("lenet", (1, 8, 8))],
)
def test_gradients_flow(name, shape) -> None:
    torch.manual_seed(0)
    model = build_model(name, 10, shape).train()
    x = torch.rand(4, *shape, requires_grad=True)
    loss = nn.functional.cross_entropy(model(x), torch.arange(4))
    loss.backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), param_name
        assert param.grad.abs().sum() > 0, f"no gradient reaches {param_name}"
    assert x.grad is not None and x.grad.abs().sum() > 0, "gradient must reach the input"


# ----------------------------------------------------------------------------------------------
# build_model
# ----------------------------------------------------------------------------------------------


def test_build_model_picks_shapes_and_stats() -> None:
    lenet = build_model("lenet", 10, (1, 28, 28))
    assert isinstance(lenet, LeNet) and lenet.conv1.in_channels == 1
    assert lenet.fc1.in_features == 4 * 4 * 50
    assert torch.equal(lenet[0].mean, torch.tensor(MNIST_MEAN[0]))

    digits = build_model("lenet", 10, (1, 8, 8))
    assert digits.conv1.padding == (2, 2) and digits.fc1.in_features == 2 * 2 * 50

    resnet = build_model("resnet110", 10, (3, 32, 32))
    assert isinstance(resnet[1], CifarResNet)
    assert len(resnet[1].layer1) == 18
    assert torch.equal(resnet[0].std, torch.tensor(CIFAR10_STD))

    grey_resnet = build_model("resnet20", 10, (1, 28, 28))
    assert grey_resnet[1].conv1.in_channels == 1
    assert grey_resnet(torch.rand(2, 1, 28, 28)).shape == (2, 10)

    mlp = build_model("mlp", 2, (60,))
    assert isinstance(mlp, MLP) and mlp.fc1.in_features == 60
    assert mlp[0].mean.item() == 0.0 and mlp[0].std.item() == 1.0

    image_mlp = build_model("mlp", 10, (1, 28, 28))
    assert image_mlp.fc1.in_features == 784
    assert image_mlp(torch.rand(2, 1, 28, 28)).shape == (2, 10)

    from_numpy = build_model("lenet", np.int64(10), np.zeros((5, 1, 28, 28)).shape[1:])
    assert from_numpy.fc2.out_features == 10, "numpy integers are accepted"

    custom = build_model("lenet", 10, (1, 28, 28), mean=0.2860, std=0.3530)
    assert custom[0].std.item() == pytest.approx(0.3530)


@pytest.mark.parametrize(
    ("name", "shape", "kwargs", "match"),
    [
        ("vgg16", (3, 32, 32), {}, "must be one of lenet, resnet20, resnet110, mlp"),
        ("LeNet", (1, 28, 28), {}, "must be one of"),
        ("lenet", (784,), {}, r"needs image samples of shape \(C, H, W\).*use 'mlp'"),
        ("resnet20", (32, 32), {}, r"needs image samples of shape \(C, H, W\)"),
        ("lenet", (1, 2, 2), {}, "at least 4x4"),
        ("mlp", (), {}, "non-empty tuple of positive integers"),
        ("mlp", (0, 3), {}, "non-empty tuple of positive integers"),
        ("lenet", (1, 28, 28), {"mean": 0.5}, "both mean and std"),
    ],
)
def test_build_model_rejects(name, shape, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        build_model(name, 10, shape, **kwargs)
