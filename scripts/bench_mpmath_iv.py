"""Benchmark: attncert's vectorised branch and bound against a naive mpmath.iv branch and bound.

Run: python scripts/bench_mpmath_iv.py [--sizes 5,9,17] [--repeat 3] [--budget 300]
The baseline, written here, certifies the same ramp (a=-1, b=1, kappa=8, domain [-2, 2]) at
the same eps box by box in mpmath's interval arithmetic (53-bit, outward rounded): logits
shifted by the anchor leading at the box centre (affine in x, so each is a tight interval),
output sum_k e^{t_k} L_k / sum_k e^{t_k}, target [clip(lo), clip(hi)], bisection until the
bound is below eps.  eps = 1.1 x the dense-sample sup error.  Both sides: median of --repeat
runs (the baseline only while --repeat runs fit in --budget); a baseline run is stopped after
--budget seconds, in which case the ratio is a lower bound.  Prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from fractions import Fraction

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def naive_iv_certify(p, eps, lo, hi, budget):
    """(status, boxes evaluated, seconds) of the mpmath.iv branch and bound."""
    import mpmath
    from mpmath import iv
    iv.prec = 53
    a, b, kappa = Fraction(-1), Fraction(1), Fraction(8)
    d = (b - a) / (p - 1)
    g = kappa / d ** 2
    L = [a + k * d for k in range(p)]
    ivq = lambda v: iv.mpf(v.numerator) / v.denominator
    Li = [ivq(v) for v in L]
    gi = ivq(g)
    # t_k(x) = s_k - s_j = g (2 x (L_k - L_j) - (L_k^2 - L_j^2)); exact coefficients per (k, j)
    A = [[ivq(2 * g * (L[k] - L[j])) for k in range(p)] for j in range(p)]
    B = [[ivq(g * (L[k] ** 2 - L[j] ** 2)) for k in range(p)] for j in range(p)]
    ai, bi = ivq(a), ivq(b)
    eps_f = float(eps)
    t0 = time.perf_counter()
    stack = [(Fraction(lo), Fraction(hi))]
    boxes = 0
    while stack:
        if time.perf_counter() - t0 > budget:
            return "STOPPED", boxes, time.perf_counter() - t0
        xl, xh = stack.pop()
        boxes += 1
        X = iv.mpf([ivq(xl).a, ivq(xh).b])
        xm = float((xl + xh) / 2)
        j = min(range(p), key=lambda k: abs(xm - float(L[k])))    # leading logit at the centre
        E = [iv.exp(A[j][k] * X - B[j][k]) for k in range(p)]
        S = sum(E[1:], E[0])
        N = sum((e * l for e, l in zip(E[1:], Li[1:])), E[0] * Li[0]) / S
        f = iv.mpf([min(max(X.a, ai), bi).a, min(max(X.b, ai), bi).b])
        err = max(float((N - f).b.b), float((f - N).b.b))
        if not (err < eps_f):
            m = (xl + xh) / 2
            stack.append((m, xh))
            stack.append((xl, m))
    del mpmath
    return "CERTIFIED", boxes, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="5,9,17")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--budget", type=float, default=300.0)
    args = ap.parse_args()
    sys.path.insert(0, ROOT)
    import constructions
    from verify.search.certify import certify
    from verify.search.sampling import max_error_sampled
    print(f"{time.strftime('%Y-%m-%d')}; {os.cpu_count()} CPU(s)\n")
    print("| p | eps | attncert s | attncert boxes | mpmath.iv s | mpmath.iv boxes | time ratio | boxes/s ratio | baseline runs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for p in [int(v) for v in args.sizes.split(",")]:
        c = constructions.build("ramp", p=p)
        sup, _, _ = max_error_sampled(c, 400_001)
        eps = Fraction(repr(sup * 1.1))
        certify(c, eps, progress=False)   # warm-up
        times, res = [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = certify(c, eps, progress=False)
            times.append(time.perf_counter() - t0)
        assert res.status == "CERTIFIED", res.reason
        at = statistics.median(times)
        # the baseline is repeated too (median) when one run is short enough to afford it
        runs = [naive_iv_certify(p, eps, -2, 2, args.budget)]
        while runs[0][0] == "CERTIFIED" and len(runs) < args.repeat and runs[0][2] * args.repeat < args.budget:
            runs.append(naive_iv_certify(p, eps, -2, 2, args.budget))
        st, nb = runs[0][0], runs[0][1]
        nt = statistics.median(r[2] for r in runs)
        rate = (res.boxes_evaluated / at) / (nb / nt)
        ratio = f"{nt / at:.0f}x" if st == "CERTIFIED" else f">= {nt / at:.0f}x (stopped)"
        print(f"| {p} | {float(eps):.5g} | {at:.4f} | {res.boxes_evaluated} | "
              f"{nt:.3g}{'' if st == 'CERTIFIED' else ' (stopped)'} | {nb} | {ratio} | {rate:.0f}x | {len(runs)} |",
              flush=True)
    print(f"\nreproduce: python scripts/bench_mpmath_iv.py --sizes {args.sizes} --repeat {args.repeat} --budget {args.budget:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
