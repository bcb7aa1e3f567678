"""Issue 17's acceptance figures: boxes and time with the plain and the centred enclosure, measured
in one run on one machine (ratios are the figures; these machines are noisy).

    python scripts/bench_centred.py                 # every table
    python scripts/bench_centred.py --only sweep    # 2-D sin(2x0)cos(3x1): boxes vs eps, fitted exponent
    python scripts/bench_centred.py --only 4d       # max-affine sin(x0+x1+x2+x3), G = 4, at 1.25 x the sampled sup (2 workers)
    python scripts/bench_centred.py --only 4d --enclosure centred --time-limit 600   # the centred row alone
    python scripts/bench_centred.py --only checker  # checker time / certify time on the library and ramp p = 201
    python scripts/bench_centred.py --only checker --repeat 3   # the same, fastest of 3 runs per side

Each certificate is checked by the independent checker (``check_doc``) before it is counted.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from fractions import Fraction

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import constructions  # noqa: E402
from certificates.check.document import check_doc  # noqa: E402
from certificates.model import certificate_doc, load  # noqa: E402
from verify.search.certify import certify  # noqa: E402
from verify.search.executors import open_executor  # noqa: E402
from verify.search.residual import certify_residual, residual_claim  # noqa: E402
from verify.search.sampling import max_error_sampled  # noqa: E402


def _run(c, eps, enclosure, workers=1, **kw):
    """certify (as ``attncert certify`` does: icl-gd's residual route where declared), then check_doc;
    with ``workers`` > 1 both use that many local processes (as ``--workers``)."""
    t = time.perf_counter()
    if residual_claim(c) is not None:
        r = certify_residual(c, eps)
    elif workers > 1:
        with open_executor(workers) as ex:
            r = certify(c, eps, progress=False, enclosure=enclosure, executor=ex, min_units=workers, **kw)
    else:
        r = certify(c, eps, progress=False, enclosure=enclosure, **kw)
    secs = time.perf_counter() - t
    checked = None
    if r.holds:
        t = time.perf_counter()
        check_doc(json.loads(json.dumps(certificate_doc(c, r))), max_work=None,
                  workers=workers if workers > 1 else None)
        checked = time.perf_counter() - t
    return r, secs, checked


def _fit(eps, boxes) -> float:
    """Least-squares slope of log(boxes) against log(1/eps)."""
    x, y = np.log(1 / np.array(eps, dtype=float)), np.log(np.array(boxes, dtype=float))
    return float(np.polyfit(x, y, 1)[0])


def sweep(max_boxes: int) -> None:
    c = constructions.build("max-affine", f="sin(2*x0)*cos(3*x1)")
    sup, _, _ = max_error_sampled(c, 1_000_000)
    print(f"\n### 2-D max-affine sin(2*x0)*cos(3*x1), defaults (G = 20); sampled sup {sup:.4g}\n")
    print("| eps | plain boxes | plain s | centred boxes | centred s | centred check s | boxes plain/centred |")
    print("|---|---|---|---|---|---|---|")
    rows = {"plain": [], "centred": []}
    grid = ["0.2", "0.1", "0.05", "0.03"]
    for eps in grid:
        cells = []
        for enc in ("plain", "centred"):
            r, secs, chk = _run(c, eps, enc, max_boxes=max_boxes)
            n = len(r.leaves) if r.holds else None
            rows[enc].append(n)
            cells.append((n, secs, chk, r.status))
        (pn, ps, _, pst), (cn, cs, cc, cst) = cells
        ratio = f"{pn / cn:.1f}x" if pn and cn else "-"
        print(f"| {eps} | {pn if pn else pst} | {ps:.1f} | {cn if cn else cst} | {cs:.1f} | "
              f"{cc if cc is None else round(cc, 1)} | {ratio} |")
    for enc, ns in rows.items():
        if all(ns):
            print(f"fitted exponent ({enc}): boxes ~ eps^-{_fit([float(e) for e in grid], ns):.2f}")


def four_d(time_limit: float, enclosures=("centred", "plain"), workers: int = 2) -> None:
    c = constructions.build("max-affine", f="sin(x0+x1+x2+x3)", G=4)
    sup, _, _ = max_error_sampled(c, 2_000_000)
    eps = Fraction(1.25 * sup).limit_denominator(10 ** 6)
    print(f"\n### 4-D max-affine sin(x0+x1+x2+x3), G = 4 (257 tokens); sampled sup {sup:.4g}, eps = 1.25 x = {float(eps):.4g}"
          f"; {workers} worker(s) for certify and check\n")
    print("| enclosure | status | boxes | certify s | check s |")
    print("|---|---|---|---|---|")
    for enc in enclosures:
        r, secs, chk = _run(c, eps, enc, workers=workers, time_limit=time_limit)
        print(f"| {enc} | {r.status} | {len(r.leaves) if r.holds else r.boxes_evaluated} | {secs:.1f} | "
              f"{'-' if chk is None else f'{chk:.1f}'} |")


def _rebuild(name, params):
    """The library's construction from its stored parameters (float64=1: the float64 weights)."""
    from constructions.exact import ParameterError
    from constructions.float64 import to_float64
    f64 = str(params.pop("float64", "0")) == "1"
    try:
        return constructions.build(name, **params, **({"float64": 1} if f64 else {}))
    except ParameterError:
        c = constructions.build(name, **params)
        return to_float64(c) if f64 else c


def checker(repeat: int = 1) -> None:
    """Each row: certify, then check_doc on its certificate, in this process (no workers on either
    side); with ``repeat`` > 1 both are run that many times and each side's fastest run counts
    (on a shared machine the load moves more than the code's cost)."""
    print("\n### Checker time against certify time (same run)\n")
    if repeat > 1:
        print(f"(fastest of {repeat} runs of each)\n")
    print("| certificate | enclosure | boxes | certify s | check s | check/certify |")
    print("|---|---|---|---|---|---|")
    lib = os.path.join(ROOT, "certificates", "library")
    cases = []
    for name in sorted(os.listdir(lib)):
        if name.endswith(".json"):
            doc = load(os.path.join(lib, name))
            params = {k: v for k, v in doc["construction"]["params"].items()}
            cases.append((name, doc["construction"]["name"], params, doc["eps"]))
    c201 = constructions.build("ramp", p=201, kappa=30)
    sup, _, _ = max_error_sampled(c201, 400_001)
    cases.append(("ramp p=201 kappa=30 at 1.02 x sup", "ramp", {"p": 201, "kappa": 30},
                  str(Fraction(1.02 * sup).limit_denominator(10 ** 7))))
    for label, name, params, eps in cases:
        c = _rebuild(name, dict(params))
        r, secs, chk = _run(c, eps, "auto")
        for _ in range(repeat - 1):
            r2, secs2, chk2 = _run(c, eps, "auto")
            secs = min(secs, secs2)
            chk = None if chk is None or chk2 is None else min(chk, chk2)
        if chk is None:
            print(f"| {label} | auto | {r.status} | {secs:.2f} | - | - |")
            continue
        boxes = len(r.residual[2].leaves) if r.residual else len(r.leaves)
        print(f"| {label} | {'residual' if r.residual else 'auto'} | {boxes} | {secs:.2f} | {chk:.2f} | "
              f"{chk / secs:.2f}x |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["sweep", "4d", "checker"], default=None)
    ap.add_argument("--max-boxes", type=int, default=2_000_000)
    ap.add_argument("--time-limit", type=float, default=900.0, help="seconds per 4-D certify")
    ap.add_argument("--repeat", type=int, default=1,
                    help="checker table: run certify and check this many times each, keep the fastest")
    ap.add_argument("--enclosure", choices=["both", "centred", "plain"], default="both",
                    help="the 4-D table's enclosures (both: centred, then plain)")
    ap.add_argument("--workers", type=int, default=2, help="local processes for the 4-D certify and check")
    a = ap.parse_args()
    print(f"{time.strftime('%Y-%m-%d')}; {os.cpu_count()} CPU(s); numpy {np.__version__}")
    if a.only in (None, "sweep"):
        sweep(a.max_boxes)
    if a.only in (None, "4d"):
        four_d(a.time_limit, ("centred", "plain") if a.enclosure == "both" else (a.enclosure,), a.workers)
    if a.only in (None, "checker"):
        checker(max(1, a.repeat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
