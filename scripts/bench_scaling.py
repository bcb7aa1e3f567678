"""Benchmark: cost of a proved box bound, and how throughput scales with anchors and workers.

Run: python scripts/bench_scaling.py [--repeat 5]
(1) Interval bound per box against a plain float64 evaluation of the same boxes (the network
    and target at each box centre), same batch, same backend (target <= 5x).
(2) Boxes per second of one work unit against the number of anchors p = 10 .. 10^4 (1-D ramp:
    the only construction that has landed; dimension 2..3 needs a multi-D construction).
(3) Whole certify with 1 worker (in process) against 2 worker processes.
Medians of --repeat runs; prints markdown tables.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

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
    from verify.batches import Job, evaluate_batch
    from verify.certify import _observed, certify
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
        tf = med(lambda: _observed(c, weights, xl, xh, np), args.repeat)
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

    print("\n### Workers: whole certify of ramp p=201 kappa=30 at eps = 0.00424 (1.02 x sup)\n")
    print("| workers | certify s | boxes/s | speed-up |")
    print("|---|---|---|---|")
    from concurrent.futures import ProcessPoolExecutor
    c = constructions.build("ramp", p=201, kappa=30)
    base = None
    for w in (1, 2):
        if w == 1:
            t = med(lambda: certify(c, "0.00424", progress=False), args.repeat)
        else:
            with ProcessPoolExecutor(w) as ex:
                certify(c, "0.00424", progress=False, executor=ex, max_boxes=100)   # start the workers
                t = med(lambda: certify(c, "0.00424", progress=False, executor=ex, batch=1024), args.repeat)
        nboxes = certify(c, "0.00424", progress=False).boxes_evaluated
        base = base or t
        print(f"| {w} | {t:.2f} | {nboxes / t:.3g} | {base / t:.2f}x |", flush=True)
    print("\nDimension 2..3: no multi-dimensional construction has landed yet, so only the 1-D ramp is measured.")
    print(f"\nreproduce: python scripts/bench_scaling.py --repeat {args.repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
