"""Benchmark: cost of a proved box bound, and how throughput scales with anchors and workers.

Run: python scripts/bench_scaling.py [--repeat 5]
(1) Interval bound per box against a plain float64 evaluation of the same boxes (the network
    and target at each box centre), same batch, same backend (target <= 5x).
(2) Boxes per second of one work unit against the number of anchors p = 10 .. 10^4 (1-D ramp).
(3) Against the dimension D = 1..3: max-affine of sin(x0 + ... + x_{D-1}) on [-1, 1]^D with
    G = 8 cells per dimension ((G+1)^D anchors): boxes/s of the grid bounder and of the
    general affine bounder on the same boxes, and a whole certify at 1.25 x the dense sup.
(4) Whole certify with 1 worker (in process) against 2 worker processes, on a job long
    enough (ramp p=1001) that the per-generation merge does not dominate.
Medians of --repeat runs; prints markdown tables.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from fractions import Fraction

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def med(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def boxes(n, k=20):
    I = (np.arange(n, dtype=np.int64) * ((1 << k) // n)).reshape(n, 1)
    return I, np.full((n, 1), k, dtype=np.int64)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, ROOT)
    import constructions
    from verify.search.batches import Job, evaluate_batch
    from verify.search.certify import certify
    from verify.search.sampling import observed_at_centres
    print(f"{time.strftime('%Y-%m-%d')}; {os.cpu_count()} CPU(s); numpy {np.__version__}\n")

    print("### Proved bound per box vs plain float64 evaluation of the same boxes (8192 boxes, NumPy)\n")
    print("| p | interval bound us/box | float64 eval us/box | ratio |")
    print("|---|---|---|---|")
    for p in (41, 201, 1001):
        c = constructions.build("ramp", p=p)
        _, domain, bounder, weights = Job(c).prepared()
        I, K = boxes(8192)
        xl, xh = domain.enclose(I, K)
        tb = med(lambda: bounder.error_bounds(xl, xh), args.repeat)
        tf = med(lambda: observed_at_centres(c, weights, xl, xh, np), args.repeat)
        print(f"| {p} | {tb / 8192 * 1e6:.2f} | {tf / 8192 * 1e6:.2f} | {tb / tf:.2f}x |", flush=True)

    print("\n### Work-unit throughput against the number of anchors (1-D ramp, NumPy, one process)\n")
    print("| anchors p | boxes per unit | boxes/s | (box x anchor)/s |")
    print("|---|---|---|---|")
    for p in (10, 100, 1000, 10000):
        c = constructions.build("ramp", p=p)
        n = int(max(256, min(8192, (1 << 24) // p)))
        job = Job(c)
        I, K = boxes(n)
        evaluate_batch(job, I[:64], K[:64])
        t = med(lambda: evaluate_batch(job, I, K), args.repeat)
        print(f"| {p} | {n} | {n / t:.3g} | {n * p / t:.3g} |", flush=True)

    print("\n### Dimension: max-affine sin(x0+..+x_{D-1}) on [-1,1]^D, G = 8 per dimension (NumPy, one process)\n")
    print("| D | anchors | grid bounder boxes/s | general bounder boxes/s | grid/general | eps | certify s | boxes |")
    print("|---|---|---|---|---|---|---|---|")
    from verify.enclose.affine import AffineBounder
    from verify.tune_map import sampled_sup
    for D in (1, 2, 3):
        f = "sin(" + "+".join(f"x{i}" for i in range(D)) + ")"
        c = constructions.build("max-affine", f=f, B=1, G=8)
        _, domain, grid, _ = Job(c).prepared()
        general = AffineBounder(c, np)
        n = 4096
        k = {1: 12, 2: 6, 3: 4}[D]
        idx = np.stack(np.unravel_index(np.arange(n) % (1 << (k * D)), (1 << k,) * D), axis=1).astype(np.int64)
        I, K = idx, np.full((n, D), k, dtype=np.int64)
        xl, xh = domain.enclose(I, K)
        tg = med(lambda: grid.error_bounds(xl, xh), args.repeat)
        ta = med(lambda: general.error_bounds(xl, xh), args.repeat)
        sup = sampled_sup(c, n=200_000, seed=1)
        eps = Fraction(sup * 1.25).limit_denominator(10 ** 6)
        t0 = time.perf_counter()
        r = certify(c, eps, progress=False)
        tc = time.perf_counter() - t0
        print(f"| {D} | {9 ** D} | {n / tg:.3g} | {n / ta:.3g} | {ta / tg:.1f}x | {float(eps):.4g} | "
              f"{tc:.2f} ({r.status}) | {r.boxes_evaluated} |", flush=True)

    print("\n### Workers: whole certify of ramp p=1001 kappa=4 at eps = 0.0004 (1.48 x the sampled sup)\n")
    print("| workers | certify s | boxes/s | speed-up |")
    print("|---|---|---|---|")
    from concurrent.futures import ProcessPoolExecutor
    c = constructions.build("ramp", p=1001, kappa=4)
    eps = "0.0004"
    base = None
    nboxes = certify(c, eps, progress=False).boxes_evaluated
    for w in (1, 2):
        if w == 1:
            t = med(lambda: certify(c, eps, progress=False), args.repeat)
        else:
            with ProcessPoolExecutor(w) as ex:
                certify(c, eps, progress=False, executor=ex, max_boxes=100)   # start the workers
                t = med(lambda: certify(c, eps, progress=False, executor=ex, batch=1024), args.repeat)
        base = base or t
        print(f"| {w} | {t:.2f} | {nboxes / t:.3g} | {base / t:.2f}x |", flush=True)
    print(f"\nreproduce: python scripts/bench_scaling.py --repeat {args.repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
