"""Verdicts that can fail: each verdict kind's rule, the intervals behind the claims (coverage
on simulated data with a known truth), and Section 4's rows on per-input outcomes of a model
that learnt something, of one that learnt nothing, and beside perturbed paper numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import special, stats

from idrs_lightning.paper import core, vision
from idrs_lightning.paper.core import Comparison, Verdict, claim
from idrs_lightning.paper.evidence import constant_cap
from idrs_lightning.paper.jobs import Certified
from idrs_lightning.paper.statistics import Interval, difference_interval, mean_interval
from idrs_lightning.reporting.metrics import certification_summary


def _interval(low: float, high: float, inputs: int = 100) -> Interval:
    return Interval(0.5 * (low + high), low, high, inputs, 1)


@pytest.mark.parametrize(
    ("row", "verdict"),
    [
        (Comparison("x", 0.5, 0.52, 0.03), Verdict.AGREES),
        (Comparison("x", 0.5, 0.54, 0.03), Verdict.DIFFERS),
        (Comparison("x", 0.0003, 0.01, 0.05, resolution=0.0003), Verdict.INCONCLUSIVE),
        (Comparison("x", 0.0003, 0.2, 0.05, resolution=0.0003), Verdict.DIFFERS),
        (Comparison("x", 0.5, 0.5, 0.01, blocked="model at chance"), Verdict.INCONCLUSIVE),
        (Comparison("x", 0.6, 0.6, kind="setting"), Verdict.SETTING),
        (Comparison("x", 0.9, 0.9, 0.01, kind="calibrated"), Verdict.CALIBRATED),
        (Comparison("x", 0.8, 0.3, 0.01, kind="not comparable"), Verdict.NOT_COMPARABLE),
        (Comparison("x", None, 1.0, kind="claim", holds=True), Verdict.HOLDS),
        (Comparison("x", None, 1.0, kind="claim", holds=False), Verdict.DOES_NOT_HOLD),
        (Comparison("x", 0.5, math.nan, 0.1), Verdict.INCONCLUSIVE),
    ],
)
def test_each_verdict_kind_has_one_rule(row: Comparison, verdict: Verdict) -> None:
    assert row.verdict is verdict


@pytest.mark.parametrize(
    ("interval", "kind", "margin", "verdict"),
    [
        ((0.01, 0.09), "positive", 0.0, Verdict.HOLDS),
        ((-0.01, 0.09), "positive", 0.0, Verdict.INCONCLUSIVE),
        ((-0.09, -0.01), "positive", 0.0, Verdict.DOES_NOT_HOLD),
        ((-0.01, 0.01), "equivalent", 0.02, Verdict.HOLDS),
        ((-0.01, 0.03), "equivalent", 0.02, Verdict.INCONCLUSIVE),
        ((0.03, 0.05), "equivalent", 0.02, Verdict.DOES_NOT_HOLD),
        ((-0.05, 0.0), "not positive", 0.0, Verdict.HOLDS),
        ((-0.05, 0.01), "not positive", 0.0, Verdict.INCONCLUSIVE),
        ((0.01, 0.05), "not positive", 0.0, Verdict.DOES_NOT_HOLD),
        ((0.005, 0.015), "not positive", 0.02, Verdict.HOLDS),
        ((0.01, 0.05), "not positive", 0.02, Verdict.INCONCLUSIVE),
        ((0.03, 0.05), "not positive", 0.02, Verdict.DOES_NOT_HOLD),
    ],
)
def test_claims_hold_only_when_the_interval_excludes_the_null(
    interval: tuple[float, float], kind, margin: float, verdict: Verdict
) -> None:
    row = claim("effect", _interval(*interval), kind, margin)
    assert row.verdict is verdict
    assert claim("effect", _interval(*interval), kind, margin, blocked="x").verdict is (
        Verdict.INCONCLUSIVE
    )


def test_an_inconclusive_claim_states_the_sample_size_that_would_decide_it() -> None:
    row = claim("gap", Interval(0.0, -0.15, 0.15, 20, 2), "equivalent", 0.02)
    assert row.verdict is Verdict.INCONCLUSIVE
    # half-width 0.15 must shrink to 0.01: (0.15 / 0.01)^2 = 225 times the inputs
    assert "about 4500 inputs at 2 seed(s) would decide it" in row.note


@pytest.mark.parametrize(
    ("seed_spread", "lowest", "highest"), [(0.0, 0.95, 1.0), (0.08, 0.93, 0.99)]
)
def test_the_interval_covers_a_known_difference_at_its_level(
    seed_spread: float, lowest: float, highest: float
) -> None:
    """Paired Bernoulli outcomes with a known mean difference of rates, per-input rates that
    vary and, in the second case, seeds whose models differ: the 95% interval covers the
    truth at least at its level (conservative where seeds agree, by design) and near it where
    models differ by seed, where too narrow an interval would let a claim hold by chance."""
    rng = np.random.default_rng(0)
    covered, trials = 0, 2000
    for _ in range(trials):
        base = rng.uniform(0.4, 0.9, 200)  # inputs differ in difficulty, drawn afresh
        shift = rng.normal(0.0, seed_spread, (3, 1))  # a model per seed
        first = rng.random((3, 200)) < np.clip(base + 0.1 + shift, 0, 1)
        second = rng.random((3, 200)) < base
        truth = float(np.mean(np.clip(base + 0.1 + 0.0, 0, 1) - base))
        interval = difference_interval(first, second)
        covered += interval.low <= truth <= interval.high
    assert lowest <= covered / trials <= highest


def test_a_mean_interval_matches_the_normal_formula() -> None:
    values = np.array([[1, 0, 1, 1, 0, 1, 1, 1], [1, 1, 0, 1, 0, 1, 1, 0]], dtype=float)
    z = math.sqrt(2) * special.erfinv(0.95)
    per_input, per_seed = values.mean(axis=0), values.mean(axis=1)
    seed_part = per_seed.var(ddof=1)
    error = math.sqrt(per_input.var(ddof=1) / 8 + seed_part / 2)
    parts = (per_input.var(ddof=1) / 8, seed_part / 2)
    freedom = sum(parts) ** 2 / (parts[0] ** 2 / 7 + parts[1] ** 2 / 1)
    interval = mean_interval(values)
    assert interval.estimate == pytest.approx(per_input.mean())
    expected = stats.t.ppf(0.975, freedom) * error
    assert interval.high - interval.estimate >= expected * (1 - 1e-12)
    assert interval.estimate - interval.low >= expected * (1 - 1e-12)
    assert expected > z * error


def test_identical_outcomes_still_get_an_interval() -> None:
    """No spread seen in 50 inputs is not an exact zero: Clopper-Pearson bounds the unseen
    rate by 1 - 0.025^(1/50), about 3.7 / 50."""
    interval = mean_interval(np.zeros((1, 50)))
    assert interval.low == 0 and interval.high == pytest.approx(1 - 0.025 ** (1 / 50))
    none = difference_interval(np.zeros((1, 500)), np.zeros((1, 500)))
    assert none.low < 0 < none.high


@pytest.mark.parametrize(("flips", "verdict"), [(4, Verdict.INCONCLUSIVE), (12, Verdict.HOLDS)])
def test_a_few_inputs_flipping_one_way_are_no_evidence(flips: int, verdict: Verdict) -> None:
    """4 of 200 inputs better and none worse: the exact sign test's p is 0.125, so the claim
    that the effect is positive must not hold; 12 of 200 (p = 0.0005) may."""
    first, second = np.zeros((1, 200)), np.zeros((1, 200))
    first[0, :flips] = 1
    assert claim("effect", difference_interval(first, second)).verdict is verdict


# ------------------------------------------------------------------- Section 4's rows


N, SEEDS, INPUTS = 2000, 3, 300
PROTOCOL = vision.Protocol(1, 1.0, N, 64, INPUTS, tuple(range(SEEDS)))


def _run(labels: np.ndarray, predict: np.ndarray, radius: np.ndarray) -> Certified:
    results = {
        "idx": np.arange(len(labels)),
        "label": labels,
        "predict": predict,
        "radius": np.where(predict >= 0, radius, 0.0),
        "correct": predict == labels,
    }
    summary = certification_summary(labels, predict, results["radius"], [0.0], num_classes=10)
    return Certified(summary, results)


def _trained(rng, sigma: float, sigma_idrs: float, accuracy: float) -> dict[str, list[Certified]]:
    """Per-input outcomes of models that learnt: 80% correct, radii spread up to each
    smoothing's cap; IDRS inputs reach past constant sigma's cap."""
    labels = np.arange(INPUTS) % 10
    runs: dict[str, list[Certified]] = {"constant": [], "idrs": [], "constant C sigma_b": []}
    for _ in range(SEEDS):
        right = rng.random(INPUTS) < accuracy
        predict = np.where(right, labels, (labels + 1) % 10)
        cap = constant_cap(sigma, N, 0.001)
        share = rng.random(INPUTS)
        runs["constant"].append(_run(labels, predict, share * cap))
        runs["idrs"].append(_run(labels, predict, share * constant_cap(sigma_idrs, N, 0.001)))
        runs["constant C sigma_b"].append(
            _run(labels, predict, share * constant_cap(sigma_idrs, N, 0.001))
        )
    return runs


def _untrained() -> dict[str, list[Certified]]:
    """A model that learnt nothing: every input gets class 0, certified at the cap."""
    labels = np.arange(INPUTS) % 10
    predict = np.zeros(INPUTS, dtype=np.int64)
    runs = {}
    for name, sigma in (("constant", 0.25), ("idrs", 0.3), ("constant C sigma_b", 0.3)):
        radius = np.full(INPUTS, constant_cap(sigma, N, 0.001))
        runs[name] = [_run(labels, predict, radius) for _ in range(SEEDS)]
    return runs


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds, as Section 4's figures give them."""
    return float(np.mean(values)), float(np.std(values, ddof=1))


