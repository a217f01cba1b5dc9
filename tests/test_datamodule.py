"""SmoothingDataModule: (x, y, sigma) batches, Eq. 1 at test time, cache reuse, bad config."""

import numpy as np
import pytest
import torch
from helpers import brute_force_mean_knn

from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.data.sources import load_split
from idrs_lightning.validation import InvalidSetting


def _module(tmp_path, **kwargs) -> SmoothingDataModule:
    # the whole training split as the kNN reference (no validation part), as the paper has it
    options = {"dataset": "digits", "root": str(tmp_path), "sigma_b": 0.25, "k": 5}
    options |= {"val_fraction": 0} | kwargs
    return SmoothingDataModule(**options)


def test_batches_carry_sigma_from_equation_1(tmp_path) -> None:
    dm = _module(tmp_path, r=0.05, trr=0.1, m="mean", batch_size=32)
    dm.setup("fit")
    x, y, sigma = next(iter(dm.test_dataloader()))
    assert x.shape == (32, 1, 8, 8) and y.dtype == torch.int64 and sigma.shape == (32,)

    train = load_split("digits", "train", tmp_path)
    test = load_split("digits", "test", tmp_path)
    train_d = brute_force_mean_knn(train.x, train.x, 5, leave_out=True)
    test_d = brute_force_mean_knn(test.x, train.x, 5, leave_out=False)
    m = train_d.mean()
    assert dm.resolved_m == pytest.approx(m, rel=1e-12)
    assert dm.state_dict() == {"m": dm.resolved_m}  # saved with checkpoints
    np.testing.assert_allclose(
        dm.test_dataloader().dataset.sigma.numpy(), 0.25 * np.exp(0.05 * (test_d - m)), rtol=1e-6
    )
    np.testing.assert_allclose(
        dm.datasets["train"].sigma.numpy(), 0.25 * np.exp(0.1 * (train_d - m)), rtol=1e-6
    )
    assert dm.r == 0.05


def test_constant_rates_need_no_knn(tmp_path) -> None:
    dm = _module(tmp_path, r=0.0, trr=0.0, train_sigma_b=0.263)
    dm.setup("fit")
    assert torch.all(dm.datasets["train"].sigma == torch.tensor(0.263, dtype=torch.float32))
    assert torch.all(dm.test_dataloader().dataset.sigma == torch.tensor(0.25, dtype=torch.float32))
    assert not (tmp_path / "knn-cache").exists()


def test_cached_distances_are_reused_across_sigma_settings(tmp_path) -> None:
    first = _module(tmp_path, r=0.05, m="min")
    first.setup("fit")
    first.test_dataloader()
    files = sorted((tmp_path / "knn-cache").glob("knn-*.npz"))
    assert len(files) == 2  # train (leave-one-out) and test
    second = _module(tmp_path, r=0.01, sigma_b=0.5, m="min", sigma_max=0.6)
    second.setup("fit")
    second.test_dataloader()
    assert sorted((tmp_path / "knn-cache").glob("knn-*.npz")) == files
    np.testing.assert_array_equal(first.distances["test"], second.distances["test"])
    assert second.test_dataloader().dataset.sigma.max() <= 0.6


def test_evaluation_subset_is_fixed_and_stratified(tmp_path) -> None:
    dm = _module(tmp_path, eval_subset_size=100, eval_seed=3)
    dm.setup("test")
    subset = dm.evaluation_subset()
    again = _module(tmp_path, eval_subset_size=100, eval_seed=3)
    again.setup("test")
    np.testing.assert_array_equal(subset, again.evaluation_subset())
    labels = load_split("digits", "test", tmp_path).y[subset]
    assert len(subset) == 100 and np.bincount(labels, minlength=10).min() >= 9
    assert len(dm.evaluation_subset(20)) == 20
    assert set(dm.evaluation_subset(20)) != set(
        _module(tmp_path, eval_seed=4).evaluation_subset(20)
    )
    with pytest.raises(ValueError, match=r"eval_subset_size \(10000\) exceeds the test split"):
        dm.evaluation_subset(10_000)


def test_certification_inputs_input_dependent_and_constant(tmp_path) -> None:
    dm = _module(tmp_path, r=0.05, m=1.5)
    dm.setup("test")
    chosen = [7, 3, 250]
    inputs = dm.certification_inputs(chosen)
    test = load_split("digits", "test", tmp_path)
    train = load_split("digits", "train", tmp_path)
    distance = brute_force_mean_knn(test.x[chosen], train.x, 5, leave_out=False)
    assert inputs.indices == chosen and inputs.r == 0.05
    np.testing.assert_array_equal(inputs.x.numpy(), test.x[chosen])
    np.testing.assert_array_equal(inputs.y, test.y[chosen])
    np.testing.assert_allclose(inputs.sigma, 0.25 * np.exp(0.05 * (distance - 1.5)), 1e-6)
    constant = dm.certification_inputs(chosen, constant=True)
    assert constant.r == 0.0 and torch.all(constant.sigma == torch.tensor(0.25))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 500\) \(the test split\)"):
        dm.certification_inputs([0, 500])


