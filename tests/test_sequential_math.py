"""Sequential CERTIFY: coverage of the confidence sequence, false claims, thresholds, schedule.

Soundness is checked against known truth: Bernoulli streams of known p (exact binomial
increments between looks), and the real radius functions at the returned thresholds.
"""

import numpy as np
import pytest
from scipy import special, stats

from idrs_lightning.certification import (
    clopper_pearson_lower,
    clopper_pearson_upper,
    cohen_radius,
    idrs_radius,
)
from idrs_lightning.certification.sequential import (
    STOP_LEVEL,
    ZERO_RADIUS_THRESHOLD,
    SequentialCertifier,
    budget_thresholds,
    clear_threshold_cache,
    look_schedule,
    radius_thresholds,
    settle,
)
from tests.sequential_reference import confidence_sequence, sequential_certify, stop_certificate

LOOKS = look_schedule(100_000)
SIGMA = 0.25
GRID = np.arange(13) * 0.0625  # 0 .. 3 sigma, step sigma / 4
REPS = 20_000


def _streams(p: float, reps: int, looks: np.ndarray, seed: int) -> np.ndarray:
    """Cumulative successes of ``reps`` Bernoulli(p) streams at the looks: [reps, J]."""
    rng = np.random.default_rng(seed)
    increments = rng.binomial(np.diff(looks, prepend=0), p, size=(reps, looks.size))
    return increments.cumsum(axis=1)


def _tolerance(reps: int, alpha: float) -> float:
    """Largest failure count consistent with a rate <= alpha: the 1e-6 upper quantile."""
    return float(stats.binom.isf(1e-6, reps, alpha))


# --- look_schedule -----------------------------------------------------------------------


def test_look_schedule_default_grows_by_a_fifth_from_100() -> None:
    # 100 * 1.2**k rounded up to whole noise blocks of 100 samples, repeats dropped
    expected = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1100, 1300, 1600, 1900, 2300]
    expected += [2700, 3200, 3900, 4700, 5600, 6700, 8000, 9600, 11500, 13800, 16500, 19800]
    expected += [23800, 28500, 34200, 41100, 49300, 59100, 70900, 85100, 100000]
    assert look_schedule(100_000, step=100).tolist() == expected
    assert look_schedule(100_000).dtype == np.int64
    assert look_schedule(100_000)[:4].tolist() == [100, 120, 144, 173]  # step 1: ceil only
    assert look_schedule(85_100, step=100).tolist() == expected[:-1]  # n_max on a look
    assert look_schedule(50).tolist() == [50]
    assert look_schedule(100).tolist() == [100]
    assert look_schedule(101).tolist() == [100, 101]


