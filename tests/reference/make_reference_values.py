"""Compute high-precision reference values with ``mpmath_reference`` and write them to JSON.

Usage (from the repository root)::

    python tests/reference/make_reference_values.py [output.json]

Writes ``tests/reference/reference_values.json`` by default.  Every stored number is a Python
float (``json`` writes floats with ``repr``: the shortest string that round-trips, at most 17
significant digits); inputs are generated as floats first and the references are computed at
exactly those binary values.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from tests.reference import mpmath_reference as ref  # noqa: E402

NCX2_DFS = [1, 2, 10, 784, 3072, 150528, 200000]
NCX2_NCS = [0.0, 1.0, 100.0, 1e4, 1e6, 1e9, 1e12]
NCX2_ZS = [-6.5, -3.0, 0.0, 3.0, 6.5]
TINY_X = 1e-10

PPF_DFS = [2, 784, 150528]
PPF_NCS = [0.0, 100.0, 1e6, 1e12]
PPF_QS = [1e-12, 1e-6, 0.5, 1 - 1e-6, 1 - 1e-12]

XI_DIMS = [2, 60, 784, 3072, 150528]
XI_PAS = [0.9, 0.999]
XI_SIGMA1S = [0.9, 0.99, 0.999, 1.001, 1.01, 1.1]
XI_AS = [0.0, 0.1, 1.0]

RADIUS_CASES = {
    2: [0.1, 0.5],
    60: [0.01, 0.05],
    784: [0.005, 0.02],
    3072: [0.0012, 0.005],
    150528: [0.0005, 0.01],
}
RADIUS_PAS = [0.6, 0.9, 0.99, 0.999, 0.99993]
RADIUS_REL_TOL = 1e-10  # tighter than the 1e-7 the tests need; it is cheap

TABLE1_DIMS = [784, 3072, 3 * 256 * 256]
TABLE1_PAS = [0.9, 0.99, 0.999, 0.99993]
PAPER_TABLE1 = {
    784: [0.946, 0.924, 0.908, 0.892],
    3072: [0.973, 0.961, 0.953, 0.945],
    3 * 256 * 256: [0.997, 0.995, 0.994, 0.993],
}

NCX2_DPS = 50
PPF_DPS = 50
XI_DPS = 40
RADIUS_DPS = 30


def log(msg: str) -> None:
    print(msg, flush=True)


def make_table1() -> tuple[list[dict], list[dict]]:
    table1, practical = [], []
    for dim in TABLE1_DIMS:
        for i, p_a in enumerate(TABLE1_PAS):
            s_curse = float(ref.curse_threshold(dim, p_a))
            s_prac = float(ref.practical_threshold(dim, p_a))
            table1.append({"dim": dim, "p_a": p_a, "threshold": s_curse})
            practical.append({"dim": dim, "p_a": p_a, "threshold": s_prac})
            paper = PAPER_TABLE1[dim][i]
            flag = "ok" if round(s_curse, 3) == paper else "MISMATCH"
            log(
                f"  table1 dim={dim:6d} p_a={p_a:<8} curse={s_curse:.6f} (paper {paper}: {flag})"
                f"  practical={s_prac:.6f}"
            )
    return table1, practical


def make_xi() -> list[dict]:
    rows = []
    for dim in XI_DIMS:
        for p_a in XI_PAS:
            for sigma1 in XI_SIGMA1S:
                for a in XI_AS:
                    row = {"a": a, "sigma0": 1.0, "sigma1": sigma1, "dim": dim, "p_a": p_a}
                    if sigma1 < 1.0:
                        row["xi_greater"] = float(ref.xi_greater(a, 1.0, sigma1, dim, p_a, XI_DPS))
                    else:
                        row["xi_less"] = float(ref.xi_less(a, 1.0, sigma1, dim, p_a, XI_DPS))
                    rows.append(row)
        log(f"  xi dim={dim} done ({len(rows)} rows)")
    return rows


def make_ncx2() -> list[dict]:
    rows = []
    for df in NCX2_DFS:
        for nc in NCX2_NCS:
            seen = set()
            t0 = time.time()
            for z in NCX2_ZS:
                mean = df + nc
                sd = math.sqrt(2 * df + 4 * nc)
                x = max(mean + z * sd, TINY_X)
                if x in seen:
                    continue
                seen.add(x)
                cdf, sf = ref.ncx2_cdf_sf(x, df, nc, NCX2_DPS)
                if cdf < 1e-14 and sf < 1e-14:  # cannot happen (cdf + sf = 1); kept per spec
                    continue
                rows.append({"df": df, "nc": nc, "x": x, "cdf": float(cdf), "sf": float(sf)})
            log(f"  ncx2 df={df:6d} nc={nc:8.0e}  {time.time() - t0:6.2f}s")
    return rows


def make_ppf() -> list[dict]:
    rows = []
    for df in PPF_DFS:
        for nc in PPF_NCS:
            t0 = time.time()
            for q in PPF_QS:
                x = ref.ncx2_ppf(q, df, nc, PPF_DPS)
                rows.append({"df": df, "nc": nc, "q": q, "x": float(x)})
            log(f"  ppf df={df:6d} nc={nc:8.0e}  {time.time() - t0:6.2f}s")
    return rows


def make_radius() -> list[dict]:
    rows = []
    for dim, rs in RADIUS_CASES.items():
        for r in rs:
            for p_a in RADIUS_PAS:
                t0 = time.time()
                radius = ref.idrs_radius(1.0, r, dim, p_a, RADIUS_REL_TOL, RADIUS_DPS)
                cohen = ref.cohen_radius(1.0, p_a)
                rows.append(
                    {
                        "sigma0": 1.0,
                        "r": r,
                        "dim": dim,
                        "p_a": p_a,
                        "radius": float(radius),
                        "rel_tol": RADIUS_REL_TOL,
                    }
                )
                log(
                    f"  radius dim={dim:5d} r={r:<7} p_a={p_a:<8} R={float(radius):.12f}"
                    f"  cohen={float(cohen):.12f}  {time.time() - t0:6.2f}s"
                )
    return rows


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "reference_values.json"
    start = time.time()
    result: dict = {
        "meta": {
            "generator": "tests/reference/make_reference_values.py (mpmath_reference.py)",
            "p_b": "1 - p_a, exact in binary for the given double p_a",
            "ncx2": f"x = max(df + nc + z*sqrt(2 df + 4 nc), {TINY_X}) for z in {NCX2_ZS}",
            "ncx2_dps": NCX2_DPS,
            "ppf_dps": PPF_DPS,
            "xi_dps": XI_DPS,
            "radius_dps": RADIUS_DPS,
            "radius_rel_tol": RADIUS_REL_TOL,
        }
    }
    sections = [
        ("table1+practical", make_table1),
        ("xi", make_xi),
        ("ncx2", make_ncx2),
        ("ncx2_ppf", make_ppf),
        ("radius", make_radius),
    ]
    for name, fn in sections:
        t0 = time.time()
        log(f"[{name}] ...")
        value = fn()
        if name == "table1+practical":
            result["table1"], result["practical"] = value
        else:
            result[name] = value
        log(f"[{name}] {time.time() - t0:.1f}s")
    out.write_text(json.dumps(result, indent=1) + "\n")
    log(f"wrote {out} in {time.time() - start:.1f}s")


if __name__ == "__main__":
    main()