def test_certification_needs_no_training_distances(tmp_path) -> None:
    dm = _module(tmp_path, r=0.05, trr=0.1, m=1.5)
    dm.setup("test")
    dm.certification_inputs([0, 1])
    assert list(dm.distances) == ["test"]  # no leave-one-out training distances
    constant = _module(tmp_path / "constant", r=0.05, trr=0.1, m="mean")
    constant.setup("test")
    constant.certification_inputs([0, 1], constant=True)
    assert not (tmp_path / "constant" / "knn-cache").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "imagenet"}, "dataset must be one of"),
        ({"r": -0.1}, "r must be a non-negative number"),
        ({"sigma_b": 0.0}, "sigma_b must be a positive number"),
        ({"trr": float("nan")}, "^trr must be a non-negative number"),
        ({"trr": -0.01}, "^trr must be a non-negative number, got -0.01"),
        ({"train_sigma_b": 0.0}, "^train_sigma_b must be a positive number"),
        ({"m": "median"}, "m must be a number, 'min' or 'mean'"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"eval_subset_size": 0}, "eval_subset_size must be an integer >= 1, got 0"),
    ],
)
def test_bad_configuration_fails_at_construction(tmp_path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _module(tmp_path, **kwargs)


def test_k_larger_than_training_set_fails_before_knn(tmp_path) -> None:
    dm = _module(tmp_path, r=0.01, k=5000)
    with pytest.raises(ValueError, match=r"k \(5000\) must be smaller than the training set"):
        dm.setup("fit")
    assert not (tmp_path / "knn-cache").exists()


def test_m_from_a_seeded_sample_of_the_training_set(tmp_path) -> None:
    dm = _module(tmp_path, r=0.05, trr=0.0, m="mean", m_sample_size=300)
    dm.setup("fit")
    dm.test_dataloader()  # test-time sigma(x) chooses m
    train = load_split("digits", "train", tmp_path)
    rows = np.sort(np.random.default_rng(0).choice(len(train.y), 300, replace=False))
    leave_one_out = brute_force_mean_knn(train.x, train.x, 5, leave_out=True)
    assert dm.resolved_m == pytest.approx(leave_one_out[rows].mean(), rel=1e-12)
    assert "train" not in dm.distances  # constant-noise training needs no training sigma


def test_a_restored_m_rebuilds_the_sigmas(tmp_path) -> None:
    # Lightning calls setup("fit") before load_state_dict when a training run resumes.
    dm = _module(tmp_path, r=0.05, trr=0.1, m="mean")
    dm.setup("fit")
    dm.load_state_dict({"m": 2.0})
    assert dm.resolved_m == 2.0 and dm.state_dict() == {"m": 2.0}
    train = load_split("digits", "train", tmp_path)
    train_d = brute_force_mean_knn(train.x, train.x, 5, leave_out=True)
    dm.train_dataloader()  # rebuilt with the restored m
    np.testing.assert_allclose(
        dm.datasets["train"].sigma.numpy(), 0.25 * np.exp(0.1 * (train_d - 2.0)), rtol=1e-6
    )


def _rows_in(rows: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Which of ``rows`` (flattened) occur among ``pool``'s rows."""
    keys = {row.tobytes() for row in pool.reshape(len(pool), -1)}
    return np.array([row.tobytes() in keys for row in rows.reshape(len(rows), -1)])


def test_validation_is_carved_from_training_and_never_the_test_split(tmp_path) -> None:
    module = SmoothingDataModule(
        dataset="digits", root=str(tmp_path), r=0.05, k=5, m="mean", val_fraction=0.2, val_seed=3
    )
    module.setup("fit")
    loaders = {"val": module.val_dataloader(), "test": module.test_dataloader()}
    val_x = torch.cat([x for x, _, _ in loaders["val"]]).numpy()
    test_x = torch.cat([x for x, _, _ in loaders["test"]]).numpy()
    train = module.split_arrays("train")
    source = load_split("digits", "train", str(tmp_path))
    assert len(val_x) == round(0.2 * len(source)) and len(train) + len(val_x) == len(source)
    assert _rows_in(val_x, source.x).all(), "validation inputs come from the training split"
    assert not _rows_in(val_x, test_x).any(), "validation batches hold no test input"
    assert not _rows_in(val_x, train.x).any(), "validation and training parts are disjoint"
    # stratified: each class keeps its share up to one input
    val_y = torch.cat([y for _, y, _ in loaders["val"]]).numpy()
    expected = 0.2 * np.bincount(source.y)
    assert np.all(np.abs(np.bincount(val_y) - expected) <= 1)
    # sigma(x) of validation inputs is Eq. 1 against the remaining training points only
    val_sigma = torch.cat([s for _, _, s in loaders["val"]]).numpy().astype(np.float64)
    distances = brute_force_mean_knn(val_x, train.x, 5, leave_out=False)
    m = float(module.resolved_m)
    expected_sigma = 0.25 * np.exp(0.05 * (distances - m))
    np.testing.assert_allclose(val_sigma, expected_sigma, rtol=1e-5)


def test_no_validation_split_when_its_fraction_is_zero(tmp_path) -> None:
    module = SmoothingDataModule(dataset="digits", root=str(tmp_path), val_fraction=0)
    module.setup("fit")
    assert module.val_dataloader() == []
    assert len(module.split_arrays("train")) == len(load_split("digits", "train", str(tmp_path)))
    with pytest.raises(InvalidSetting, match="val_fraction"):
        module.evaluation_subset(10, split="val")


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1e-9, float("nan")])
def test_a_validation_fraction_out_of_range_is_refused(tmp_path, fraction: float) -> None:
    with pytest.raises(InvalidSetting, match="val_fraction"):
        module = SmoothingDataModule(dataset="digits", root=str(tmp_path), val_fraction=fraction)
        module.setup("fit")