@pytest.mark.parametrize(
    ("n_max", "first", "ratio", "step"),
    [
        (1000, 1, 1.1, 1),
        (10**6, 7, 1.5, 1),
        (50, 3, 3, 1),
        (100_000, 100, 1.5, 100),
        (10_050, 1, 1.3, 7),
    ],
)
def test_look_schedule_is_strictly_increasing_geometric(
    n_max: int, first: int, ratio: float, step: int
):
    looks = look_schedule(n_max, first, ratio, step)
    assert looks[0] == -(-first // step) * step and looks[-1] == n_max
    assert np.all(np.diff(looks) > 0)
    assert np.all(looks[:-1] % step == 0)
    # every look but the last is first * ratio**k rounded up to a multiple of step: the
    # least such multiple of step at or above some term of the geometric sequence
    terms = first * ratio ** np.arange(200)
    for look in looks[:-1]:
        assert np.any((look >= terms - 1e-9 * terms) & (look - terms < step))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_max": 0}, "n_max"),
        ({"n_max": 10.5}, "n_max"),
        ({"n_max": 100, "first": 0}, "first"),
        ({"n_max": 100, "ratio": 1.0}, "ratio"),
        ({"n_max": 100, "ratio": 0.5}, "ratio"),
        ({"n_max": 100, "ratio": np.nan}, "ratio"),
        ({"n_max": 10**9, "first": 1, "ratio": 1 + 1e-9}, "ratio"),
    ],
)
def test_look_schedule_rejects_bad_arguments(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        look_schedule(**kwargs)


# --- confidence_sequence: coverage at every look ---------------------------------------------


@pytest.mark.parametrize("alpha", [0.001, 0.05])
@pytest.mark.parametrize("p", [0.5, 0.9, 0.99, 0.999])
def test_confidence_sequence_covers_p_at_every_look(p: float, alpha: float) -> None:
    counts = _streams(p, REPS, LOOKS, seed=int(p * 1e4) + int(alpha * 1e4))
    lower, upper = confidence_sequence(counts, LOOKS, alpha)
    assert lower.shape == upper.shape == counts.shape
    too_high = (lower > p).any(axis=1).sum()  # the lower bound above p at ANY look
    too_low = (upper < p).any(axis=1).sum()
    assert too_high <= _tolerance(REPS, alpha), too_high
    assert too_low <= _tolerance(REPS, alpha), too_low


def test_the_coverage_check_detects_uncorrected_peeking() -> None:
    # Power of the check above: Clopper-Pearson at the full alpha at each of the 8 looks
    # (no union bound) exceeds p at some look far more often than alpha.
    p, alpha = 0.5, 0.05
    counts = _streams(p, REPS, LOOKS, seed=11)
    naive = clopper_pearson_lower(counts, LOOKS, alpha)
    failures = (naive > p).any(axis=1).sum()
    assert failures > _tolerance(REPS, alpha), failures
    lower, _ = confidence_sequence(counts, LOOKS, alpha)
    assert (lower > p).any(axis=1).sum() <= _tolerance(REPS, alpha)


def test_confidence_sequence_is_clopper_pearson_at_alpha_over_j() -> None:
    counts = np.array([[990, 1985, 3970], [0, 5, 4000]])
    looks = np.array([1000, 2000, 4000, 8000])
    lower, upper = confidence_sequence(counts, looks, 0.01)
    np.testing.assert_array_equal(lower, clopper_pearson_lower(counts, looks[:3], 0.0025))
    np.testing.assert_array_equal(upper, clopper_pearson_upper(counts, looks[:3], 0.0025))
    # a stream observed so far: the same bounds as the first columns of the whole stream
    part_lower, part_upper = confidence_sequence(counts[:, :1], looks, 0.01)
    np.testing.assert_array_equal(part_lower, lower[:, :1])
    np.testing.assert_array_equal(part_upper, upper[:, :1])
    one_lower, _ = confidence_sequence(counts[0], looks, 0.01)  # 1-D: one stream
    np.testing.assert_array_equal(one_lower, lower[0])


@pytest.mark.parametrize(
    ("successes", "looks", "alpha", "name"),
    [
        ([[1001]], [1000, 2000], 0.01, "successes"),
        ([[-1]], [1000], 0.01, "successes"),
        ([[1.5]], [1000], 0.01, "successes"),
        ([[1, 2, 3]], [1000, 2000], 0.01, "successes"),
        (5, [1000], 0.01, "successes"),
        ([[1]], [1000, 1000], 0.01, "looks"),
        ([[1]], [0, 1000], 0.01, "looks"),
        ([[1]], [[1000]], 0.01, "looks"),
        ([[1]], [1000], 0.0, "alpha"),
        ([[1]], [1000], [0.01, 0.02], "alpha"),
    ],
)
def test_confidence_sequence_rejects_bad_arguments(successes, looks, alpha, name) -> None:
    with pytest.raises(ValueError, match=name):
        confidence_sequence(successes, looks, alpha)


# --- sequential_certify: false claims and efficiency -----------------------------------------


def _grid_with_truth(p: float) -> tuple[np.ndarray, np.ndarray]:
    """Cohen grid plus a radius just above the true one: its threshold is barely above p."""
    radii = np.append(GRID, SIGMA * special.ndtri(p) * (1 + 1e-9))
    return radii, radius_thresholds(radii, SIGMA)


@pytest.mark.parametrize("alpha", [0.001, 0.05])
@pytest.mark.parametrize("p", [0.5, 0.9, 0.99, 0.999])
def test_wrong_certifications_happen_at_rate_at_most_alpha(p: float, alpha: float) -> None:
    radii, thresholds = _grid_with_truth(p)
    assert p < thresholds[-1] < p + 1e-9  # the near-miss radius
    counts = _streams(p, REPS, LOOKS, seed=7 + int(p * 1e4) + int(alpha * 1e4))
    result = sequential_certify(counts, LOOKS, thresholds, alpha)
    wrong = (result.certified & (thresholds > p)).any(axis=1).sum()
    assert wrong <= _tolerance(REPS, alpha), wrong
    # the final judge: the radius from the stopping lower bound against the true radius
    certificate = stop_certificate(result.p_a_lower, radii, SIGMA)
    true_radius = cohen_radius(SIGMA, p) if p > 0.5 else 0.0
    overclaims = (certificate.radius > true_radius) | (certificate.certified[:, 0] & (p <= 0.5))
    assert overclaims.sum() <= _tolerance(REPS, alpha), overclaims.sum()
    assert (result.p_a_lower > p).sum() <= _tolerance(REPS, alpha)


def test_a_single_threshold_at_p_is_the_worst_case_and_still_sound() -> None:
    # One radius whose threshold is the double just above p: the input keeps sampling until
    # the bounds separate, the most chances to overclaim.
    p, alpha = 0.9, 0.05
    threshold = np.array([np.nextafter(p, 1.0)])
    counts = _streams(p, REPS, LOOKS, seed=3)
    result = sequential_certify(counts, LOOKS, threshold, alpha, stop_level=alpha / LOOKS.size)
    assert result.certified.sum() <= _tolerance(REPS, alpha)
    assert result.impossible.sum() <= _tolerance(REPS, alpha)  # p is not below the threshold
    # p is below the budget threshold: stopping for futility is right, and most streams
    # still need the last look to show it
    budget = budget_thresholds(threshold, LOOKS[-1], alpha / LOOKS.size)
    assert p < budget[0]
    assert 0.3 < np.mean(result.n == LOOKS[-1]) < 0.95


@pytest.mark.parametrize("p", [0.6, 0.9, 0.999])
def test_beyond_budget_claims_are_wrong_at_rate_at_most_alpha(p: float) -> None:
    # A threshold whose budget rate is just below p: 'n_max samples would not certify it'
    # is then false, and may be claimed only when the upper sequence fails.
    alpha, level = 0.05, 0.05 / LOOKS.size
    k = np.ceil(p * LOOKS[-1])
    threshold = np.array([np.nextafter(clopper_pearson_lower(k - 1, LOOKS[-1], level), 1.0)])
    budget = budget_thresholds(threshold, LOOKS[-1], level)
    assert budget[0] <= p
    counts = _streams(p, REPS, LOOKS, seed=11 + int(p * 1e3))
    result = sequential_certify(counts, LOOKS, threshold, alpha, stop_level=level)
    assert result.beyond_budget.sum() <= _tolerance(REPS, alpha), result.beyond_budget.sum()
    assert (result.p_a_upper < p).sum() <= _tolerance(REPS, alpha)


def test_budget_thresholds_against_enumeration() -> None:
    # Every count at a small n_max, bounded by scipy's beta quantile (Clopper-Pearson's
    # definition), not by the product's bound.
    n_max, level = 60, 0.01
    k = np.arange(n_max + 1)
    lower = np.where(k > 0, stats.beta.ppf(level, np.maximum(k, 1), n_max - k + 1), 0.0)
    thresholds = np.array([ZERO_RADIUS_THRESHOLD, 0.6, 0.8, 0.9, 0.92, 0.95, 0.99, np.inf])
    got = budget_thresholds(thresholds, n_max, level)
    for t, u in zip(thresholds, got, strict=True):
        # the product's bound may be below scipy's by its outward rounding (~1e-11), never above
        loose, strict = k[lower >= t * (1 - 1e-9)], k[lower >= t * (1 + 1e-9)]
        if strict.size:
            assert loose[0] <= u * n_max <= strict[0] and u >= t
        if not loose.size:
            assert u == np.inf
    assert got[-1] == np.inf and got[-2] == np.inf  # 0.99 needs more than 60 samples
    # per input (one row each), repeated thresholds included: the same values in place
    rows = np.stack([thresholds, thresholds[::-1]])
    np.testing.assert_array_equal(budget_thresholds(rows, n_max, level), np.stack([got, got[::-1]]))


@pytest.mark.slow  # a real training or statistics run
def test_efficiency_at_alpha_0_001(capsys: pytest.CaptureFixture[str]) -> None:
    thresholds = radius_thresholds(GRID, SIGMA)
    lines = []
    mean_n = {}
    for p in (0.3, 0.9, 0.99, 0.999):
        counts = _streams(p, REPS, LOOKS, seed=100 + int(p * 1e3))
        result = sequential_certify(counts, LOOKS, thresholds, 0.001)
        fixed = stop_certificate(
            clopper_pearson_lower(counts[:, -1], LOOKS[-1], 0.001), GRID, SIGMA
        )
        ours = stop_certificate(result.p_a_lower, GRID, SIGMA)
        assert np.all(ours.certified >= result.certified)  # thresholds never overstate
        mean_n[p] = result.n.mean()
        lines.append(
            f"p={p}: mean samples {mean_n[p]:.0f} (fixed 100000), stopped early "
            f"{np.mean(result.n < LOOKS[-1]):.3f}, all settled {result.settled.mean():.3f}, "
            f"grid radii certified {ours.certified.sum(1).mean():.3f} "
            f"(fixed n: {fixed.certified.sum(1).mean():.3f})"
        )
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert mean_n[0.3] <= 1.1 * LOOKS[0]  # abstains at the first look (a few at the next)
    assert mean_n[0.99] < 60_000 and mean_n[0.9] < 70_000


# --- settle and the look-by-look certifier -------------------------------------------------


def test_settle_by_hand() -> None:
    thresholds = np.array([ZERO_RADIUS_THRESHOLD, 0.9, 0.95, 0.96, 0.98, np.inf])
    certified, impossible = settle(0.95, 0.97, thresholds)
    assert certified.tolist() == [True, True, True, False, False, False]
    assert impossible.tolist() == [False, False, False, False, True, True]
    # abstain: an upper bound at or below 1/2 settles every radius as impossible
    certified, impossible = settle([0.3, 0.4], [0.5, 0.45], thresholds)
    assert not certified.any() and impossible.all()
    # radius 0 needs lower > 1/2 exactly (Cohen's non-abstain rule)
    assert not settle(0.5, 0.6, thresholds)[0][0]
    assert settle(np.nextafter(0.5, 1), 0.6, thresholds)[0][0]
    with pytest.raises(ValueError, match="thresholds"):
        settle(0.9, 0.95, [0.5])
    with pytest.raises(ValueError, match="lower"):
        settle(1.5, 0.95, [0.6])


def _replay_reference(counts, looks, thresholds, alpha):
    """Stopping look and bounds from confidence_sequence, running extrema and settle."""
    lower, upper = confidence_sequence(counts, looks, alpha, STOP_LEVEL)
    lower, upper = np.maximum.accumulate(lower, axis=1), np.minimum.accumulate(upper, axis=1)
    certified, _ = settle(lower, upper, thresholds[:, None, :])
    budget = budget_thresholds(thresholds, looks[-1], alpha / looks.size)[:, None, :]
    settled = (certified | (upper[..., None] < budget)).all(axis=2)
    stop = np.where(settled.any(axis=1), settled.argmax(axis=1), looks.size - 1)
    rows = np.arange(counts.shape[0])
    return stop, lower[rows, stop], upper[rows, stop], certified[rows, stop]


def test_certifier_look_by_look_matches_batch_and_reference() -> None:
    rng = np.random.default_rng(5)
    p = rng.choice([0.3, 0.55, 0.9, 0.97, 0.99, 0.999, 1.0], size=3000)
    sigma = rng.choice([0.12, 0.25, 0.5], size=p.size)
    thresholds = radius_thresholds(GRID, sigma)
    alpha = 0.01
    increments = rng.binomial(np.diff(LOOKS, prepend=0), p[:, None])
    streams = increments.cumsum(axis=1)
    # the caller: draws, for active inputs only, the samples the next look needs
    certifier = SequentialCertifier(thresholds, LOOKS, alpha)
    drawn = np.zeros(p.size, dtype=np.int64)
    counts = np.zeros(p.size, dtype=np.int64)
    j = 0
    while not certifier.finished:
        active = np.flatnonzero(certifier.active)
        target = certifier.next_n[active]
        assert np.all(target - drawn[active] == LOOKS[j] - (LOOKS[j - 1] if j else 0))
        counts[active] += increments[active, j]
        drawn[active] = target
        certifier.update(active, counts[active])
        j += 1
    result = certifier.result()
    assert np.array_equal(result.n, drawn)
    batch = sequential_certify(streams, LOOKS, thresholds, alpha)
    for a, b in zip(result, batch, strict=True):
        np.testing.assert_array_equal(a, b)
    stop, lower, upper, certified = _replay_reference(streams, LOOKS, thresholds, alpha)
    np.testing.assert_array_equal(result.look, stop)
    np.testing.assert_array_equal(result.n, LOOKS[stop])
    np.testing.assert_array_equal(result.p_a_lower, lower)
    np.testing.assert_array_equal(result.p_a_upper, upper)
    np.testing.assert_array_equal(result.certified, certified)
    assert not (result.impossible & ~result.beyond_budget).any()
    unsettled = ~result.certified & ~result.beyond_budget  # neither answer known
    assert np.array_equal(result.settled, ~unsettled.any(axis=1))
    assert np.all(result.settled | (result.n == LOOKS[-1]))
    assert np.median(result.n[p == 0.3]) == LOOKS[0] and result.n[p == 0.3].max() <= 1000
    # p = 1 and sigma = 0.5: the grid ends at 1.5 sigma, certified at the first look whose
    # all-successes lower bound (alpha / J)**(1 / n) reaches Phi(1.5); with
    # sigma = 0.12 it ends at 6.25 sigma, out of reach of 100,000 samples (never impossible,
    # as every upper bound is 1, but beyond the budget from the start): the input stops once
    # the reachable radii are certified, at the look that reaches 3.8 sigma
    easy, hard = (p == 1.0) & (sigma == 0.5), (p == 1.0) & (sigma == 0.12)
    reach = (alpha / LOOKS.size) ** (1 / LOOKS) >= special.ndtr(1.5)
    assert np.all(result.certified[easy]) and np.all(result.n[easy] == LOOKS[reach][0])
    assert not result.certified[hard, -1].any() and result.beyond_budget[hard, -1].all()
    assert np.all(result.settled[hard]) and np.all(result.n[hard] < LOOKS[-1])


def test_inputs_move_through_the_looks_independently() -> None:
    # Inputs advanced in a random interleaving (as forward passes shared by inputs at
    # different looks deliver them) end exactly where the lockstep replay ends.
    rng = np.random.default_rng(8)
    p = rng.choice([0.3, 0.9, 0.99, 0.999, 1.0], size=400)
    thresholds = radius_thresholds(GRID, SIGMA)[None, :].repeat(p.size, axis=0)
    streams = rng.binomial(np.diff(LOOKS, prepend=0), p[:, None]).cumsum(axis=1)
    certifier = SequentialCertifier(thresholds, LOOKS, 0.001)
    made = np.zeros(p.size, dtype=np.int64)  # looks made per input
    while not certifier.finished:
        active = np.flatnonzero(certifier.active)
        rows = active[rng.random(active.size) < 0.3]
        assert np.array_equal(certifier.next_n[rows], LOOKS[made[rows]])
        certifier.update(rows, streams[rows, made[rows]])
        made[rows] += 1
    lockstep = sequential_certify(streams, LOOKS, thresholds, 0.001)
    for a, b in zip(certifier.result(), lockstep, strict=True):
        np.testing.assert_array_equal(a, b)


def test_certifier_before_any_look_and_partial_batch() -> None:
    thresholds = radius_thresholds(GRID, SIGMA)[None, :]
    certifier = SequentialCertifier(thresholds, LOOKS, 0.01)
    start = certifier.result()
    assert start.n.tolist() == [0] and start.look.tolist() == [-1]
    assert start.p_a_lower.tolist() == [0.0] and start.p_a_upper.tolist() == [1.0]
    assert certifier.next_n.tolist() == [LOOKS[0]]
    partial = sequential_certify([[LOOKS[0]]], LOOKS, thresholds, 0.01)  # first look only
    assert partial.look.tolist() == [0] and partial.certified[0, 0]


def test_certifier_rejects_misuse() -> None:
    thresholds = radius_thresholds(GRID, SIGMA)[None, :].repeat(2, axis=0)
    certifier = SequentialCertifier(thresholds, [1000, 2000], 0.01)
    with pytest.raises(ValueError, match="n_success"):
        certifier.update([0, 1], [1001, 5])
    with pytest.raises(ValueError, match="n_success"):
        certifier.update([0, 1], [5])
    with pytest.raises(ValueError, match="rows"):
        certifier.update([0, 0], [5, 5])
    with pytest.raises(ValueError, match="rows"):
        certifier.update([2], [5])
    certifier.update([0], [600])  # inputs move through the looks independently
    assert certifier.next_n.tolist() == [2000, 1000]
    with pytest.raises(ValueError, match="n_success"):
        certifier.update([0], [500])  # not cumulative
    certifier.update([0, 1], [1500, 5])
    assert certifier.active.tolist() == [False, False]  # 0 made the last look, 1 abstains
    assert certifier.finished and certifier.next_n.tolist() == [2000, 1000]
    with pytest.raises(ValueError, match="rows"):
        certifier.update([0], [1500])
    with pytest.raises(ValueError, match="thresholds"):
        SequentialCertifier(thresholds[0], [1000], 0.01)
    with pytest.raises(ValueError, match="thresholds"):
        SequentialCertifier([[0.4]], [1000], 0.01)
    with pytest.raises(ValueError, match="alpha"):
        SequentialCertifier(thresholds, [1000], 1.0)
    with pytest.raises(ValueError, match="looks"):
        SequentialCertifier(thresholds, [2000, 1000], 0.01)
    with pytest.raises(ValueError, match="successes"):
        sequential_certify([[1, 2, 3]], [1000, 2000], thresholds[:1], 0.01)
    with pytest.raises(ValueError, match="successes"):
        sequential_certify([1, 2], [1000, 2000], thresholds[:1], 0.01)


# --- radius_thresholds ----------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.12, 0.25, 0.5, 1.0])
def test_cohen_thresholds_are_where_the_radius_reaches_r(sigma: float) -> None:
    radii = np.linspace(0.0, 4.0 * sigma, 97)
    t = radius_thresholds(radii, sigma)
    assert t[0] == ZERO_RADIUS_THRESHOLD
    assert np.all(np.diff(t) > 0)
    assert np.all(cohen_radius(sigma, t) >= radii)  # the judge: exactly, no slack needed
    assert np.all(cohen_radius(sigma, t[1:] - 1e-9) < radii[1:])
    # and close to the exact Phi(R / sigma), on the safe (high) side
    exact = special.ndtr(radii / sigma)
    assert np.all(t >= exact)
    assert np.all(special.ndtri(t[1:]) <= (radii[1:] / sigma) * (1 + 1e-12))
    # any lower bound at or above t certifies R
    rng = np.random.default_rng(0)
    above = t + rng.uniform(0, 1, size=(50, t.size)) * (1 - t)
    above[0] = np.nextafter(t, 1.0)
    assert np.all(cohen_radius(sigma, above) >= radii)


def test_unreachable_radii_are_infinite() -> None:
    # Phi(8.3) rounds to 1: no lower bound below 1 certifies 8.3 sigma
    assert np.all(np.isinf(radius_thresholds([8.3, 20.0], 1.0)))
    assert np.isfinite(radius_thresholds([8.0], 1.0)).all()
    assert np.isinf(radius_thresholds([2.5], 0.25, 0.01, 784)).all()  # beyond IDRS's reach


def test_idrs_thresholds_are_where_the_radius_reaches_r() -> None:
    sigma, r, dim = 0.25, 0.01, 784
    radii = np.linspace(0.0, 1.0, 33)
    t = radius_thresholds(radii, sigma, r, dim)
    assert t[0] == ZERO_RADIUS_THRESHOLD and np.all(np.diff(t) > 0)
    reached = idrs_radius(sigma, r, dim, t)
    assert np.all(reached >= radii)
    assert np.all(reached[1:] <= radii[1:] * (1 + 1e-9))  # tight
    assert np.all(idrs_radius(sigma, r, dim, t[1:] - 1e-9) < radii[1:])
    assert np.all(t >= radius_thresholds(radii, sigma))  # Theorem 15: above Cohen's
    # lower bounds above t: the computed radius is monotone up to its 1e-9 resolution
    above = np.concatenate([np.nextafter(t, 1.0), t + 1e-7 * (1 - t), t + 0.3 * (1 - t)])
    assert np.all(idrs_radius(sigma, r, dim, above) >= np.tile(radii, 3) * (1 - 1e-8))


def test_thresholds_broadcast_per_input() -> None:
    sigma = np.array([0.12, 0.25, 0.5])
    r = np.array([0.0, 0.01, 0.01])
    radii = np.array([0.0, 0.1, 0.3])
    t = radius_thresholds(radii, sigma, r, 784)
    assert t.shape == (3, 3)
    np.testing.assert_array_equal(t[0], radius_thresholds(radii, 0.12))
    np.testing.assert_array_equal(t[2], radius_thresholds(radii, 0.5, 0.01, 784))
    assert radius_thresholds(radii, 0.25).shape == (3,)


def test_remembered_thresholds_are_the_searched_ones() -> None:
    # Designs (sigma, r, dim) are searched once and remembered: a repeat, a later call and a
    # different batch around it all give the thresholds of a fresh search, bit for bit.
    radii = np.linspace(0.0, 0.75, 7)
    sigma = np.array([0.25, 0.5, 0.25, 0.12])
    clear_threshold_cache()
    batch = radius_thresholds(radii, sigma, 0.01, 784)
    np.testing.assert_array_equal(batch[0], batch[2])
    for i, s in enumerate(sigma):
        clear_threshold_cache()
        np.testing.assert_array_equal(radius_thresholds(radii, s, 0.01, 784), batch[i])
    batch[0] = 0.0  # the caller's copy: the remembered thresholds stay as they were
    again = radius_thresholds(radii, sigma[::-1], 0.01, 784)
    np.testing.assert_array_equal(again, radius_thresholds(radii, sigma, 0.01, 784)[::-1])
    assert again[-1, 1] > 0.5


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (([-0.1], 0.25), "radii"),
        (([[0.1]], 0.25), "radii"),
        (([0.1], 0.0), "sigma"),
        (([0.1], 0.25, -0.01), "r"),
        (([0.1], 0.25, 0.01, 0), "dim"),
        (([0.1], 0.25, 0.01, 78.5), "dim"),
    ],
)
def test_radius_thresholds_rejects_bad_arguments(args: tuple, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        radius_thresholds(*args)


# --- stop_certificate ---------------------------------------------------------------------


def test_stop_certificate_is_the_radius_judge() -> None:
    lower = np.array([0.0, 0.3, 0.5, np.nextafter(0.5, 1), 0.9, 0.999])
    cert = stop_certificate(lower, GRID, SIGMA)
    np.testing.assert_array_equal(cert.radius[:3], 0.0)
    np.testing.assert_array_equal(cert.radius[3:], cohen_radius(SIGMA, lower[3:]))
    assert not cert.certified[:3].any() and cert.certified[3:, 0].all()
    np.testing.assert_array_equal(cert.certified[4], GRID <= cohen_radius(SIGMA, 0.9))
    idrs = stop_certificate(lower, GRID, SIGMA, 0.01, 784)
    np.testing.assert_array_equal(idrs.radius[4:], idrs_radius(SIGMA, 0.01, 784, lower[4:]))
    with pytest.raises(ValueError, match="p_a_lower"):
        stop_certificate([1.2], GRID, SIGMA)


@pytest.mark.parametrize("r", [0.0, 0.01])
def test_threshold_certified_implies_judge_certified(r: float) -> None:
    # settle()'s "certified" (lower >= threshold) never says more than the radius judge; for
    # Cohen exactly, for IDRS up to its 1e-9 relative resolution.
    radii = np.linspace(0.0, 0.75, 13)
    t = radius_thresholds(radii, SIGMA, r, 784)
    rng = np.random.default_rng(1)
    lower = np.concatenate([t, np.nextafter(t, 1.0), rng.uniform(0.45, 0.9999, 400)])
    certified, _ = settle(lower, 1.0, t)
    judged = stop_certificate(lower, radii * (1 - 1e-8 if r else 1.0), SIGMA, r, 784)
    assert np.all(judged.certified >= certified)
    # and the converse up to the threshold search's tolerance
    strict = stop_certificate(lower, radii * (1 + 1e-8), SIGMA, r, 784).certified
    assert np.all(certified[:, 1:] >= strict[:, 1:])


# --- slow: more repetitions -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("p", [0.5, 0.99])
def test_coverage_and_false_claims_with_many_streams(p: float) -> None:
    reps, alpha = 200_000, 0.05
    counts = _streams(p, reps, LOOKS, seed=99 + int(p * 100))
    lower, upper = confidence_sequence(counts, LOOKS, alpha)
    assert (lower > p).any(axis=1).sum() <= _tolerance(reps, alpha)
    assert (upper < p).any(axis=1).sum() <= _tolerance(reps, alpha)
    _, thresholds = _grid_with_truth(p)
    result = sequential_certify(counts, LOOKS, thresholds, alpha)
    assert (result.certified & (thresholds > p)).any(axis=1).sum() <= _tolerance(reps, alpha)


@pytest.mark.slow
def test_idrs_thresholds_over_settings() -> None:
    radii = np.linspace(0.0, 1.5, 13)
    for sigma, r, dim in [(0.12, 0.05, 3072), (0.5, 0.02, 784), (1.0, 0.001, 150528)]:
        t = radius_thresholds(radii, sigma, r, dim)
        finite = np.isfinite(t)
        reached = idrs_radius(sigma, r, dim, t[finite])
        assert np.all(reached >= radii[finite])
        below = idrs_radius(sigma, r, dim, np.maximum(t[finite][1:] - 1e-9, 0.5))
        assert np.all(below < radii[finite][1:])
        assert np.all(idrs_radius(sigma, r, dim, 1 - 2**-53) < radii[~finite])
