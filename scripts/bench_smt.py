"""Benchmark: the analytic route (z3 gap lemmas) against the paving route as gamma grows.

Run: python scripts/bench_smt.py [--p 65] [--eps 0.015626] [--kappas 100,1000,1e6,1e9,1e12]
     python scripts/bench_smt.py --map      (the [MAP] max-affine cases: partition cells vs paving)
Ramp on [a, b] = [-1, 1], domain [lo, hi] = [-2, 3] (box ends not aligned with the anchors),
eps just above Delta/2.  For each kappa (gamma = kappa/Delta^2) both routes certify the same
claim in the same run; the table gives pieces/boxes, lemma count, z3 time, total certify time,
and the time ratio analytic/paving.  The analytic piece count must not change with kappa.
"""
from __future__ import annotations

import argparse
import time
from fractions import Fraction

import constructions
from verify.search.certify import certify
from verify.analytic.certify import certify_analytic


def _kappa(text: str) -> str:
    f = Fraction(text) if "e" not in text else Fraction(int(float(text)))
    return str(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--p", type=int, default=65)
    ap.add_argument("--eps", default="0.015626")
    ap.add_argument("--lo", default="-2")
    ap.add_argument("--hi", default="3")
    ap.add_argument("--kappas", default="100,1000,1e6,1e9,1e12")
    ap.add_argument("--map", action="store_true", help="also the [MAP] max-affine cases (partition cells)")
    args = ap.parse_args()
    if args.map:
        bench_map()
        return
    print(f"ramp p={args.p} on [{args.lo}, {args.hi}], eps = {args.eps} (Delta/2 = {1 / (args.p - 1):.6g})\n")
    print("| kappa | gamma | paving boxes (evaluated) | paving s | paving bound | analytic pieces | lemmas "
          "| z3 s | analytic s | analytic bound | analytic s / paving s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    counts = set()
    for k in args.kappas.split(","):
        kappa = _kappa(k.strip())
        c = constructions.build("ramp", a="-1", b="1", p=args.p, kappa=kappa, lo=args.lo, hi=args.hi)
        gamma = Fraction(kappa) * (args.p - 1) ** 2 / 4
        t0 = time.perf_counter()
        pv = certify(c, args.eps, progress=False, time_limit=300)
        tp = time.perf_counter() - t0
        t0 = time.perf_counter()
        an = certify_analytic(c, args.eps, method="analytic")
        ta = time.perf_counter() - t0
        counts.add(len(an.pieces))
        pcol = f"{len(pv.leaves)} ({pv.boxes_evaluated})" if pv.holds else f"{pv.status}: {pv.reason}"
        acol = str(len(an.pieces)) if an.holds else f"{an.status}: {an.reason}"
        print(f"| {float(kappa):.0e} | {float(gamma):.3g} | {pcol} | {tp:.2f} | {pv.max_bound:.9g} | {acol} | "
              f"{an.lemma_count} | {an.z3_seconds:.2f} | {ta:.2f} | {an.max_bound:.9g} | {ta / tp:.1f} |", flush=True)
    print(f"\nanalytic piece counts over all kappas: {sorted(counts)}")


MAP_CASES = (  # (label, build params, eps): 1-D at 1.36x the paving bound's floor, a kappa sweep, 2-D
    ("1-D sin(3x) G=32 kappa=3", dict(f="sin(3*x0)", G=32, kappa=3), "0.0215", None),
    ("1-D sin(3x) G=32 kappa=30", dict(f="sin(3*x0)", G=32, kappa=30), "0.11", None),
    ("1-D sin(3x) G=32 kappa=3000", dict(f="sin(3*x0)", G=32, kappa=3000), "0.11", None),
    ("2-D sin(2x)cos(3y) G=12 kappa=2", dict(f="sin(2*x0)*cos(3*x1)", G=12, kappa=2), "0.1", 12),
)


def bench_map():
    """Max-affine: analytic pieces (= partition cells, fixed sub-mesh) vs paving boxes, same claim, same run."""
    print("| case | eps | paving boxes | paving s | paving bound | analytic pieces | mesh | gap + partition lemmas "
          "| z3 s | analytic s | analytic bound | observed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, prm, eps, mesh in MAP_CASES:
        c = constructions.build("max-affine", **prm)
        t0 = time.perf_counter()
        pv = certify(c, eps, progress=False, time_limit=300)
        tp = time.perf_counter() - t0
        t0 = time.perf_counter()
        an = certify_analytic(c, eps, method="analytic", mesh=mesh)
        ta = time.perf_counter() - t0
        npart = len(an.partition["lemmas"]) if an.partition else 0
        mesh = an.pieces[0].plan.mesh if an.pieces and an.pieces[0].plan else "-"
        pcol = str(len(pv.leaves)) if pv.holds else pv.status
        acol = str(len(an.pieces)) if an.holds else f"{an.status}: {an.reason}"
        print(f"| {label} | {eps} | {pcol} | {tp:.2f} | {pv.max_bound:.6g} | {acol} | {mesh} | "
              f"{an.lemma_count - npart} + {npart} | {an.z3_seconds:.2f} | {ta:.2f} | {an.max_bound:.6g} | "
              f"{an.observed:.6g} |", flush=True)


if __name__ == "__main__":
    main()