def _figures(runs: dict[str, list[Certified]]) -> dict:
    return {
        name: {
            "clean_accuracy": _mean_std([r.summary.clean_accuracy for r in group]),
            "class_accuracy_std": _mean_std([r.summary.class_accuracy_std for r in group]),
        }
        for name, group in runs.items()
    }


def _verdicts(runs: dict[str, list[Certified]], paper_key: str | None) -> dict[str, Verdict]:
    rows = vision.section4_rows(0.25, 0.3, runs, _figures(runs), PROTOCOL, paper_key)
    return {row.quantity: row.verdict for row in rows}


def test_a_model_that_learnt_can_make_the_waterfall_claim_hold() -> None:
    verdicts = _verdicts(_trained(np.random.default_rng(1), 0.25, 0.3, 0.8), None)
    (waterfall,) = [v for q, v in verdicts.items() if "waterfall" in q]
    assert waterfall is Verdict.HOLDS


def test_a_model_that_learnt_nothing_gets_no_agreement_and_no_claim() -> None:
    """Predicting one class for every input certifies a tenth of them at the cap, IDRS beyond
    constant sigma's: without the chance precondition the waterfall claim would hold."""
    for paper_key in (None, "mnist"):
        verdicts = _verdicts(_untrained(), paper_key)
        assert not {Verdict.AGREES, Verdict.HOLDS} & set(verdicts.values()), verdicts


