"""The analytic results of the paper (Table 1, Figures 3, 6-7, 11, 12, 13), recomputed from
:mod:`idrs_lightning.certification`. Each runs in seconds at every scale."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from scipy import special

from idrs_lightning.certification import (
    clopper_pearson_lower,
    cohen_radius,
    curse_threshold,
    curse_threshold_simple,
    idrs_radius,
    practical_threshold,
    renyi_radius,
    xi_greater,
    xi_less,
)
from idrs_lightning.paper.core import Comparison, Context, Outcome, paper_numbers
from idrs_lightning.paper.output import save_figure

#: Cohen et al.'s protocol, used by Appendix A.2 and B.3: n samples, confidence 1 - alpha.
N_SAMPLES, ALPHA = 100_000, 0.001
#: Input dimensions of the paper's data sets (ImageNet at 3 x 256 x 256, as Table 1 assumes).
DIMENSIONS = {"MNIST": 784, "CIFAR10": 3072, "ImageNet": 3 * 256 * 256}


def table1(context: Context) -> Outcome:
    """Theorem 4's threshold for each data set and p_A against Table 1 (3 decimals)."""
    paper = paper_numbers()["table1"]
    rows, ours_table = [], {}
    for name, row in paper["rows"].items():
        values = curse_threshold(row["dim"], np.array(paper["p_a"]))
        ours_table[name] = values.tolist()
        for p_a, printed, ours in zip(paper["p_a"], row["values"], values, strict=True):
            note = ""
            if abs(ours - printed) > 5e-4 and np.floor(ours * 1000) / 1000 == printed:
                note = (
                    f"the printed {printed} is our {ours:.5f} cut to three decimals; rounded "
                    f"it would read {round(float(ours), 3)}"
                )
            rows.append(
                Comparison(
                    f"{name} (N = {row['dim']}), p_A = {p_a}", printed, float(ours), 5e-4, note=note
                )
            )
    return Outcome(
        rows,
        settings={"dims": {k: v["dim"] for k, v in paper["rows"].items()}, "p_a": paper["p_a"]},
        notes=[
            "Tolerance 5e-4: the paper prints three decimals.",
            "Theorem 4: the root s in (0, 1) of log(s^2) + 1 - s^2 = 2 log(1 - p_A) / N.",
        ],
        results={"thresholds": ours_table},
    )


def fig3(context: Context) -> Outcome:
    """Theorem 4 and Corollary 5 thresholds beside the practical one (xi_>(0) = 1/2)."""
    dims = np.unique(np.geomspace(1, 3 * 256 * 256, 200).round().astype(int))
    figure = Figure(figsize=(10, 4))
    rows, curves = [], {}
    for axes, p_a in zip(figure.subplots(1, 2), (0.9, 0.999), strict=True):
        theoretical = curse_threshold(dims, p_a)
        simple = curse_threshold_simple(dims, p_a)
        practical = practical_threshold(dims, p_a)
        curves[str(p_a)] = {
            "theorem4": theoretical.tolist(),
            "corollary5": simple.tolist(),
            "practical": practical.tolist(),
        }
        axes.semilogx(dims, theoretical, label="theoretical (Theorem 4)")
        axes.semilogx(dims, simple, "--", label="Corollary 5")
        axes.semilogx(dims, practical, label="practical (xi_>(0) = 1/2)")
        axes.set(title=f"p_A = {p_a}", xlabel="dimension N", ylabel="threshold of sigma1/sigma0")
        axes.grid(alpha=0.3)
        axes.legend()
        gap = practical - theoretical
        rows.append(
            Comparison(
                f"p_A = {p_a}: practical >= theoretical at every N",
                None,
                float(gap.min()),
                kind="claim",
                holds=bool(np.all(gap >= -1e-12)),
                note="ours: smallest gap",
            )
        )
        for name, dim in DIMENSIONS.items():
            g = float(practical_threshold(dim, p_a) - curse_threshold(dim, p_a))
            rows.append(
                Comparison(
                    f"p_A = {p_a}, {name}: gap practical - theoretical",
                    None,
                    g,
                    note="paper: 'very tight' (no number)",
                )
            )
    return Outcome(
        rows,
        settings={"p_a": [0.9, 0.999], "dims": f"{dims.size} values from 1 to {dims[-1]}"},
        figures=[save_figure(figure, context.out, "fig3.png")],
        notes=[
            "The paper gives no numbers for Figure 3. Theorem 4's threshold is a lower bound on "
            "the practical one at every N (checked); the gap shrinks with N, from about 0.02 "
            "at MNIST's N to 0.001 at ImageNet's."
        ],
        results={"dims": dims.tolist(), "curves": curves},
    )


