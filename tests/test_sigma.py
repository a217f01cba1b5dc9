"""sigma(x) functions: Eq. 1, semi-elasticity (Theorem 8), clamp, m choice, validation."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from idrs_lightning.sigma.knn import mean_knn_distance
from idrs_lightning.sigma.levels import KnnSigma


def _semi_elasticity_violation(x: np.ndarray, sigma: np.ndarray, r: float) -> float:
    """max over pairs of |log s_i - log s_j| - r ||x_i - x_j|| (must be <= 0)."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    distance = np.sqrt(((flat[:, None] - flat[None]) ** 2).sum(axis=2))
    log_sigma = np.log(sigma)
    return float(np.max(np.abs(log_sigma[:, None] - log_sigma[None]) - r * distance))


@pytest.mark.parametrize("clamp", [(None, None), (0.2, 0.3)])
def test_semi_elastic_on_random_pairs(clamp) -> None:
    rng = np.random.default_rng(0)
    train = rng.random((400, 16))
    test = rng.random((150, 16))
    sigma = KnnSigma(sigma_b=0.25, r=0.5, k=10, m="mean", sigma_min=clamp[0], sigma_max=clamp[1])
    sigma = sigma.with_m_from(mean_knn_distance(train, train, 10, exclude_self=True))
    values = sigma(mean_knn_distance(test, train, 10))
    assert _semi_elasticity_violation(test, values, sigma.r) <= 1e-12
    if clamp[0] is not None:
        assert values.min() >= clamp[0] and values.max() <= clamp[1]


def test_semi_elastic_on_real_image_pairs() -> None:
    images = load_digits().images.astype(np.float32) / 16.0
    train, test = images[:1200], images[1200:]
    sigma = KnnSigma(sigma_b=0.12, r=0.2, k=20, m="min").with_m_from(
        mean_knn_distance(train, train, 20, exclude_self=True)
    )
    values = sigma(mean_knn_distance(test, train, 20))
    assert values.std() / values.mean() > 0.02, "sigma(x) should vary across real images"
    assert _semi_elasticity_violation(test, values, sigma.r) <= 1e-12


def test_equation_1() -> None:
    sigma = KnnSigma(sigma_b=0.5, r=0.01, k=20, m=5.0)
    distance = np.array([0.0, 5.0, 105.0])
    np.testing.assert_allclose(sigma(distance), 0.5 * np.exp(0.01 * (distance - 5.0)))
    assert sigma(np.array([5.0]))[0] == 0.5


def test_m_choices_follow_appendix_e1() -> None:
    train = np.array([2.0, 4.0, 9.0])
    assert KnnSigma(0.1, 0.01, m="min").with_m_from(train).m == 2.0
    assert KnnSigma(0.1, 0.01, m="mean").with_m_from(train).m == 5.0
    assert KnnSigma(0.1, 0.01, m=1.5).with_m_from(train).m == 1.5
    with pytest.raises(ValueError, match="m is still 'mean'"):
        KnnSigma(0.1, 0.01, m="mean")(train)


def test_torch_and_numpy_agree_and_keep_device_dtype() -> None:
    sigma = KnnSigma(sigma_b=0.25, r=0.05, k=5, m=3.0, sigma_max=0.3)
    distance = np.linspace(0.0, 10.0, 11)
    as_tensor = sigma(torch.tensor(distance, dtype=torch.float32))
    assert as_tensor.dtype == torch.float32
    np.testing.assert_allclose(as_tensor.numpy(), sigma(distance), rtol=1e-6)


def test_rate_zero_is_constant_sigma_b() -> None:
    sigma = KnnSigma(sigma_b=0.5, r=0.0, m=3.0)
    np.testing.assert_array_equal(sigma(np.array([0.0, 3.0, 1e6])), [0.5, 0.5, 0.5])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigma_b": 0.0}, "sigma_b must be a positive number"),
        ({"sigma_b": float("nan")}, "sigma_b must be a positive number"),
        ({"r": -0.01}, "r must be a non-negative number"),
        ({"k": 0}, "k must be a positive integer"),
        ({"k": 2.5}, "k must be a positive integer"),
        ({"m": "median"}, "m must be a number, 'min' or 'mean'"),
        ({"sigma_min": 0.5, "sigma_max": 0.1}, r"sigma_min \(0.5\) must not exceed sigma_max"),
        ({"sigma_max": -1.0}, "sigma_max must be a positive number or None"),
    ],
)
def test_bad_configuration(kwargs: dict, message: str) -> None:
    arguments = {"sigma_b": 0.25, "r": 0.01} | kwargs
    with pytest.raises(ValueError, match=message):
        KnnSigma(**arguments)