def test_a_paper_number_moved_beyond_its_tolerance_differs(monkeypatch) -> None:
    """MNIST's Table 2 beside a model whose accuracy is the paper's: agrees; the paper's
    number moved by five tolerances: differs."""
    numbers = core.paper_numbers()
    paper = numbers["table2"]["mnist"]["constant"]["mean"][1]
    runs = _trained(np.random.default_rng(2), 0.25, 0.3, paper)
    quantity = "sigma 0.25: clean accuracy, constant (Table 2)"
    before = _verdicts(runs, "mnist")[quantity]
    rows = vision.section4_rows(0.25, 0.3, runs, _figures(runs), PROTOCOL, "mnist")
    tolerance = next(r.tolerance for r in rows if r.quantity == quantity)
    moved = {**numbers, "table2": {**numbers["table2"]}}
    mnist = {**numbers["table2"]["mnist"], "constant": {**numbers["table2"]["mnist"]["constant"]}}
    mnist["constant"]["mean"] = [paper - 5 * tolerance] * 3
    moved["table2"]["mnist"] = mnist
    monkeypatch.setattr(vision, "paper_numbers", lambda: moved)
    after = _verdicts(runs, "mnist")[quantity]
    assert (before, after) == (Verdict.AGREES, Verdict.DIFFERS)


# ----------------------------------------------------------------------- the toys' rows


def _two_class_run(correct: int, radius: float = 1.0, sigma: float = 1.0) -> Certified:
    labels = np.arange(200) % 2
    predict = labels.copy()
    predict[correct:] = 1 - labels[correct:]
    run = _run(labels, predict, np.full(200, radius))
    run.results["sigma"] = np.full(200, sigma)
    return run