def _lower_bound_radius(distance: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Cohen's radius at a linear boundary from the typical count ``round(n p_A)``."""
    p_a = special.ndtr(distance / sigma)
    count = np.rint(N_SAMPLES * p_a)
    return cohen_radius(sigma, clopper_pearson_lower(count, N_SAMPLES, ALPHA))


def fig6_7(context: Context) -> Outcome:
    """Appendix A.2: the ratio of exact to lower-bound radii, and the truncated radius."""
    figure = Figure(figsize=(15, 4))
    left, middle, right = figure.subplots(1, 3)
    p_a = np.concatenate([np.linspace(0.51, 0.99, 300), 1 - np.geomspace(1e-2, 1e-5, 300)])
    lower = clopper_pearson_lower(np.rint(N_SAMPLES * p_a), N_SAMPLES, ALPHA)
    ratio = special.ndtri(p_a) / special.ndtri(lower)
    left.semilogy(p_a, ratio)
    left.set(title="Figure 6: PhiInv(p_A) / PhiInv(lower p_A)", xlabel="p_A", ylabel="ratio")
    distance = np.linspace(0, 6, 601)
    radius = _lower_bound_radius(distance, np.ones_like(distance))
    middle.plot(distance, distance, "--", label="exact (= distance)")
    middle.plot(distance, radius, label="from the lower bound")
    middle.set(
        title="Figure 7 left: sigma = 1",
        xlabel="distance to the boundary",
        ylabel="certified radius",
    )
    sigma = np.linspace(0.05, 2.0, 400)
    right.plot(sigma, _lower_bound_radius(np.ones_like(sigma), sigma))
    right.axhline(1.0, ls="--", color="gray", label="exact (= 1)")
    right.set(title="Figure 7 right: distance 1", xlabel="sigma", ylabel="certified radius")
    for axes in (left, middle, right):
        axes.grid(alpha=0.3)
    middle.legend()
    right.legend()
    paper = paper_numbers()["fig6-7"]
    plateau_radius = float(radius.max())
    flat_from = float(distance[np.argmax(radius >= plateau_radius)])
    rows = [
        Comparison(
            "distance from which the radius stops growing (sigma = 1)",
            paper["plateau_distance"],
            flat_from,
            0.5,
            note="paper: 'roughly 4', read as 4 +- 0.5 (the half-unit of its one digit)",
        ),
        Comparison(
            "beyond it the radius no longer grows though the distance does (sigma = 1)",
            None,
            plateau_radius,
            kind="claim",
            holds=bool(np.all(radius[distance >= flat_from] == plateau_radius))
            and plateau_radius < distance[-1],
            note=f"ours: every distance from {flat_from:.2f} to {distance[-1]:.0f} gets "
            f"{plateau_radius:.4f} = PhiInv(alpha^(1/n)), all n samples correct",
        ),
    ]
    return Outcome(
        rows,
        settings={"n": N_SAMPLES, "alpha": ALPHA, "sigma": 1.0},
        figures=[save_figure(figure, context.out, "fig6-7.png")],
        notes=[
            "The lower bound is Clopper-Pearson's one-sided bound (Cohen et al.'s) at the "
            "typical count round(n p_A), the paper's reading of 'with high probability'."
        ],
        results={"plateau_radius": plateau_radius, "flat_from": flat_from},
    )


def neyman_pearson_fixed_radius(
    sigma0: float, sigma1: float, dim: np.ndarray, p_a: float
) -> np.ndarray:
    """The largest distance with ``xi(a) < 1/2`` when every ``x1`` uses ``sigma1`` (Theorem 3):
    the Neyman-Pearson analogue of Theorem 14's setting, by bisection on ``a``."""
    xi = xi_greater if sigma1 <= sigma0 else xi_less
    dim = np.asarray(dim, dtype=np.float64)
    low, high = np.zeros_like(dim), np.full_like(dim, 10.0 * sigma0)
    certified_at = lambda a: xi(a, sigma0, sigma1, dim, p_a) < 0.5  # noqa: E731
    possible = certified_at(low)
    for _ in range(60):
        middle = 0.5 * (low + high)
        ok = certified_at(middle)
        low, high = np.where(ok, middle, low), np.where(ok, high, middle)
    return np.where(possible, low, 0.0)


def fig11(context: Context) -> Outcome:
    """Theorem 14's Renyi radius against the Neyman-Pearson radius, p_A 0.99, sigma 1 / 0.8."""
    sigma0, sigma1, p_a = 1.0, 0.8, 0.99
    dims = np.arange(1, 121)
    renyi = renyi_radius(sigma0, sigma1, dims, p_a)
    exact = neyman_pearson_fixed_radius(sigma0, sigma1, dims, p_a)
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    axes.plot(dims, renyi, label="Renyi divergence (Theorem 14)")
    axes.plot(dims, exact, label="Neyman-Pearson (xi_>, Theorem 3)")
    axes.set(
        title="p_A = 0.99, sigma0 = 1, sigma1 = 0.8",
        xlabel="dimension N",
        ylabel="certified radius",
    )
    axes.grid(alpha=0.3)
    axes.legend()
    first_zero = lambda v: float(dims[np.argmax(v <= 0)]) if np.any(v <= 0) else float("nan")  # noqa: E731
    rows = [
        Comparison(
            "smallest N with Renyi radius 0",
            None,
            first_zero(renyi),
            kind="claim",
            holds=bool(np.any(renyi <= 0)),
            note="paper: falls to 0 as N grows",
        ),
        Comparison(
            "smallest N with Neyman-Pearson radius 0",
            None,
            first_zero(exact),
            kind="claim",
            holds=bool(np.any(exact <= 0)),
        ),
        Comparison(
            "Neyman-Pearson radius >= Renyi radius at every N",
            None,
            float(np.min(exact - renyi)),
            kind="claim",
            holds=bool(np.all(exact >= renyi - 1e-9)),
            note="ours: smallest difference; Neyman-Pearson is the exact worst case",
        ),
    ]
    return Outcome(
        rows,
        settings={"p_a": p_a, "sigma0": sigma0, "sigma1": sigma1, "dims": "1..120"},
        figures=[save_figure(figure, context.out, "fig11.png")],
        notes=[
            "Renyi orders alpha > 1 (Li et al.'s lemma); the supremum is taken over a grid "
            "refined locally, each order being a valid certificate."
        ],
        results={"dims": dims.tolist(), "renyi": renyi.tolist(), "neyman_pearson": exact.tolist()},
    )


def _linear(a: np.ndarray, sigma0: float, p_b: float) -> np.ndarray:
    """P_1(B_l) of Theorem 15's proof: the half-space worst case of constant sigma0."""
    return special.ndtr(a / sigma0 + special.ndtri(p_b))


#: Figure 11's ratio sigma1 / sigma0 (its sigma0 = 1, sigma1 = 0.8), for Figure 12's top row.
RATIO = 0.8


def fig12(context: Context) -> Outcome:
    """xi_> and xi_< against distance, for panels coded [sigma0, sigma1, N, p_B]."""
    a = np.linspace(0.0, 1.5, 151)
    figure = Figure(figsize=(11, 11))
    grid = figure.subplots(3, 2)
    panels = {
        (0, 0): ("xi_>, varying N", [(1.0, RATIO, n, 0.01) for n in (2, 10, 30, 90, 300)]),
        (0, 1): ("xi_<, varying N", [(1.0, 1 / RATIO, n, 0.01) for n in (2, 10, 30, 90, 300)]),
        (1, 0): ("xi_>, varying sigma1", [(1.0, s, 90, 0.01) for s in (0.99, 0.97, 0.95, 0.9)]),
        (1, 1): ("xi_>, varying p_B", [(1.0, 0.95, 90, p) for p in (0.1, 0.01, 0.001, 1e-4)]),
        (2, 0): ("xi_> and xi_<, N = 90", [(1.0, 0.95, 90, 0.01), (1.0, 1 / 0.95, 90, 0.01)]),
        (2, 1): ("xi_> and xi_<, N = 3072", [(1.0, 0.99, 3072, 0.01), (1.0, 1 / 0.99, 3072, 0.01)]),
    }
    curves = {}
    for (i, j), (title, setups) in panels.items():
        axes = grid[i, j]
        for sigma0, sigma1, n, p_b in setups:
            xi = xi_greater if sigma1 <= sigma0 else xi_less
            values = xi(a, sigma0, sigma1, n, 1 - p_b)
            label = f"[{sigma0:g}, {sigma1:.3g}, {n}, {p_b:g}]"
            curves[label] = values.tolist()
            axes.plot(a, values, label=label)
        linear_p_b = sorted({s[3] for s in setups})
        for p_b in linear_p_b:
            axes.plot(a, _linear(a, 1.0, p_b), "k:", lw=1)
        axes.axhline(0.5, color="gray", lw=0.8)
        axes.set(title=title + " (dotted: linear P_1(B_l))", xlabel="distance a", ylabel="P_1(B)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    gap_095 = float(np.max(xi_greater(a, 1.0, 0.95, 90, 0.99) - _linear(a, 1.0, 0.01)))
    at_zero = {n: float(xi_greater(0.0, 1.0, RATIO, n, 0.99)) for n in (30, 90)}
    rows = [
        Comparison(
            f"N = 90, p_A = 0.99, sigma1/sigma0 = {RATIO}: nothing certified (xi_>(0) >= 1/2)",
            None,
            at_zero[90],
            kind="claim",
            holds=at_zero[90] >= 0.5,
            note="paper: 'already for N = 90, we are not able to certify p_A = 0.99 for rather "
            f"conservative sigma0/sigma1'; the ratio is Figure 11's ({RATIO}); the threshold at "
            f"N = 90 is {float(practical_threshold(90, 0.99)):.4f}",
        ),
        Comparison(
            f"N = 30, p_A = 0.99, sigma1/sigma0 = {RATIO}: still certified (xi_>(0) < 1/2)",
            None,
            at_zero[30],
            kind="claim",
            holds=at_zero[30] < 0.5,
            note="'already for N = 90': a smaller N still certifies at this ratio",
        ),
        Comparison(
            "sigma0 = 1, sigma1 = 0.95, N = 90: max_a xi_>(a) - P_1(B_l)",
            None,
            gap_095,
            note="paper: 'almost negligible' (N and a threshold not stated: not testable)",
        ),
    ]
    return Outcome(
        rows,
        settings={"a": "0..1.5", "panels": {str(k): v[1] for k, v in panels.items()}},
        figures=[save_figure(figure, context.out, "fig12.png")],
        notes=[
            "The paper's panel parameters are not all legible from its text; these panels "
            "follow its caption (coding [sigma0, sigma1, N, p_B]) with our choice of values. "
            f"The top row uses Figure 11's ratio sigma1/sigma0 = {RATIO}, at which the "
            "sentence it illustrates ('already for N = 90 ... not able to certify') is true.",
        ],
        results={"a": a.tolist(), "curves": curves},
    )


def fig13(context: Context) -> Outcome:
    """Radius against distance to a linear boundary, constant sigma vs IDRS (Theorem 7)."""
    r, dim = 0.01, DIMENSIONS["CIFAR10"]
    figure = Figure(figsize=(10, 4))
    rows, results = [], {}
    for axes, sigma in zip(figure.subplots(1, 2), (0.12, 0.50), strict=True):
        distance = np.linspace(0.0, 6 * sigma, 121)
        p_a = clopper_pearson_lower(
            np.rint(N_SAMPLES * special.ndtr(distance / sigma)), N_SAMPLES, ALPHA
        )
        constant = cohen_radius(sigma, p_a)
        varying = idrs_radius(sigma, r, dim, p_a)
        results[str(sigma)] = {
            "distance": distance.tolist(),
            "constant": constant.tolist(),
            "idrs": varying.tolist(),
        }
        axes.plot(distance, constant, label="constant sigma (Cohen et al.)")
        axes.plot(distance, varying, label=f"input-dependent, r = {r}, N = {dim}")
        axes.set(
            title=f"sigma_b = sigma = {sigma}",
            xlabel="distance to the boundary",
            ylabel="certified radius",
        )
        axes.grid(alpha=0.3)
        axes.legend()
        results[str(sigma)]["plateau_ratio"] = float(varying.max() / constant.max())
    paper = paper_numbers()["fig13"]
    low, high = results["0.12"]["plateau_ratio"], results["0.5"]["plateau_ratio"]
    rows = [
        Comparison(
            "largest constant-sigma radius at sigma 0.12",
            paper["constant_bound_sigma_012"],
            float(np.max(results["0.12"]["constant"])),
            0.05,
            note="paper: 'about 0.48'",
        ),
        Comparison(
            "IDRS keeps more of the constant radius at sigma 0.12 than at 0.50",
            None,
            low - high,
            kind="claim",
            holds=low > high,
            note=f"ours: ratio of largest radii {low:.3f} (0.12) vs {high:.3f} (0.50)",
        ),
    ]
    return Outcome(
        rows,
        settings={"n": N_SAMPLES, "alpha": ALPHA, "r": r, "dim": dim},
        figures=[save_figure(figure, context.out, "fig13.png")],
        notes=[
            "The paper does not state r or N for Figure 13; we use Section 4's r = 0.01 and "
            "CIFAR-10's N = 3072, with sigma(x0) = sigma_b."
        ],
        results=results,
    )