def test_cone_rows_agree_differ_or_stay_calibrated() -> None:
    from idrs_lightning.paper import toy

    baseline = mean_interval(np.r_[np.ones(100), np.zeros(100)][None])  # an untrained 0.5
    idrs = {"dim": 18, "sigma": 0.8, "r": 0.05, "accuracy": 0.886}
    matching = _two_class_run(177)  # 0.885
    # the paper's IDRS gain at N = 18 is 0.026, below our binomial error (0.046): no agreement
    row = toy.cone_comparison(18, "x", idrs, matching, baseline, effect=0.026)
    assert row.verdict is Verdict.INCONCLUSIVE
    # an effect twice our error could be resolved
    row = toy.cone_comparison(18, "x", idrs, matching, baseline, effect=0.1)
    assert row.verdict is Verdict.AGREES
    moved = {**idrs, "accuracy": 0.886 - 0.1}  # beyond two binomial errors (0.045)
    row = toy.cone_comparison(18, "x", moved, matching, baseline, effect=0.026)
    assert row.verdict is Verdict.DIFFERS
    guessing = _two_class_run(100)
    assert toy.cone_comparison(18, "x", idrs, guessing, baseline).verdict is Verdict.INCONCLUSIVE
    fitted = {**idrs, "r": 0.0}
    assert toy.cone_comparison(18, "x", fitted, matching, baseline).verdict is Verdict.CALIBRATED


def test_disc_claims_hold_for_a_learnt_model_only() -> None:
    from idrs_lightning.paper import toy

    scale = toy.SCALES["quick"]
    cap = constant_cap(0.6, scale.n, 0.001)
    baseline = mean_interval(np.r_[np.ones(150), np.zeros(50)][None])  # a lucky 0.75
    constant = _two_class_run(180, radius=cap)
    varying = _two_class_run(198, radius=1.2 * cap)  # past the cap, 18 more inputs right
    rows = toy.disc_rows(0.37, 0.6, constant, varying, scale, baseline)
    assert [r.verdict for r in rows] == [Verdict.SETTING, Verdict.HOLDS, Verdict.HOLDS]
    lucky = _two_class_run(150, radius=cap)  # no better than the untrained network
    rows = toy.disc_rows(0.37, 0.6, lucky, varying, scale, baseline)
    assert [r.verdict for r in rows][1:] == [Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE]


def test_cone_gap_rows_decide_only_beyond_our_resolution() -> None:
    from idrs_lightning.paper import toy

    baseline = mean_interval(np.r_[np.ones(100), np.zeros(100)][None])
    constant_row = {"dim": 2, "sigma": 0.5, "r": 0.0, "accuracy": 0.943}
    idrs_row = {"dim": 2, "sigma": 0.4, "r": 0.2, "accuracy": 0.96}
    constant = _two_class_run(189)
    close = _two_class_run(192)  # 3 more inputs right: a gap of 0.015, the paper's 0.017
    row = toy.cone_gap(2, "x", idrs_row, close, constant_row, constant, baseline)
    assert row.verdict is Verdict.INCONCLUSIVE and "would decide" in row.note
    worse = _two_class_run(150)  # 39 fewer right: far from the paper's gap
    row = toy.cone_gap(2, "x", idrs_row, worse, constant_row, constant, baseline)
    assert row.verdict is Verdict.DIFFERS


# ------------------------------------------------------------------- the theory IDs' rows


def _moved(key: str, change) -> dict:
    numbers = json.loads(json.dumps(core.paper_numbers()))
    change(numbers[key])
    return numbers


@pytest.mark.parametrize(
    ("name", "key", "change"),
    [
        ("table1", "table1", lambda t: t["rows"]["MNIST"]["values"].__setitem__(0, 0.9)),
        ("fig6_7", "fig6-7", lambda t: t.__setitem__("plateau_distance", 6.0)),
        ("fig13", "fig13", lambda t: t.__setitem__("constant_bound_sigma_012", 0.6)),
    ],
)
def test_a_theory_number_moved_past_its_tolerance_differs(
    monkeypatch, tmp_path, name: str, key: str, change
) -> None:
    """Every theory ID that agrees with a printed number stops agreeing when that number is
    moved past its tolerance."""
    from idrs_lightning.paper import theory

    context = core.Context(tmp_path, "tiny")
    before = [r.verdict for r in getattr(theory, name)(context).comparisons]
    monkeypatch.setattr(theory, "paper_numbers", lambda: _moved(key, change))
    after = [r.verdict for r in getattr(theory, name)(context).comparisons]
    changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert changed and all((b, a) == (Verdict.AGREES, Verdict.DIFFERS) for b, a in changed), changed
